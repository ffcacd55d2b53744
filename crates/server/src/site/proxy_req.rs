//! A `proxy_pass` request's two ends on [`Req`]: the head to send (the
//! URI and header list of `proxy.rs`, with this request's variables), and
//! the answer that comes back ([`ProxyOutcome`]): `$upstream_*`, the
//! headers nginx hides, `proxy_redirect`, `proxy_intercept_errors`, then
//! the usual response filters (`add_header`, `expires`).

use bytes::Bytes;
use portico_config::site::{
    ProxyHttpVersion, ProxyPass, ProxyRedirect, ProxyTarget, RedirectFrom, Template, TemplatePart,
    Variable,
};
use portico_proto::http1::{BodyFraming, Headers, RequestHead, Version};

use super::captures::Captures;
use super::headers;
use super::phases::{Req, Step};
use super::proxy::{self, BodyOut, Redirect, UriFacts};
use super::vars::{self, ProxyFacts, VarContext};
use crate::upstream::{ProxyCall, ProxyOutcome};

/// How many `proxy_set_header` lines are evaluated on the stack.
const INLINE_SET: usize = 8;

/// `proxy_pass`'s URL taken apart for this request.
struct PassParts {
    /// `$proxy_host` (shared with [`ProxyFacts`] and the `Host` field).
    host: Bytes,
    /// `$proxy_port`.
    port: Bytes,
    /// The URI part (`None`: the URL has none).
    uri: Option<Vec<u8>>,
    /// The URL as written (evaluated, for a URL with variables); only
    /// `proxy_redirect default` needs it.
    url: Vec<u8>,
    dynamic: bool,
}

/// Split `scheme://host[:port][/uri]` (a `proxy_pass` URL with variables,
/// evaluated): `$proxy_host` keeps a port other than the scheme's.
fn split_url(url: &[u8]) -> (Vec<u8>, Vec<u8>, Option<Vec<u8>>) {
    let (https, rest) = if let Some(rest) = strip_prefix_ci(url, b"https://") {
        (true, rest)
    } else {
        (false, strip_prefix_ci(url, b"http://").unwrap_or(url))
    };
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    let (authority, uri) = rest.split_at(end);
    let default = if https { &b"443"[..] } else { &b"80"[..] };
    let colon = authority
        .iter()
        .rposition(|&b| b == b':')
        .filter(|&c| !authority[c..].contains(&b']'));
    let (host, port) = match colon {
        Some(c) => (&authority[..c], &authority[c + 1..]),
        None => (authority, default),
    };
    let proxy_host = if port == default {
        host.to_vec()
    } else {
        authority.to_vec()
    };
    let uri = (!uri.is_empty()).then(|| uri.to_vec());
    (proxy_host, port.to_vec(), uri)
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

impl<'s> Req<'s> {
    /// `with_url`: fill [`PassParts::url`] (else left empty: one copy
    /// less per request).
    fn pass_parts(&self, pass: &ProxyPass, with_url: bool) -> PassParts {
        match &pass.target {
            ProxyTarget::Dynamic(url) => {
                let url = self.eval(url);
                let (host, port, uri) = split_url(&url);
                PassParts {
                    host: Bytes::from(host),
                    port: Bytes::from(port),
                    uri,
                    url,
                    dynamic: true,
                }
            }
            ProxyTarget::Group(_) | ProxyTarget::Peer(_) => PassParts {
                host: self.engine.pass_host(pass),
                // 0: `unix:`, where nginx's `$proxy_port` is empty.
                port: match pass.proxy_port {
                    0 => Bytes::new(),
                    80 => Bytes::from_static(b"80"),
                    443 => Bytes::from_static(b"443"),
                    n => Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                },
                uri: pass.uri.as_ref().map(|t| self.eval(t)),
                url: if with_url {
                    pass.url.clone().into_bytes()
                } else {
                    Vec::new()
                },
                dynamic: false,
            },
        }
    }

    /// For a `proxy_pass` with variables, the evaluated URL's `host[:port]`
    /// (as written: a port only when the URL has one).
    pub(crate) fn dynamic_authority(&self, pass: &ProxyPass) -> Option<Bytes> {
        let ProxyTarget::Dynamic(url) = &pass.target else {
            return None;
        };
        let url = self.eval(url);
        let rest = strip_prefix_ci(&url, b"http://")
            .or_else(|| strip_prefix_ci(&url, b"https://"))
            .unwrap_or(&url);
        let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        Some(Bytes::copy_from_slice(&rest[..end]))
    }

    /// The request head for `proxy_pass`, with `body` the framing of the
    /// body that goes with it. Sets `$proxy_host`/`$proxy_port`. Without a
    /// body, the head comes encoded too (see [`ProxyCall::encoded_head`]):
    /// its field list is then empty.
    pub(crate) fn proxy_head(
        &mut self,
        pass: &ProxyPass,
        body: BodyOut,
    ) -> (RequestHead, Option<Vec<u8>>) {
        let parts = self.pass_parts(pass, false);
        self.proxy = Some(ProxyFacts {
            host: parts.host.clone(),
            port: parts.port.clone(),
            ..ProxyFacts::default()
        });
        let target = if parts.uri.as_deref().is_none_or(<[u8]>::is_empty) && self.valid_unparsed {
            // The client's target as it came (`upstream_uri`'s first case):
            // a slice of its head, no copy, no `Vec` made into `Bytes`.
            self.request_uri.clone()
        } else {
            let quoted = {
                let path_end = self
                    .request_uri
                    .iter()
                    .position(|&b| b == b'?')
                    .unwrap_or(self.request_uri.len());
                self.request_uri[..path_end].contains(&b'%')
            };
            Bytes::from(proxy::upstream_uri(&UriFacts {
                pass_uri: parts.uri.as_deref(),
                dynamic: parts.dynamic,
                location: self.location_prefix().unwrap_or_default(),
                valid_location: self.valid_location,
                valid_unparsed: self.valid_unparsed,
                escape: quoted || self.internal,
                uri: &self.uri,
                args: &self.args,
                unparsed: &self.request_uri,
            }))
        };
        let settings = &*self.loc.config.proxy;
        let http11 = settings.http_version == ProxyHttpVersion::Http11;
        // One variable context for all the lines; `$proxy_host` alone (the
        // default `Host`) is the shared `Bytes`, not a copy.
        let cx = self.var_context(&self.uri);
        let evaluated = |(name, value): &'s (String, Template)| {
            let value = match value.parts.as_slice() {
                [TemplatePart::Var(Variable::ProxyHost)] => parts.host.clone(),
                [] => Bytes::new(),
                // nginx's default `Connection: close` (HTTP/1.0 upstreams):
                // no allocation; another literal, one of its size.
                [TemplatePart::Literal(text)] if text == "close" => Bytes::from_static(b"close"),
                [TemplatePart::Literal(text)] => Bytes::copy_from_slice(text.as_bytes()),
                _ => {
                    // Sized for the usual value: no growth from empty.
                    let mut out = Vec::with_capacity(64);
                    vars::eval(value, &cx, &mut out);
                    Bytes::from(out)
                }
            };
            (name.as_str(), value)
        };
        // On the stack for the usual few lines (no allocation), else a Vec.
        let mut inline: [(&str, Bytes); INLINE_SET] = Default::default();
        let mut spilled = Vec::new();
        let set: &mut [(&str, Bytes)] = if settings.set_headers.len() <= INLINE_SET {
            for (slot, line) in inline.iter_mut().zip(&settings.set_headers) {
                *slot = evaluated(line);
            }
            &mut inline[..settings.set_headers.len()]
        } else {
            spilled.extend(settings.set_headers.iter().map(evaluated));
            &mut spilled
        };
        let version = if http11 {
            Version::Http11
        } else {
            Version::Http10
        };
        let (headers, host, closes, encoded) = if body == BodyOut::None {
            // The usual request: its head written once, here.
            let head = proxy::encode_bodiless_head(
                [&self.method, &target[..], version.as_bytes()],
                set,
                &parts.host,
                &self.facts.headers,
                settings.pass_request_headers,
            );
            (Headers::new(), head.host, head.closes, Some(head.bytes))
        } else {
            let headers = proxy::request_headers(
                set,
                &parts.host,
                &self.facts.headers,
                settings.pass_request_headers,
                body,
            );
            let host = headers
                .position(b"host")
                .and_then(|i| headers.value_bytes(i));
            let closes = headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case(b"connection")
                    && h.value
                        .split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            });
            (headers, host, closes, None)
        };
        let q = target.iter().position(|&b| b == b'?');
        // Slices of one buffer: no copy of the path and query.
        let path = target.slice(..q.unwrap_or(target.len()));
        let query = q.map_or_else(Bytes::new, |q| target.slice(q + 1..));
        let head = RequestHead {
            method: self.method.clone(),
            target,
            path,
            query,
            version,
            headers,
            framing: match body {
                BodyOut::None => BodyFraming::None,
                BodyOut::Length(n) => BodyFraming::Length(n),
                BodyOut::Chunked => BodyFraming::Chunked,
            },
            keep_alive: http11 && !closes,
            expect_continue: false,
            host,
            head_len: 0,
        };
        (head, encoded)
    }

    /// The answer of a `proxy_pass` upstream, finished: Portico's own
    /// answers (every peer failed) and intercepted upstream errors go
    /// through `error_page`; the rest is relayed with `proxy_redirect`
    /// applied and nginx's hidden headers dropped.
    pub(crate) fn after_proxy(&mut self, pass: &ProxyPass, outcome: ProxyOutcome) -> Step {
        let facts = self.proxy.get_or_insert_with(ProxyFacts::default);
        facts.upstream = outcome.tries;
        let mut response = outcome.response;
        let status = response.status;
        if !outcome.from_upstream {
            return self.special(status, Vec::new());
        }
        let config = self.loc.config;
        if config.proxy.intercept_errors
            && status >= 300
            && config.error_pages.iter().any(|p| p.codes.contains(&status))
        {
            return self.special(status, Vec::new());
        }
        proxy::hide_headers(&mut response.headers, &config.proxy);
        self.redirect_headers(pass, &mut response.headers);
        Step::Out(self.finish_upstream(response))
    }

    /// The answer of a `uwsgi_pass` upstream that went through the proxy
    /// seam: `$upstream_*` recorded, Portico's own answers (every peer
    /// failed) through `error_page` as nginx does, the rest as any uwsgi
    /// answer (`uwsgi_intercept_errors`).
    pub(crate) fn after_uwsgi(&mut self, outcome: ProxyOutcome) -> Step {
        let facts = self.proxy.get_or_insert_with(ProxyFacts::default);
        facts.upstream = outcome.tries;
        if !outcome.from_upstream {
            return self.special(outcome.response.status, Vec::new());
        }
        self.after_upstream(outcome.response)
    }

    /// `proxy_redirect` on `Location` and `Refresh` (a rewritten Location
    /// that starts with `/` is made absolute, as nginx's header filter
    /// does for the Location it set).
    fn redirect_headers(&self, pass: &ProxyPass, headers: &mut [(Bytes, Bytes)]) {
        let rewritable = |name: &Bytes| {
            name.eq_ignore_ascii_case(b"location") || name.eq_ignore_ascii_case(b"refresh")
        };
        if !headers.iter().any(|(name, _)| rewritable(name)) {
            return; // the usual answer: nothing to rewrite, nothing to work out
        }
        let settings = &*self.loc.config.proxy;
        let parts;
        let mut rules: Vec<Redirect<'_>> = Vec::new();
        match &settings.redirect {
            ProxyRedirect::Off => return,
            ProxyRedirect::Default => {
                parts = self.pass_parts(pass, true);
                if parts.dynamic {
                    return;
                }
                match (&parts.uri, self.location_prefix()) {
                    (Some(_), Some(location)) => rules.push(Redirect::Prefix {
                        from: parts.url.clone(),
                        to: location.to_vec(),
                    }),
                    (Some(_), None) => return,
                    (None, _) => {
                        let mut from = parts.url.clone();
                        from.push(b'/');
                        rules.push(Redirect::Prefix {
                            from,
                            to: b"/".to_vec(),
                        });
                    }
                }
            }
            ProxyRedirect::Rules(list) => {
                for rule in list {
                    rules.push(match &rule.from {
                        RedirectFrom::Text(from) => Redirect::Prefix {
                            from: self.eval(from),
                            to: self.eval(&rule.to),
                        },
                        RedirectFrom::Regex(pattern) => Redirect::Regex {
                            regex: &pattern.regex,
                            to: &rule.to,
                        },
                    });
                }
            }
        }
        let eval = |t: &Template, caps: &Captures| self.eval_with(t, caps);
        let base = headers::redirect_base(
            self.facts.scheme,
            &self.redirect_host(),
            self.facts.local.map(|a| a.port()),
        );
        for (name, value) in headers.iter_mut() {
            if name.eq_ignore_ascii_case(b"location") {
                if let Some(mut new) = proxy::rewrite_redirect(value, 0, &rules, &eval) {
                    if new.first() == Some(&b'/') {
                        new.splice(0..0, base.iter().copied());
                    }
                    *value = Bytes::from(new);
                }
            } else if name.eq_ignore_ascii_case(b"refresh")
                && let Some(at) = proxy::refresh_url_at(value)
                && let Some(new) = proxy::rewrite_redirect(value, at, &rules, &eval)
            {
                *value = Bytes::from(new);
            }
        }
    }

    /// A template's value with `captures` as `$1`.. (a `proxy_redirect`
    /// regex's replacement).
    fn eval_with(&self, template: &Template, captures: &Captures) -> Vec<u8> {
        let mut out = Vec::new();
        let cx = VarContext {
            captures,
            ..self.var_context(&self.uri)
        };
        vars::eval(template, &cx, &mut out);
        out
    }
}
