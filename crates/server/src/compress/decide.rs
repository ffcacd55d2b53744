//! Whether one response is compressed, and how: the header filters of
//! ngx_brotli (`ngx_http_brotli_header_filter`, which runs first) and of
//! nginx's gzip module (`ngx_http_gzip_header_filter`), with the core
//! module's `ngx_http_gzip_ok` (`gzip_http_version`, `gzip_proxied`,
//! `gzip_disable`). Pure: request facts, response status and headers,
//! settings in; a [`Decision`] out.
//!
//! A response qualifies when its status is 200, 403 or 404, it has no
//! Content-Encoding, its length (when known) reaches the `*_min_length` and
//! its type is one of the `*_types`. A qualifying response varies on
//! Accept-Encoding (`gzip_vary`) whether or not this client gets it
//! compressed. One deliberate difference: ngx_brotli skips the core tests
//! (HTTP version, `Via`, `gzip_disable`); Portico applies them to `br` too
//! (docs/compat.md).

use bytes::Bytes;
use portico_config::site::{CompressSettings, CompressTypes, GzipProxied, MinHttpVersion};

use super::accept::{accepts_brotli, accepts_gzip, is_msie6};

/// The content codings Portico produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (flate2).
    Gzip,
    /// `br` (brotli).
    Brotli,
}

impl Coding {
    /// The Content-Encoding token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }
}

/// What the filters need to know about the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The first Accept-Encoding header.
    pub accept_encoding: Option<&'a [u8]>,
    /// The first User-Agent header.
    pub user_agent: Option<&'a [u8]>,
    /// A `Via` header is there (the request came through a proxy).
    pub via: bool,
    /// An `Authorization` header is there (`gzip_proxied auth`).
    pub authorization: bool,
    /// The request's HTTP version as nginx numbers it (1000 × major + minor).
    pub version: u32,
    /// Portico made the answer itself (a file, a page): its Last-Modified
    /// is what nginx keeps as a time, not as a header, until the answer is
    /// written, so `gzip_proxied no_last_modified` does not see it.
    pub own_answer: bool,
}

/// nginx's version number of a protocol string: `HTTP/1.1` → 1001,
/// `HTTP/1.0` → 1000, `HTTP/2.0` or `HTTP/2` → 2000; anything else 9
/// (HTTP/0.9, below every `gzip_http_version`).
pub fn http_version(protocol: &[u8]) -> u32 {
    let Some(v) = protocol.strip_prefix(b"HTTP/") else {
        return 9;
    };
    let digit = |b: Option<&u8>| {
        b.filter(|b| b.is_ascii_digit())
            .map(|b| u32::from(b - b'0'))
    };
    let major = digit(v.first());
    let minor = if v.len() == 1 {
        Some(0)
    } else if v.get(1) == Some(&b'.') && v.len() == 3 {
        digit(v.get(2))
    } else {
        None
    };
    match (major, minor) {
        (Some(major), Some(minor)) => major * 1000 + minor,
        _ => 9,
    }
}

/// The outcome for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The coding to apply, if any.
    pub coding: Option<Coding>,
    /// The answer qualified for a filter: it varies on Accept-Encoding.
    pub vary: bool,
}

/// The response, as the filters look at it.
pub(crate) struct ResponseView<'a> {
    pub status: u16,
    pub headers: &'a [(Bytes, Bytes)],
    /// The body's length when known without reading it (a Content-Length
    /// header, or a body in memory or a file region).
    pub length: Option<u64>,
}

impl ResponseView<'_> {
    /// The last header named `name` (nginx's `headers_out` fields keep the
    /// last one an upstream sent).
    fn last(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_ref())
    }

    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_ref())
    }

    /// The type nginx tests `*_types` against: the Content-Type up to a
    /// `;` that a `charset=` parameter follows
    /// (`ngx_http_upstream_copy_content_type`), else the whole value.
    fn mime(&self) -> Option<&[u8]> {
        let value = self.last("content-type")?;
        if value.is_empty() {
            return None;
        }
        let mut len = value.len();
        let mut i = 0;
        while i < value.len() {
            if value[i] != b';' {
                i += 1;
                continue;
            }
            let semi = i;
            i += 1;
            while value.get(i) == Some(&b' ') {
                i += 1;
            }
            if value.len() >= i + 8 && value[i..i + 8].eq_ignore_ascii_case(b"charset=") {
                len = semi;
                break;
            }
        }
        Some(&value[..len])
    }

    /// Does the answer qualify for a filter with these types and minimum?
    fn qualifies(&self, types: &CompressTypes, min_length: u64) -> bool {
        matches!(self.status, 200 | 403 | 404)
            && self.last("content-encoding").is_none_or(<[u8]>::is_empty)
            && self.length.is_none_or(|n| n >= min_length)
            && types.matches(self.mime())
    }
}

/// Decide for one response; `now` is the time in seconds since the epoch
/// (for `gzip_proxied expired` without a Date header).
pub(crate) fn decide(
    response: &ResponseView<'_>,
    request: &RequestFacts<'_>,
    settings: &CompressSettings,
    now: i64,
) -> Decision {
    let mut vary = false;
    let ae = request.accept_encoding.unwrap_or_default();
    if settings.brotli && response.qualifies(&settings.brotli_types, settings.brotli_min_length) {
        vary = true;
        if accepts_brotli(ae) && core_allows(response, request, settings, now) {
            return Decision {
                coding: Some(Coding::Brotli),
                vary,
            };
        }
    }
    if settings.gzip && response.qualifies(&settings.gzip_types, settings.gzip_min_length) {
        vary = true;
        if accepts_gzip(ae) && core_allows(response, request, settings, now) {
            return Decision {
                coding: Some(Coding::Gzip),
                vary,
            };
        }
    }
    Decision { coding: None, vary }
}

/// `ngx_http_gzip_ok` as `gzip_static` calls it: before any response
/// header exists (so `gzip_proxied` sees no Expires, Cache-Control,
/// Last-Modified or ETag).
pub fn gzip_ok(request: &RequestFacts<'_>, settings: &CompressSettings) -> bool {
    let none = ResponseView {
        status: 200,
        headers: &[],
        length: None,
    };
    let ae = request.accept_encoding.unwrap_or_default();
    accepts_gzip(ae) && core_allows(&none, request, settings, 0)
}

/// The rest of `ngx_http_gzip_ok` once the coding is accepted: MSIE 6,
/// `gzip_http_version`, `gzip_proxied` for requests with `Via`, and
/// `gzip_disable`.
fn core_allows(
    response: &ResponseView<'_>,
    request: &RequestFacts<'_>,
    settings: &CompressSettings,
    now: i64,
) -> bool {
    let ua = request.user_agent;
    if settings.gzip_disable_msie6 && ua.is_some_and(is_msie6) {
        return false;
    }
    let min = match settings.gzip_http_version {
        MinHttpVersion::Http10 => 1000,
        MinHttpVersion::Http11 => 1001,
    };
    if request.version < min {
        return false;
    }
    if request.via && !proxied_allows(response, request, settings.gzip_proxied, now) {
        return false;
    }
    match ua {
        Some(ua) => !settings.gzip_disable.iter().any(|p| p.regex.is_match(ua)),
        None => true,
    }
}

/// `gzip_proxied` for a request that came through a proxy.
fn proxied_allows(
    response: &ResponseView<'_>,
    request: &RequestFacts<'_>,
    p: GzipProxied,
    now: i64,
) -> bool {
    if p.has(GzipProxied::OFF) {
        return false;
    }
    if p.has(GzipProxied::ANY) || (request.authorization && p.has(GzipProxied::AUTH)) {
        return true;
    }
    if let Some(expires) = response.last("expires") {
        if !p.has(GzipProxied::EXPIRED) {
            return false;
        }
        let Some(expires) = http_time(expires) else {
            return false;
        };
        let date = match response.last("date") {
            Some(d) => match http_time(d) {
                Some(d) => d,
                None => return false,
            },
            None => now,
        };
        return expires < date;
    }
    if response.last("cache-control").is_some() {
        let has = |token: &str| response.all("cache-control").any(|v| has_token(v, token));
        return (p.has(GzipProxied::NO_CACHE) && has("no-cache"))
            || (p.has(GzipProxied::NO_STORE) && has("no-store"))
            || (p.has(GzipProxied::PRIVATE) && has("private"));
    }
    if p.has(GzipProxied::NO_LAST_MODIFIED)
        && !request.own_answer
        && response.last("last-modified").is_some()
    {
        return false;
    }
    if p.has(GzipProxied::NO_ETAG) && response.last("etag").is_some() {
        return false;
    }
    true
}

/// `ngx_http_parse_multi_header_lines` without a value: an element of
/// the comma-separated list is `token` (case-insensitive), trailing
/// spaces allowed.
fn has_token(value: &[u8], token: &str) -> bool {
    if token.len() > value.len() {
        return false;
    }
    value.split(|&b| b == b',').any(|element| {
        let element = element.trim_ascii_start();
        element.len() >= token.len()
            && element[..token.len()].eq_ignore_ascii_case(token.as_bytes())
            && element[token.len()..].iter().all(|&b| b == b' ')
    })
}

/// An HTTP date in seconds since the epoch (`ngx_parse_http_time`: the
/// three formats of RFC 9110).
fn http_time(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let t = httpdate::parse_http_date(text.trim()).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}
