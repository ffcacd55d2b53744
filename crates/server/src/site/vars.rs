//! The values of nginx variables for one request: [`eval`] fills a
//! [`Template`] (`"$scheme://$host$request_uri"`) from a [`VarContext`], the
//! borrowed facts of the request, its connection, the chosen server and
//! location, and (for the access log) the response.
//!
//! Values follow `ngx_http_variables.c` (reference §5.5), with the newest
//! nginx's joining of repeated headers in `$http_NAME`. Everything is
//! appended to a caller's buffer; a variable without a value appends
//! nothing. Nothing here blocks except `$realpath_root` (one `realpath`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::site::{
    DocRoot, ListenAddr, LocationConfig, Server, ServerName, Template, TemplatePart, VarMap,
    Variable,
};
use portico_proto::http1::Headers;

use super::captures::Captures;
use super::lookup;
use super::select::{ConnAddr, host_key};
use crate::UpstreamTries;

/// What the access log knows once the response is sent (zero before).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ResponseFacts {
    /// The status sent (`$status`, printed `000` when none yet).
    pub status: u16,
    /// `$body_bytes_sent`.
    pub body_bytes_sent: u64,
    /// `$bytes_sent`: head and body.
    pub bytes_sent: u64,
    /// The gzip filter's bytes in and out, for `$gzip_ratio` (`None`:
    /// not gzipped, or the body was cut).
    pub gzip: Option<(u64, u64)>,
}

/// The reverse proxy's facts of a proxied request: `$proxy_host`,
/// `$proxy_port` (from `proxy_pass`) and, once the upstream answered,
/// `$upstream_addr`, `$upstream_status`, `$upstream_response_time` (empty:
/// not known, logged `-`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProxyFacts {
    pub host: Bytes,
    pub port: Bytes,
    pub upstream: UpstreamTries,
}

/// Everything a variable may need, borrowed from the request's state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VarContext<'a> {
    /// `$request_method`.
    pub method: &'a [u8],
    /// The request target as sent (the middle of `$request`).
    pub target: &'a [u8],
    /// `$request_uri` ([`super::NormalizedUri::request_uri`]).
    pub request_uri: &'a [u8],
    /// `$uri`: the current URI (changes on rewrite, index, try_files).
    pub uri: &'a [u8],
    /// `$args`, raw.
    pub args: &'a [u8],
    pub headers: &'a Headers,
    /// The host of an absolute-form target, else the Host header, as sent
    /// (validated by the caller); empty when neither was given.
    pub host: &'a [u8],
    /// The client (`None`: a unix socket).
    pub peer: Option<SocketAddr>,
    /// The address the connection arrived on.
    pub local: &'a ConnAddr,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The connection's TLS facts (`None`: plain).
    pub tls: Option<&'a crate::tls::TlsFacts>,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub server_protocol: &'a str,
    pub server: &'a Server,
    /// The configuration of the current location (the server's when none).
    pub location: &'a LocationConfig,
    /// The prefix (or `=` URI) of the current location, which `alias`
    /// replaces; `None` for a regex location, whose alias is the whole path.
    pub location_prefix: Option<&'a [u8]>,
    /// nginx's `-p` prefix: relative roots are resolved against it.
    pub prefix: &'a Path,
    /// The captures of the last regex that matched (`$1`, named groups).
    pub captures: &'a Captures,
    /// The captures of the `server_name` regex: their named groups stay
    /// variables after a location regex replaced `$1`.
    pub server_captures: &'a Captures,
    pub response: ResponseFacts,
    /// When the request started (`$request_time`).
    pub start: SystemTime,
    /// Now (`$msec`, `$time_local`, end of `$request_time`); `None`: the
    /// clock is read when one of them is asked for (most templates never do).
    pub now: Option<SystemTime>,
    /// `Site::maps`, for [`Variable::Map`].
    pub maps: &'a [VarMap],
    /// The `proxy_pass` facts (`None`: not a proxied request, and the
    /// `$proxy_host`/`$upstream_*` variables have no value).
    pub proxy: Option<&'a ProxyFacts>,
}

impl VarContext<'_> {
    /// The time of `$msec`, `$time_local`... (read now if not given).
    fn now(&self) -> SystemTime {
        self.now.unwrap_or_else(SystemTime::now)
    }
}

/// How deep variables may refer to maps that refer to maps (nginx reports
/// a cycle; here a cycle just ends with an empty value).
const MAX_DEPTH: usize = 8;

/// Append the value of `template` to `out`.
pub(crate) fn eval(template: &Template, cx: &VarContext<'_>, out: &mut Vec<u8>) {
    let reads_clock = template.parts.iter().any(|part| match part {
        TemplatePart::Var(var) => reads_clock(var),
        TemplatePart::Literal(_) => false,
    });
    if reads_clock && cx.now.is_none() {
        // One reading for the whole template, as nginx's cached time.
        let cx = VarContext {
            now: Some(SystemTime::now()),
            ..*cx
        };
        return eval_at(template, &cx, out, 0);
    }
    eval_at(template, cx, out, 0);
}

/// Append the value of one variable to `out` (nothing when it has none).
pub(crate) fn eval_var(var: &Variable, cx: &VarContext<'_>, out: &mut Vec<u8>) {
    if reads_clock(var) && cx.now.is_none() {
        let cx = VarContext {
            now: Some(SystemTime::now()),
            ..*cx
        };
        return var_at(var, &cx, out, 0);
    }
    var_at(var, cx, out, 0);
}

/// Whether `var` (or a map it names, whose values may) needs the time.
fn reads_clock(var: &Variable) -> bool {
    matches!(
        var,
        Variable::RequestTime
            | Variable::Msec
            | Variable::TimeLocal
            | Variable::TimeIso8601
            | Variable::Map(_)
    )
}

fn eval_at(template: &Template, cx: &VarContext<'_>, out: &mut Vec<u8>, depth: usize) {
    for part in &template.parts {
        match part {
            TemplatePart::Literal(text) => out.extend_from_slice(text.as_bytes()),
            TemplatePart::Var(var) => var_at(var, cx, out, depth),
        }
    }
}

fn var_at(var: &Variable, cx: &VarContext<'_>, out: &mut Vec<u8>, depth: usize) {
    match var {
        Variable::Uri | Variable::DocumentUri => out.extend_from_slice(cx.uri),
        Variable::RequestUri => out.extend_from_slice(cx.request_uri),
        Variable::Args | Variable::QueryString => out.extend_from_slice(cx.args),
        Variable::IsArgs => {
            if !cx.args.is_empty() {
                out.push(b'?');
            }
        }
        Variable::Arg(name) => {
            if let Some(value) = lookup::arg(cx.args, name) {
                out.extend_from_slice(value);
            }
        }
        Variable::Host => host(cx, out),
        Variable::Http(name) => {
            lookup::append_header(cx.headers, name, out);
        }
        Variable::Cookie(name) => {
            if let Some(value) = lookup::cookie(cx.headers, name) {
                out.extend_from_slice(value);
            }
        }
        Variable::RemoteAddr => match cx.peer {
            Some(peer) => write_ip(peer, out),
            None => out.extend_from_slice(b"unix:"),
        },
        Variable::RemotePort => {
            if let Some(peer) = cx.peer {
                push_int(out, peer.port());
            }
        }
        Variable::ServerAddr => match cx.local {
            ListenAddr::Tcp(addr) => write_ip(*addr, out),
            ListenAddr::Unix(path) => {
                out.extend_from_slice(b"unix:");
                out.extend_from_slice(path.as_os_str().as_encoded_bytes());
            }
        },
        Variable::ServerPort => {
            if let ListenAddr::Tcp(addr) = cx.local {
                push_int(out, addr.port());
            }
        }
        Variable::ServerName => server_name(cx.server, out),
        Variable::ServerProtocol => out.extend_from_slice(cx.server_protocol.as_bytes()),
        Variable::Scheme => out.extend_from_slice(cx.scheme.as_bytes()),
        Variable::Https => {
            if cx.scheme == "https" {
                out.extend_from_slice(b"on");
            }
        }
        Variable::Http2 => {
            if cx.server_protocol == "HTTP/2.0" {
                out.extend_from_slice(if cx.scheme == "https" { b"h2" } else { b"h2c" });
            }
        }
        Variable::SslProtocol => {
            if let Some(t) = cx.tls {
                out.extend_from_slice(t.protocol.as_bytes());
            }
        }
        Variable::SslCipher => {
            if let Some(t) = cx.tls {
                out.extend_from_slice(t.cipher.as_bytes());
            }
        }
        Variable::SslServerName => {
            if let Some(name) = cx.tls.and_then(|t| t.server_name.as_deref()) {
                out.extend_from_slice(name.as_bytes());
            }
        }
        Variable::SslClientSDn => {
            if let Some(dn) = cx.tls.and_then(|t| t.client_s_dn.as_deref()) {
                out.extend_from_slice(dn.as_bytes());
            }
        }
        Variable::SslClientSDnLegacy => {
            if let Some(dn) = cx.tls.and_then(|t| t.client_s_dn_legacy.as_deref()) {
                out.extend_from_slice(dn.as_bytes());
            }
        }
        Variable::SslClientIDn => {
            if let Some(dn) = cx.tls.and_then(|t| t.client_i_dn.as_deref()) {
                out.extend_from_slice(dn.as_bytes());
            }
        }
        Variable::SslClientVerify => {
            if let Some(t) = cx.tls {
                out.extend_from_slice(t.client_verify.as_bytes());
            }
        }
        Variable::SslSessionReused => {
            if let Some(t) = cx.tls {
                out.push(if t.session_reused { b'r' } else { b'.' });
            }
        }
        Variable::RequestMethod => out.extend_from_slice(cx.method),
        Variable::ContentType => {
            if let Some(value) = lookup::first_header(cx.headers, "content-type") {
                out.extend_from_slice(value);
            }
        }
        Variable::ContentLength => {
            if let Some(value) = lookup::first_header(cx.headers, "content-length") {
                out.extend_from_slice(value);
            }
        }
        Variable::DocumentRoot => document_root(cx, out, depth),
        Variable::RealpathRoot => {
            let mut root = Vec::new();
            document_root(cx, &mut root, depth);
            let root = Path::new(std::ffi::OsStr::from_bytes(&root));
            if let Ok(real) = std::fs::canonicalize(root) {
                out.extend_from_slice(real.as_os_str().as_encoded_bytes());
            }
        }
        Variable::RequestFilename => {
            request_filename_at(cx, out, depth);
        }
        Variable::Status => {
            let _ = write!(out, "{:03}", cx.response.status);
        }
        Variable::BodyBytesSent => push_int(out, cx.response.body_bytes_sent),
        Variable::BytesSent => push_int(out, cx.response.bytes_sent),
        Variable::GzipRatio => {
            if let Some((zin, zout)) = cx.response.gzip {
                out.extend_from_slice(crate::compress::ratio_text(zin, zout).as_bytes());
            }
        }
        Variable::RequestTime => {
            let spent = cx.now().duration_since(cx.start).unwrap_or(Duration::ZERO);
            push_seconds_millis(out, spent);
        }
        Variable::Msec => {
            let since = cx
                .now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            push_seconds_millis(out, since);
        }
        Variable::TimeLocal => local_time(cx.now(), TimeForm::Local, out),
        Variable::TimeIso8601 => local_time(cx.now(), TimeForm::Iso8601, out),
        Variable::Request => {
            out.extend_from_slice(cx.method);
            out.push(b' ');
            out.extend_from_slice(cx.target);
            out.push(b' ');
            out.extend_from_slice(cx.server_protocol.as_bytes());
        }
        Variable::RemoteUser => {
            if let Some(user) = lookup::basic_user(cx.headers) {
                out.extend_from_slice(&user);
            }
        }
        Variable::Hostname => out.extend_from_slice(hostname()),
        Variable::Pid => push_int(out, std::process::id()),
        Variable::ProxyHost => {
            if let Some(p) = cx.proxy {
                out.extend_from_slice(&p.host);
            }
        }
        Variable::ProxyPort => {
            if let Some(p) = cx.proxy {
                out.extend_from_slice(&p.port);
            }
        }
        Variable::ProxyAddXForwardedFor => add_x_forwarded_for(cx, out),
        Variable::UpstreamAddr => {
            if let Some(p) = cx.proxy {
                out.extend_from_slice(p.upstream.addr().as_bytes());
            }
        }
        Variable::UpstreamStatus => {
            if let Some(p) = cx.proxy {
                p.upstream.write_status(out);
            }
        }
        Variable::UpstreamResponseTime => {
            if let Some(p) = cx.proxy {
                p.upstream.write_response_time(out);
            }
        }
        Variable::Capture(n) => {
            if let Some(value) = cx.captures.get(*n) {
                out.extend_from_slice(value);
            }
        }
        Variable::Named(name) => {
            let value = cx
                .captures
                .named(name)
                .or_else(|| cx.server_captures.named(name));
            if let Some(value) = value {
                out.extend_from_slice(value);
            }
        }
        Variable::Map(index) => {
            if let Some(map) = cx.maps.get(*index)
                && depth < MAX_DEPTH
            {
                eval_map(map, cx, out, depth + 1);
            }
        }
    }
}

/// `$host`: the request's host lower-cased without port and trailing dot,
/// else the server's first name.
fn host(cx: &VarContext<'_>, out: &mut Vec<u8>) {
    let host = host_key(cx.host);
    if host.is_empty() {
        server_name(cx.server, out);
    } else {
        out.extend(host.iter().map(u8::to_ascii_lowercase));
    }
}

/// `$proxy_add_x_forwarded_for` (nginx's
/// `ngx_http_proxy_add_x_forwarded_for_variable`): each X-Forwarded-For
/// header's value followed by `, `, then `$remote_addr`.
fn add_x_forwarded_for(cx: &VarContext<'_>, out: &mut Vec<u8>) {
    for h in cx.headers {
        if h.name.eq_ignore_ascii_case(b"x-forwarded-for") {
            out.extend_from_slice(h.value);
            out.extend_from_slice(b", ");
        }
    }
    var_at(&Variable::RemoteAddr, cx, out, MAX_DEPTH);
}

/// `$server_name`: the first `server_name` as written (`*.example.com`,
/// `~^re$` included), empty when the server has none.
fn server_name(server: &Server, out: &mut Vec<u8>) {
    match server.names.first() {
        None => {}
        Some(ServerName::Exact(name)) => out.extend_from_slice(name.as_bytes()),
        Some(ServerName::LeadingWildcard(suffix)) => {
            out.push(b'*');
            out.extend_from_slice(suffix.as_bytes());
        }
        Some(ServerName::TrailingWildcard(prefix)) => {
            out.extend_from_slice(prefix.as_bytes());
            out.push(b'*');
        }
        Some(ServerName::Regex(pattern)) => {
            out.push(b'~');
            out.extend_from_slice(pattern.source.as_bytes());
        }
    }
}

/// `$document_root`: the `root` (one trailing `/` dropped, as nginx does)
/// or the `alias`, relative ones resolved against the prefix.
fn document_root(cx: &VarContext<'_>, out: &mut Vec<u8>, depth: usize) {
    let start = out.len();
    let (template, is_root) = match &cx.location.root {
        DocRoot::Root(t) => (t, true),
        DocRoot::Alias(t) => (t, false),
    };
    eval_at(template, cx, out, depth);
    if is_root && out.len() > start && out.last() == Some(&b'/') {
        out.pop();
    }
    if out.len() > start && out[start] != b'/' {
        let prefix = cx.prefix.as_os_str().as_encoded_bytes();
        let mut full = Vec::with_capacity(prefix.len() + 1);
        full.extend_from_slice(prefix);
        if !prefix.ends_with(b"/") {
            full.push(b'/');
        }
        out.splice(start..start, full);
    }
}

/// Append `$request_filename`: the document root plus the URI, or for an
/// `alias` the URI with the location's prefix replaced (a regex location's
/// alias is the whole path). `false` when an alias cannot apply because
/// the URI no longer starts with the prefix (nginx: "alias cannot be used
/// in location where URI was rewritten"); the root alone is appended then.
pub(crate) fn request_filename(cx: &VarContext<'_>, out: &mut Vec<u8>) -> bool {
    request_filename_at(cx, out, 0)
}

fn request_filename_at(cx: &VarContext<'_>, out: &mut Vec<u8>, depth: usize) -> bool {
    document_root(cx, out, depth);
    match (&cx.location.root, cx.location_prefix) {
        (DocRoot::Root(_), _) => out.extend_from_slice(cx.uri),
        (DocRoot::Alias(_), None) => {}
        (DocRoot::Alias(_), Some(prefix)) => match cx.uri.strip_prefix(prefix) {
            Some(rest) => out.extend_from_slice(rest),
            None => return false,
        },
    }
    true
}

/// `map $src $dst {}`: exact keys (case-insensitive; with `hostnames`,
/// then the longest `*.suffix`, then the longest `prefix.*`), then the
/// regexes in order (their captures usable in the value), else the default.
fn eval_map(map: &VarMap, cx: &VarContext<'_>, out: &mut Vec<u8>, depth: usize) {
    let mut source = Vec::new();
    eval_at(&map.source, cx, &mut source, depth);
    let mut key = &source[..];
    if map.hostnames {
        key = key.strip_suffix(b".").unwrap_or(key);
    }
    if let Some(value) = map_exact(map, key) {
        eval_at(value, cx, out, depth);
        return;
    }
    if !source.is_empty() {
        for (pattern, value) in &map.regexes {
            if let Some(captures) = Captures::of_match(&pattern.regex, &source) {
                let inner = VarContext {
                    captures: &captures,
                    ..*cx
                };
                eval_at(value, &inner, out, depth);
                return;
            }
        }
    }
    eval_at(&map.default, cx, out, depth);
}

fn map_exact<'m>(map: &'m VarMap, key: &[u8]) -> Option<&'m Template> {
    let forms = |k: &'m String| key_forms(k, map.hostnames);
    let exact = map.exact.iter().find(|(k, _)| {
        forms(k)
            .exact
            .is_some_and(|e| e.as_bytes().eq_ignore_ascii_case(key))
    });
    if let Some((_, value)) = exact {
        return Some(value);
    }
    let longest = |pick: fn(&KeyForms<'m>) -> Option<&'m str>, fits: fn(&[u8], &[u8]) -> bool| {
        map.exact
            .iter()
            .filter_map(|(k, v)| {
                let part = pick(&forms(k))?;
                let part = part.as_bytes();
                (key.len() > part.len() && fits(key, part)).then_some((part.len(), v))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, v)| v)
    };
    longest(
        |f| f.leading,
        |key, suffix| key[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix),
    )
    .or_else(|| {
        longest(
            |f| f.trailing,
            |key, prefix| key[..prefix.len()].eq_ignore_ascii_case(prefix),
        )
    })
}

/// How a map key matches: `hostnames` gives `*.x` (leading `.x`), `.x`
/// (`x` and leading `.x`) and `x.*` (trailing `x.`) their wildcard sense.
struct KeyForms<'k> {
    exact: Option<&'k str>,
    leading: Option<&'k str>,
    trailing: Option<&'k str>,
}

fn key_forms(key: &str, hostnames: bool) -> KeyForms<'_> {
    let mut forms = KeyForms {
        exact: Some(key),
        leading: None,
        trailing: None,
    };
    if !hostnames {
        return forms;
    }
    if let Some(suffix) = key.strip_prefix('*') {
        forms.exact = None;
        forms.leading = Some(suffix);
    } else if let Some(name) = key.strip_prefix('.') {
        forms.exact = Some(name);
        forms.leading = Some(key);
    } else if let Some(prefix) = key.strip_suffix('*') {
        forms.exact = None;
        forms.trailing = Some(prefix);
    }
    forms
}

fn write_ip(addr: SocketAddr, out: &mut Vec<u8>) {
    let _ = write!(out, "{}", addr.ip());
}

fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `1733064006.123` (nginx's `%T.%03M`).
fn push_seconds_millis(out: &mut Vec<u8>, d: Duration) {
    push_int(out, d.as_secs());
    let _ = write!(out, ".{:03}", d.subsec_millis());
}

enum TimeForm {
    /// `01/Dec/2026:14:40:06 +0000`.
    Local,
    /// `2026-12-01T14:40:06+00:00`.
    Iso8601,
}

fn local_time(t: SystemTime, form: TimeForm, out: &mut Vec<u8>) {
    match form {
        TimeForm::Local => {
            if let Some(s) = crate::date::strftime_local(t, c"%d/%b/%Y:%H:%M:%S %z") {
                out.extend_from_slice(s.as_bytes());
            }
        }
        TimeForm::Iso8601 => {
            if let Some(s) = crate::date::strftime_local(t, c"%Y-%m-%dT%H:%M:%S%z") {
                // strftime's `+0000` → nginx's `+00:00`.
                let (head, minutes) = s.split_at(s.len().saturating_sub(2));
                out.extend_from_slice(head.as_bytes());
                out.push(b':');
                out.extend_from_slice(minutes.as_bytes());
            }
        }
    }
}

/// `$hostname`: gethostname(2), once per process.
fn hostname() -> &'static [u8] {
    static NAME: OnceLock<Vec<u8>> = OnceLock::new();
    NAME.get_or_init(|| {
        use std::os::unix::ffi::OsStringExt;
        nix::unistd::gethostname().map_or_else(|_| Vec::new(), OsStringExt::into_vec)
    })
}

#[cfg(test)]
#[path = "vars_tests.rs"]
mod tests;
