//! Compression on the fly: nginx's gzip filter and ngx_brotli's filter
//! for any [`Response`], whoever made it (static files, the site engine's
//! own pages, the WSGI app, a proxied upstream). [`apply`] decides
//! (`decide.rs`), rewrites the headers as nginx does (Content-Encoding
//! added, Content-Length and Accept-Ranges removed, a strong ETag made
//! weak, `Vary: Accept-Encoding` under `gzip_vary`) and wraps the body in
//! a compressing stream (`encode.rs`) that works as the body is pulled.
//! [`Compress`] puts the same filter around a whole handler (the option
//! style's `--gzip`). Not here: precompressed files (`gzip_static`), which
//! the file responders serve.

mod accept;
mod decide;
#[cfg(test)]
mod decide_tests;
mod encode;
#[cfg(test)]
mod encode_tests;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::site::CompressSettings;

pub use decide::{Coding, Decision, RequestFacts, gzip_ok, http_version};

use crate::body_stream::BodyStream;
use crate::handler::{Handler, HandlerFuture, Request, Response, ResponseBody, Sent};
use decide::ResponseView;
use encode::{Compressing, Params};
pub use encode::{GzipTally, ratio_text};

/// The producer's Content-Length (the last one), if it sent one.
fn declared_length(headers: &[(Bytes, Bytes)]) -> Option<u64> {
    let (_, v) = headers
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))?;
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// The body's length, when known without reading it.
fn known_length(response: &Response) -> Option<u64> {
    declared_length(&response.headers).or(match &response.body {
        ResponseBody::Empty => Some(0),
        ResponseBody::Full(b) => Some(b.len() as u64),
        ResponseBody::File { len, .. } => Some(*len),
        ResponseBody::Stream(_) => None,
    })
}

/// Run the filters over `response` for a request with `facts`; `vary` is
/// the location's `gzip_vary`.
pub fn apply(
    response: Response,
    facts: &RequestFacts<'_>,
    settings: &CompressSettings,
    vary: bool,
) -> Response {
    apply_tallied(response, facts, settings, vary).0
}

/// [`apply`], and for a gzipped answer the tally its body keeps of the
/// bytes in and out (`$gzip_ratio`).
pub fn apply_tallied(
    mut response: Response,
    facts: &RequestFacts<'_>,
    settings: &CompressSettings,
    vary: bool,
) -> (Response, Option<Arc<GzipTally>>) {
    if !settings.any() {
        return (response, None);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let decision = decide::decide(
        &ResponseView {
            status: response.status,
            headers: &response.headers,
            length: known_length(&response),
        },
        facts,
        settings,
        now,
    );
    let Some(coding) = decision.coding else {
        if decision.vary && vary {
            add_vary(&mut response.headers);
        }
        return (response, None);
    };
    let declared = declared_length(&response.headers);
    let headers = &mut response.headers;
    headers.retain(|(n, _)| {
        !n.eq_ignore_ascii_case(b"content-length") && !n.eq_ignore_ascii_case(b"accept-ranges")
    });
    weaken_etag(headers);
    headers.push((
        Bytes::from_static(b"Content-Encoding"),
        Bytes::from_static(coding.token().as_bytes()),
    ));
    if vary {
        add_vary(headers);
    }
    let params = match coding {
        Coding::Gzip => Params {
            coding,
            level: settings.gzip_level,
            window_bits: 15,
        },
        Coding::Brotli => Params {
            coding,
            level: settings.brotli_level,
            window_bits: settings.brotli_window_bits,
        },
    };
    let tally = (coding == Coding::Gzip).then(|| Arc::new(GzipTally::default()));
    let body = std::mem::replace(&mut response.body, ResponseBody::Empty);
    response.body = ResponseBody::Stream(BodyStream::pull(Compressing::new(
        body,
        params,
        declared,
        tally.clone(),
    )));
    (response, tally)
}

/// nginx writes one `Vary: Accept-Encoding` line for the gzip filters
/// (and `gzip_static`): one line, not one per filter.
fn add_vary(headers: &mut Vec<(Bytes, Bytes)>) {
    let there = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case(b"vary") && v.as_ref().eq_ignore_ascii_case(b"Accept-Encoding")
    });
    if !there {
        headers.push((
            Bytes::from_static(b"Vary"),
            Bytes::from_static(b"Accept-Encoding"),
        ));
    }
}

/// `ngx_http_weak_etag`: `"x"` becomes `W/"x"`, a weak one stays, and one
/// that is neither is removed.
fn weaken_etag(headers: &mut Vec<(Bytes, Bytes)>) {
    headers.retain_mut(|(n, v)| {
        if !n.eq_ignore_ascii_case(b"etag") || v.starts_with(b"W/") {
            return true;
        }
        if !v.starts_with(b"\"") {
            return false;
        }
        let mut weak = Vec::with_capacity(v.len() + 2);
        weak.extend_from_slice(b"W/");
        weak.extend_from_slice(v);
        *v = Bytes::from(weak);
        true
    });
}

/// The filters around a whole handler, with fixed settings (the option
/// style: `--gzip`, `--brotli` and their companions, uWSGI's
/// `--http-auto-gzip`). Answers that qualify vary on Accept-Encoding.
pub struct Compress {
    inner: Arc<dyn Handler>,
    settings: Arc<CompressSettings>,
    auto_gzip: bool,
}

impl Compress {
    /// Compress what `inner` answers under `settings`; `auto_gzip`: also
    /// gzip the answers the app marks with `uWSGI-Encoding: gzip`.
    pub fn new(
        inner: Arc<dyn Handler>,
        settings: Arc<CompressSettings>,
        auto_gzip: bool,
    ) -> Compress {
        Compress {
            inner,
            settings,
            auto_gzip,
        }
    }
}

/// The app's mark for uWSGI's `--http-auto-gzip`.
const AUTO_GZIP_HEADER: &[u8] = b"uwsgi-encoding";

/// uWSGI's `--http-auto-gzip`: an answer whose app set `uWSGI-Encoding:
/// gzip` and neither Content-Length nor Content-Encoding is gzipped for a
/// client that accepts gzip, whatever its type and size. The mark never
/// reaches the client.
fn auto_gzip(mut response: Response, facts: &RequestFacts<'_>) -> Response {
    let mut marked = false;
    response.headers.retain(|(n, v)| {
        let mark = n.eq_ignore_ascii_case(AUTO_GZIP_HEADER);
        marked |= mark && v.as_ref().eq_ignore_ascii_case(b"gzip");
        !mark
    });
    let framed = response.headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case(b"content-length") || n.eq_ignore_ascii_case(b"content-encoding")
    });
    if !marked || framed {
        return response;
    }
    let settings = CompressSettings {
        gzip: true,
        gzip_types: portico_config::site::CompressTypes::Any,
        gzip_min_length: 0,
        gzip_http_version: portico_config::site::MinHttpVersion::Http10,
        ..CompressSettings::default()
    };
    apply(response, facts, &settings, true)
}

/// A request's facts, copied before the request goes to the handler.
struct OwnedFacts {
    accept_encoding: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
    via: bool,
    authorization: bool,
    version: u32,
}

impl OwnedFacts {
    fn of(request: &Request) -> OwnedFacts {
        OwnedFacts {
            accept_encoding: request.header("accept-encoding").map(<[u8]>::to_vec),
            user_agent: request.header("user-agent").map(<[u8]>::to_vec),
            via: request.header("via").is_some(),
            authorization: request.header("authorization").is_some(),
            version: http_version(request.protocol()),
        }
    }

    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            accept_encoding: self.accept_encoding.as_deref(),
            user_agent: self.user_agent.as_deref(),
            via: self.via,
            authorization: self.authorization,
            version: self.version,
            own_answer: false,
        }
    }
}

impl Handler for Compress {
    fn handle(&self, request: Request) -> HandlerFuture {
        let facts = OwnedFacts::of(&request);
        let inner = self.inner.handle(request);
        let settings = self.settings.clone();
        let auto = self.auto_gzip;
        HandlerFuture::new(move || async move {
            let mut response = inner.await;
            if auto {
                response = auto_gzip(response, &facts.facts());
            }
            apply(response, &facts.facts(), &settings, true)
        })
    }

    fn done(&self, tag: u64, sent: Option<&Sent>) {
        self.inner.done(tag, sent);
    }
}
