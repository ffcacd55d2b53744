//! `proxy_pass`'s request and answer as nginx's `ngx_http_proxy_module`
//! makes them, as pure functions the engine calls: the upstream URI
//! (`ngx_http_proxy_create_request`'s three cases), the header list
//! (`proxy_set_header`, then the client's, minus nginx's own table and
//! the hop-by-hop fields), and on the way back `proxy_redirect` on
//! `Location`/`Refresh` and the headers nginx hides by default.
//!
//! Header order is nginx's (1.22 to 1.29.7, `ngx_http_proxy_init_headers`):
//! the `proxy_set_header` lines in their order (the converter appends
//! nginx's defaults, `Host $proxy_host` and `Connection`, after the
//! user's), then the re-made body framing (`Content-Length` or
//! `Transfer-Encoding: chunked`), then every client header not named
//! above. As nginx, the other fields a client sends go on as they are,
//! including `Trailer`, `Proxy-Connection` and fields its `Connection`
//! names: an upstream sees what it sees behind nginx ([`NOT_PASSED`] is
//! nginx's own table).

use bytes::Bytes;
use portico_config::site::{ProxySettings, Template};
use portico_proto::http1::Headers;

use super::captures::Captures;

/// What the URI mapping needs to know about the request (nginx's
/// `r->uri`, `r->args`, `r->unparsed_uri` and their validity flags).
#[derive(Debug, Clone, Copy)]
pub(crate) struct UriFacts<'a> {
    /// The evaluated URI part of `proxy_pass` (`None`: the URL has none).
    pub pass_uri: Option<&'a [u8]>,
    /// `proxy_pass` has variables: a URI part is sent exactly as evaluated.
    pub dynamic: bool,
    /// The location's name (prefix or `=` URI) that the URI part replaces.
    pub location: &'a [u8],
    /// nginx's `r->valid_location`: cleared by `rewrite ... break`.
    pub valid_location: bool,
    /// nginx's `r->valid_unparsed_uri`: the URI is still the client's.
    pub valid_unparsed: bool,
    /// nginx's `r->quoted_uri || r->internal`: the decoded URI is escaped.
    pub escape: bool,
    /// `$uri` (decoded).
    pub uri: &'a [u8],
    /// `$args` (raw).
    pub args: &'a [u8],
    /// The target as the client sent it, from its path on.
    pub unparsed: &'a [u8],
}

/// The URI to send upstream (`ngx_http_proxy_create_request`).
pub(crate) fn upstream_uri(f: &UriFacts<'_>) -> Vec<u8> {
    let part = f.pass_uri.unwrap_or_default();
    if f.dynamic && !part.is_empty() {
        return part.to_vec();
    }
    if part.is_empty() && f.valid_unparsed {
        return f.unparsed.to_vec();
    }
    let loc_len = if f.valid_location && !part.is_empty() {
        f.location.len().min(f.uri.len())
    } else {
        0
    };
    let mut out = Vec::with_capacity(part.len() + f.uri.len() + f.args.len() + 8);
    if f.valid_location {
        out.extend_from_slice(part);
    }
    let rest = f.uri.get(loc_len..).unwrap_or_default();
    if f.escape {
        escape_uri(rest, &mut out);
    } else {
        out.extend_from_slice(rest);
    }
    if !f.args.is_empty() {
        out.push(b'?');
        out.extend_from_slice(f.args);
    }
    out
}

/// nginx's `ngx_escape_uri(NGX_ESCAPE_URI)`: control bytes, bytes above
/// 0x7e, space, `"`, `#`, `%`, `<`, `>`, `?`, `\`, `^`, `` ` ``, `{`, `|`, `}`
/// become `%XX` (upper-case hex).
pub(crate) fn escape_uri(src: &[u8], out: &mut Vec<u8>) {
    portico_proto::percent::percent_encode_into(out, src, portico_proto::percent::NGINX_ESCAPE_URI);
}

/// How the request body goes upstream (the framing nginx re-makes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyOut {
    /// No body header (none announced, or `proxy_pass_request_body off`).
    None,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (a chunked body streamed as it comes).
    Chunked,
}

/// Client headers never passed: nginx's own table (`ngx_http_proxy_headers[]`,
/// 1.22 to 1.29).
const NOT_PASSED: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "keep-alive",
    "expect",
    "upgrade",
];

/// Whether a client's field goes upstream: not in [`NOT_PASSED`] and not
/// replaced by a `proxy_set_header` of the same name.
fn client_field_passed(name: &[u8], set: &[(&str, Bytes)]) -> bool {
    !NOT_PASSED
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
        && !set
            .iter()
            .any(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// The header list to send: `set` is `proxy_set_header` evaluated, in
/// order (an empty value sends nothing, `Host` included); `proxy_host` is
/// `$proxy_host`, the Host after them when `set` has none (the converter
/// always puts nginx's default in); the client's `headers` follow unless
/// `pass_client` is off.
pub(crate) fn request_headers(
    set: &[(&str, Bytes)],
    proxy_host: &Bytes,
    client: &Headers,
    pass_client: bool,
    body: BodyOut,
) -> Headers {
    // The set lines and our fields are copied into the list's own buffer;
    // the client's fields stay positions in its head.
    let mut out = Headers::with_capacity(set.len() + client.len() + 3);
    for (name, value) in set {
        if !value.is_empty() {
            out.push(name.as_bytes(), value);
        }
    }
    let named = |name: &str| set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !named("host") {
        out.push(b"Host", proxy_host);
    }
    match body {
        BodyOut::Length(n) if !named("content-length") => {
            out.push(b"Content-Length", itoa::Buffer::new().format(n).as_bytes());
        }
        BodyOut::Chunked if !named("transfer-encoding") => {
            out.push(b"Transfer-Encoding", b"chunked");
        }
        _ => {}
    }
    if pass_client {
        out.extend_from(client, |h| client_field_passed(h.name, set));
    }
    out
}

/// A request head for an upstream, encoded: what [`request_headers`] lists
/// for a request without a body, written as the proxy crate writes a head
/// (a framing field a `proxy_set_header` line names is left out, as there).
pub(crate) struct EncodedHead {
    /// `METHOD target VERSION\r\n`, the fields, the blank line.
    pub bytes: Vec<u8>,
    /// The first `Host` field sent.
    pub host: Option<Bytes>,
    /// A `Connection` field sent asks to close.
    pub closes: bool,
}

/// [`request_headers`] with no body, written straight into one buffer: no
/// field list, no copy of the client's fields.
pub(crate) fn encode_bodiless_head(
    request_line: [&[u8]; 3],
    set: &[(&str, Bytes)],
    proxy_host: &Bytes,
    client: &Headers,
    pass_client: bool,
) -> EncodedHead {
    let [method, target, version] = request_line;
    let mut head = EncodedHead {
        bytes: Vec::with_capacity(
            64 + method.len()
                + target.len()
                + proxy_host.len()
                + client
                    .iter()
                    .map(|h| h.name.len() + h.value.len() + 4)
                    .sum::<usize>(),
        ),
        host: None,
        closes: false,
    };
    head.bytes.extend_from_slice(method);
    head.bytes.push(b' ');
    head.bytes.extend_from_slice(target);
    head.bytes.push(b' ');
    head.bytes.extend_from_slice(version);
    head.bytes.extend_from_slice(b"\r\n");
    let mut field = |name: &[u8], value: &Bytes| {
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            return;
        }
        if head.host.is_none() && name.eq_ignore_ascii_case(b"host") {
            head.host = Some(value.clone());
        }
        if name.eq_ignore_ascii_case(b"connection")
            && value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        {
            head.closes = true;
        }
        head.bytes.extend_from_slice(name);
        head.bytes.extend_from_slice(b": ");
        head.bytes.extend_from_slice(value);
        head.bytes.extend_from_slice(b"\r\n");
    };
    for (name, value) in set {
        if !value.is_empty() {
            field(name.as_bytes(), value);
        }
    }
    let named = |name: &str| set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !named("host") {
        field(b"Host", proxy_host);
    }
    if pass_client {
        for h in client {
            if client_field_passed(h.name, set) {
                // NOT_PASSED holds Host, Connection and the framing fields:
                // a client's field that gets here is written as it is.
                head.bytes.extend_from_slice(h.name);
                head.bytes.extend_from_slice(b": ");
                head.bytes.extend_from_slice(h.value);
                head.bytes.extend_from_slice(b"\r\n");
            }
        }
    }
    head.bytes.extend_from_slice(b"\r\n");
    head
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// Response headers nginx hides by default (`ngx_http_proxy_hide_headers[]`).
const HIDDEN: [&str; 8] = [
    "date",
    "server",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
];

/// Drop the headers nginx does not relay: its default hidden set (unless
/// `proxy_pass_header` names one) and `proxy_hide_header`'s.
pub(crate) fn hide_headers(headers: &mut Vec<(Bytes, Bytes)>, settings: &ProxySettings) {
    headers.retain(|(name, _)| {
        let is = |n: &String| name.eq_ignore_ascii_case(n.as_bytes());
        let default_hidden = HIDDEN
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
            && !settings.pass_headers.iter().any(is);
        !(default_hidden || settings.hide_headers.iter().any(is))
    });
}

/// One `proxy_redirect` rule, its texts evaluated for this request.
pub(crate) enum Redirect<'a> {
    /// `FROM TO`: a `Location` starting with FROM gets TO instead.
    Prefix { from: Vec<u8>, to: Vec<u8> },
    /// `~FROM TO`: a value the regex matches is replaced whole by TO,
    /// evaluated with the match's captures.
    Regex {
        regex: &'a regex::bytes::Regex,
        to: &'a Template,
    },
}

/// Rewrite `value` from byte `prefix` on by the first rule that applies
/// (nginx's `ngx_http_proxy_rewrite_redirect`); `None`: none applied.
/// `eval` gives a regex rule's replacement its value with the captures.
pub(crate) fn rewrite_redirect(
    value: &[u8],
    prefix: usize,
    rules: &[Redirect<'_>],
    eval: &dyn Fn(&Template, &Captures) -> Vec<u8>,
) -> Option<Vec<u8>> {
    let head = value.get(..prefix)?;
    let rest = &value[prefix..];
    for rule in rules {
        match rule {
            Redirect::Prefix { from, to } => {
                if let Some(tail) = rest.strip_prefix(from.as_slice()) {
                    return Some([head, to, tail].concat());
                }
            }
            Redirect::Regex { regex, to } => {
                if let Some(caps) = Captures::of_match(regex, rest) {
                    return Some([head, &eval(to, &caps)].concat());
                }
            }
        }
    }
    None
}

/// Where a `Refresh` value's URL starts: after its `url=` (any case).
pub(crate) fn refresh_url_at(value: &[u8]) -> Option<usize> {
    value
        .windows(4)
        .position(|w| w.eq_ignore_ascii_case(b"url="))
        .map(|at| at + 4)
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
