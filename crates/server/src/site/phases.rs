//! One request's walk through nginx's phases, in nginx's order:
//! server-level rewrites → find the location (and `client_max_body_size`)
//! → the location's rewrites (`last`, or a changed URI, searches again) →
//! access → `try_files` → content (`content.rs`). Internal redirects
//! (index, `try_files`, `error_page`) start again at the server rewrites,
//! a jump to a named location at its rewrites; more than ten URI changes
//! answer 500 (`NGX_HTTP_MAX_URI_CHANGES`). Errors Portico makes go
//! through `error_page` once, then nginx's built-in pages (`pages.rs`).
//!
//! Everything here is synchronous: the only waits, upstream calls, are
//! the engine's (`engine.rs`), which comes back through
//! [`Req::after_upstream`]. How answers are finished is `answer.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use portico_config::site::{
    Content, Location, LocationConfig, LocationMatch, ProxyPass, RewriteFlag, RewriteStep, Server,
    Site, Template, TemplatePart, UpstreamTarget, Variable,
};
use portico_proto::uwsgi::UwsgiPacket;

use super::captures::Captures;
use super::content::{self, Done};
use super::engine::Engine;
use super::facts::Facts;
use super::pages::{self, PageStyle};
use super::rewrite::{internal_target, redirect_target, split_replacement};
use super::select::{ConnAddr, find_location, find_named};
use super::vars::{self, ProxyFacts, ResponseFacts, VarContext};
use super::{access, uwsgi_vars};
use crate::handler::{RequestSource, Response};
use crate::listener::ListenerInfo;

/// nginx's `NGX_HTTP_MAX_URI_CHANGES` (+1: the counter starts above it).
const URI_CHANGES: u32 = 11;

/// The content handler of a request that ends at the server level.
static SERVER_CONTENT: Content = Content::Static;

/// Where the walk (re)starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    ServerRewrite,
    FindLocation,
    /// At the rewrites of the location already chosen (a named jump).
    LocationRewrite,
}

/// What a walk ends in.
pub(crate) enum Outcome<'s> {
    /// A finished answer.
    Done(Response),
    /// Hand the request to this `uwsgi_pass` target.
    Upstream(&'s UpstreamTarget),
    /// `proxy_pass` in the current location.
    Proxy(&'s ProxyPass),
    /// Hand the request, unchanged, to the option-style app.
    App,
}

/// A step that either answers or sends the walk elsewhere. The answer is
/// held as it is, not boxed: `Outcome` holds one as large, and a box was a
/// malloc and a free on every answered request (the `Result<_, Step>`
/// functions below allow `clippy::result_large_err` for it).
pub(crate) enum Step {
    Out(Response),
    Jump(Phase),
}

/// Why [`Req::new`] refused a request before its phases.
pub(crate) enum Refusal {
    /// The server chosen is not in the site (500, the bare page).
    NoServer,
    /// An invalid target or Host (400): the error-log line's text.
    Bad(String),
    /// A TLS Host that is not the SNI name's server (421, see [`misdirected`]).
    Misdirected,
}

/// The location a request runs in: a `location {}`, or the server itself
/// when none matches.
#[derive(Clone, Copy)]
pub(crate) struct Loc<'s> {
    pub config: &'s LocationConfig,
    /// The same configuration, shared (kept by an access_log record).
    pub shared: &'s Arc<LocationConfig>,
    pub content: &'s Content,
    pub rewrites: &'s [RewriteStep],
    pub matcher: Option<&'s LocationMatch>,
    /// The `location {}` block (`None`: the server itself).
    pub location: Option<&'s Location>,
}

impl<'s> Loc<'s> {
    fn of(location: &'s Location) -> Loc<'s> {
        Loc {
            config: &location.config,
            shared: &location.config,
            content: &location.content,
            rewrites: &location.rewrites,
            matcher: Some(&location.matcher),
            location: Some(location),
        }
    }

    fn server(server: &'s Server) -> Loc<'s> {
        Loc {
            config: &server.config,
            shared: &server.config,
            content: &SERVER_CONTENT,
            rewrites: &[],
            matcher: None,
            location: None,
        }
    }
}

/// How a run of rewrite steps ended.
enum Flow {
    /// All steps ran; the URI is unchanged.
    Go,
    /// All steps ran and a flagless `rewrite` changed the URI.
    Changed,
    Last,
    Break,
    Answer(Step),
}

/// One request's state as the phases move it along.
pub(crate) struct Req<'s> {
    pub engine: &'s Engine,
    pub site: &'s Site,
    pub server: &'s Server,
    /// Index of `server` in `Site::servers`.
    pub server_index: usize,
    pub facts: Facts,
    /// The method now (`GET` after an `error_page` redirect).
    pub method: Bytes,
    /// `$uri`: decoded and normalised, changed by rewrites and redirects
    /// (a slice of the target while it is the target's path as sent).
    pub uri: Bytes,
    /// `$args`.
    pub args: Bytes,
    /// `$request_uri`: the target from its path on (an absolute-form
    /// target without `scheme://host`).
    pub request_uri: Bytes,
    /// The last regex match's captures (`$1`..., named groups).
    pub captures: Captures,
    pub loc: Loc<'s>,
    /// The captures of the `server_name` regex that chose the server.
    pub(super) server_captures: Captures,
    /// The local address, for `$server_addr`/`$server_port`.
    pub(super) conn_addr: ConnAddr,
    /// When the engine took the request (`$request_time`).
    pub(super) start: SystemTime,
    /// The length of a chunked body once read whole (`$content_length`).
    pub body_length: Option<u64>,
    /// nginx's `r->internal`: the URI was changed by Portico (a rewrite,
    /// an internal redirect, a named jump): `internal` locations allow it.
    pub internal: bool,
    pub(super) uri_changes: u32,
    pub(super) error_page_used: bool,
    /// The status an `error_page` imposes on the answer of its target.
    pub(super) err_status: Option<u16>,
    /// nginx's `r->valid_location`: no `rewrite ... break` changed the
    /// URI since the walk (re)started (`proxy_pass`'s URI part applies).
    pub valid_location: bool,
    /// nginx's `r->valid_unparsed_uri`: the URI is still the client's
    /// (no rewrite, no internal redirect), so `proxy_pass` without a URI
    /// part sends the target as it was sent.
    pub valid_unparsed: bool,
    /// `$proxy_host`, `$upstream_*` once the request is proxied.
    pub proxy: Option<ProxyFacts>,
}

/// nginx's 421: a TLS request whose Host is not the SNI name that chose a
/// server for the handshake, answered by a server that verifies client
/// certificates (a client must not pass one server's verification and
/// name another after the handshake).
fn misdirected(
    facts: &Facts,
    server: &Server,
    table: &super::select::ServerTable,
    local: &ConnAddr,
) -> bool {
    let Some(sni) = facts.tls.as_ref().and_then(|t| t.server_name.as_deref()) else {
        return false;
    };
    if !table.sni_names_a_server(local, sni) {
        return false;
    }
    let verifies = server
        .tls
        .as_ref()
        .is_some_and(|t| t.verify_client != portico_config::site::VerifyClient::Off);
    verifies && !super::select::host_key(&facts.host_raw).eq_ignore_ascii_case(sni.as_bytes())
}

impl<'s> Req<'s> {
    /// Normalise the target and choose the server. A request refused
    /// before its phases (see [`Refusal`]) comes back with `refused` set,
    /// for [`Req::refuse`] to answer. An HTTP head's field list moves into
    /// [`Req::facts`] ([`Facts::give_back`] returns it). The site has a
    /// server (the engine answers 500 first when it has none).
    ///
    /// The request is returned as it is, not in a `Result`: built as the
    /// tail expression, it is written once, straight into the engine's
    /// future (through a `Result` it was copied twice, 900 bytes each).
    pub(crate) fn new(
        engine: &'s Engine,
        source: &mut RequestSource,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
        listener: &ListenerInfo,
        tls: Option<&std::sync::Arc<crate::tls::TlsFacts>>,
        refused: &mut Option<Refusal>,
    ) -> Req<'s> {
        let site = &*engine.site;
        let mut facts = Facts::new(source, peer, local, listener, tls.cloned());
        let normalized = super::uri::normalize(&facts.request_uri);
        match &normalized {
            // An absolute-form target's host wins over the Host header.
            Ok(n) => {
                if let Some(host) = &n.host {
                    facts.set_host(host.clone());
                }
            }
            Err(e) => {
                *refused = Some(Refusal::Bad(format!(
                    "client sent invalid request target: {e}"
                )))
            }
        }
        let has_host = !facts.host_raw.is_empty() || facts.header("host").is_some();
        if refused.is_none() && has_host && !super::facts::valid_host(&facts.host_raw) {
            *refused = Some(Refusal::Bad(format!(
                "client sent invalid host header \"{}\"",
                String::from_utf8_lossy(&facts.host_raw)
            )));
            facts.set_host(Bytes::new());
        }
        let conn_addr = facts.conn_addr(listener);
        // The Host chooses, as always; the SNI name only chose the
        // certificate (nginx's ngx_http_set_virtual_server).
        let selected = engine.table.select(&conn_addr, &facts.host_raw);
        let (server_index, captures) = match selected {
            Some(s) => (s.index, s.captures),
            None => (0, Captures::default()),
        };
        let server = match site.servers.get(server_index) {
            Some(server) => server,
            None => {
                *refused = Some(Refusal::NoServer);
                &site.servers[0]
            }
        };
        if refused.is_none() && misdirected(&facts, server, &engine.table, &conn_addr) {
            *refused = Some(Refusal::Misdirected);
        }
        // A refused request keeps an empty URI (its answer is made
        // before the target would have been taken).
        let (uri, args, request_uri, valid_unparsed) = match normalized {
            Ok(n) if refused.is_none() => {
                // An absolute-form target without a path has no valid
                // unparsed URI (nginx's `empty_path_in_uri`).
                let valid_unparsed = n.request_uri.first() == Some(&b'/');
                (n.path, n.args, n.request_uri, valid_unparsed)
            }
            _ => (Bytes::new(), Bytes::new(), Bytes::new(), true),
        };
        Req {
            engine,
            site,
            server,
            server_index,
            method: facts.method.clone(),
            uri,
            args,
            request_uri,
            // (Usually empty: a regex server name's only.)
            server_captures: if captures.is_empty() {
                Captures::default()
            } else {
                captures.clone()
            },
            captures,
            loc: Loc::server(server),
            conn_addr,
            start: crate::clock::wall(),
            body_length: None,
            internal: false,
            uri_changes: URI_CHANGES,
            error_page_used: false,
            err_status: None,
            valid_location: true,
            valid_unparsed,
            proxy: None,
            facts,
        }
    }

    /// The answer to a request [`Req::new`] refused.
    pub(crate) fn refuse(&mut self, why: Refusal) -> Response {
        match why {
            Refusal::NoServer => bare_error(500),
            Refusal::Bad(why) => {
                crate::logln!("portico: {why}, client: {}", self.facts.client_text());
                self.uri_changes = 0; // no error_page for a request that never had a URI
                self.fail(400)
            }
            Refusal::Misdirected => {
                crate::logln!(
                    "portico: client attempted to request the server name different from the one \
                     that was negotiated, client: {}",
                    self.facts.client_text()
                );
                self.uri_changes = 0;
                self.fail(421)
            }
        }
    }

    /// Walk the phases from `at`.
    pub(crate) fn run(&mut self, mut at: Phase) -> Outcome<'s> {
        loop {
            match self.walk(at) {
                Ok(outcome) => return outcome,
                Err(Step::Out(response)) => return Outcome::Done(response),
                Err(Step::Jump(phase)) => at = phase,
            }
        }
    }

    #[allow(clippy::result_large_err)] // see `Step`
    fn walk(&mut self, mut at: Phase) -> Result<Outcome<'s>, Step> {
        loop {
            if at == Phase::ServerRewrite {
                if let Flow::Answer(step) = self.rewrites(self.server.rewrites.as_slice()) {
                    return Err(step);
                }
                at = Phase::FindLocation;
            }
            if at == Phase::FindLocation {
                self.find_location()?;
            }
            match self.rewrites(self.loc.rewrites) {
                Flow::Go | Flow::Break => {}
                Flow::Changed | Flow::Last => {
                    self.count_uri_change()?;
                    at = Phase::FindLocation;
                    continue;
                }
                Flow::Answer(step) => return Err(step),
            }
            if !access::allowed(&self.loc.config.access, self.facts.client_ip()) {
                crate::logln!(
                    "portico: access forbidden by rule, client: {}, request: \"{}\"",
                    self.facts.client_text(),
                    self.facts.request_line()
                );
                return Err(self.special(403, Vec::new()));
            }
            return match content::run(self) {
                Done::Answer(response) => Err(Step::Out(self.finish(response))),
                Done::Special(status, extra) => Err(self.special(status, extra)),
                Done::Redirect(target) => {
                    let (uri, args) = split_args(target);
                    Err(self.internal_redirect(uri, args))
                }
                Done::RedirectKeepArgs(uri) => {
                    let args = self.args.clone();
                    Err(self.internal_redirect(uri, args))
                }
                Done::Named(name) => Err(self.named(&name)),
                Done::Upstream(target) => Ok(Outcome::Upstream(target)),
                Done::Proxy(pass) => Ok(Outcome::Proxy(pass)),
                Done::App => Ok(Outcome::App),
            };
        }
    }

    /// nginx's find-config phase, with its `client_max_body_size` check.
    #[allow(clippy::result_large_err)] // see `Step`
    fn find_location(&mut self) -> Result<(), Step> {
        let server = self.server;
        match find_location(&server.locations, &self.uri) {
            Some(found) => {
                self.loc = Loc::of(found.location);
                if !found.captures.is_empty() {
                    self.captures = found.captures;
                }
                if found.redirect_slash {
                    let mut location = self.uri.to_vec();
                    location.push(b'/');
                    if !self.args.is_empty() {
                        location.push(b'?');
                        location.extend_from_slice(&self.args);
                    }
                    return Err(self.special(301, vec![location_header(location)]));
                }
            }
            None => self.loc = Loc::server(server),
        }
        if self.loc.config.internal && !self.internal {
            return Err(self.special(404, Vec::new()));
        }
        let limit = self.loc.config.client_max_body_size;
        if let Some(length) = self.facts.content_length
            && limit != 0
            && length > limit
            && !self.error_page_used
        {
            crate::logln!(
                "portico: client intended to send too large body: {length} bytes, client: {}, request: \"{}\"",
                self.facts.client_text(),
                self.facts.request_line()
            );
            return Err(self.special(413, Vec::new()));
        }
        Ok(())
    }

    /// Run rewrite-module steps on the current URI.
    fn rewrites(&mut self, steps: &[RewriteStep]) -> Flow {
        let mut changed = false;
        for step in steps {
            match step {
                RewriteStep::Rewrite {
                    pattern,
                    replacement,
                    flag,
                    ..
                } => {
                    let Some(captures) = Captures::of_match(&pattern.regex, &self.uri) else {
                        continue;
                    };
                    self.captures = captures;
                    let rep = split_replacement(replacement);
                    let uri = self.eval(&rep.uri);
                    let args = rep.args.as_ref().map(|t| self.eval(t));
                    if rep.redirect
                        || matches!(flag, RewriteFlag::Redirect | RewriteFlag::Permanent)
                    {
                        let location =
                            redirect_target(&uri, args.as_deref(), rep.add_args, &self.args);
                        let status = if *flag == RewriteFlag::Permanent {
                            301
                        } else {
                            302
                        };
                        return Flow::Answer(self.special(status, vec![location_header(location)]));
                    }
                    if uri.is_empty() {
                        crate::logln!("portico: the rewritten URI has a zero length");
                        return Flow::Answer(Step::Out(self.fail(500)));
                    }
                    let (uri, args) = internal_target(uri, args, rep.add_args, &self.args);
                    self.uri = Bytes::from(uri);
                    self.args = Bytes::from(args);
                    self.internal = true;
                    self.valid_unparsed = false;
                    match flag {
                        RewriteFlag::Last => return Flow::Last,
                        RewriteFlag::Break => {
                            self.valid_location = false;
                            return Flow::Break;
                        }
                        _ => changed = true,
                    }
                }
                RewriteStep::Return { code, body } => {
                    return Flow::Answer(self.return_step(*code, body.as_ref()));
                }
            }
        }
        if changed { Flow::Changed } else { Flow::Go }
    }

    /// `return CODE [TEXT|URL]`.
    fn return_step(&mut self, code: u16, body: Option<&Template>) -> Step {
        let Some(body) = body.filter(|_| code != 444) else {
            return self.special(code, Vec::new());
        };
        let value = self.eval(body);
        if matches!(code, 301 | 302 | 303 | 307 | 308) {
            return self.special(code, vec![location_header(value)]);
        }
        let response = content::text_response(code, self.content_type_of_uri(), value);
        Step::Out(self.finish(response))
    }

    /// One more URI change; past the limit, the 500 of a redirection cycle.
    #[allow(clippy::result_large_err)] // see `Step`
    fn count_uri_change(&mut self) -> Result<(), Step> {
        self.uri_changes = self.uri_changes.saturating_sub(1);
        if self.uri_changes == 0 {
            crate::logln!(
                "portico: rewrite or internal redirection cycle while processing \"{}\", client: {}",
                String::from_utf8_lossy(&self.uri),
                self.facts.client_text()
            );
            return Err(Step::Out(self.fail(500)));
        }
        Ok(())
    }

    /// An internal redirect to `uri` with `args` (not decoded).
    pub(super) fn internal_redirect(&mut self, uri: Vec<u8>, args: impl Into<Bytes>) -> Step {
        if let Err(step) = self.count_uri_change() {
            return step;
        }
        self.uri = Bytes::from(uri);
        self.args = args.into();
        self.internal = true;
        self.valid_unparsed = false;
        self.valid_location = true;
        Step::Jump(Phase::ServerRewrite)
    }

    /// A jump to `@name`: its rewrites, then the rest of the phases.
    pub(super) fn named(&mut self, name: &str) -> Step {
        if let Err(step) = self.count_uri_change() {
            return step;
        }
        match find_named(self.server, name) {
            Some(location) => {
                self.loc = Loc::of(location);
                self.internal = true;
                Step::Jump(Phase::LocationRewrite)
            }
            None => {
                crate::logln!("portico: could not find named location \"@{name}\"");
                Step::Out(self.fail(500))
            }
        }
    }

    /// The uwsgi packet for the current location's `uwsgi_param`s.
    pub(crate) fn uwsgi_packet(&self) -> UwsgiPacket {
        let config: &'s LocationConfig = self.loc.config;
        let params = &config.uwsgi_params;
        let content_length = Template {
            parts: vec![TemplatePart::Var(Variable::ContentLength)],
        };
        uwsgi_vars::build_packet(
            params,
            &self.facts.headers,
            &mut |t| match self.body_length {
                // A chunked body read whole has a length nginx passes on.
                Some(n) if *t == content_length => n.to_string().into_bytes(),
                _ => self.eval(t),
            },
        )
    }

    /// The variables' view of this request, with `uri` as `$uri`.
    pub(crate) fn var_context<'a>(&'a self, uri: &'a [u8]) -> VarContext<'a> {
        VarContext {
            method: &self.method,
            target: &self.facts.request_uri,
            request_uri: &self.request_uri,
            uri,
            args: &self.args,
            headers: &self.facts.headers,
            host: &self.facts.host_raw,
            peer: self.facts.peer,
            local: &self.conn_addr,
            scheme: self.facts.scheme,
            tls: self.facts.tls.as_deref(),
            server_protocol: protocol_text(&self.facts.protocol),
            server: self.server,
            location: self.loc.config,
            location_prefix: self.location_prefix(),
            prefix: &self.engine.prefix,
            captures: &self.captures,
            server_captures: &self.server_captures,
            response: ResponseFacts::default(),
            start: self.start,
            now: None,
            maps: &self.site.maps,
            proxy: self.proxy.as_ref(),
        }
    }

    /// What `alias` replaces in the current location: its prefix or `=`
    /// URI, nothing at the server level, `None` for a regex or named one.
    pub(crate) fn location_prefix(&self) -> Option<&'s [u8]> {
        match self.loc.matcher {
            Some(LocationMatch::Prefix { uri, .. }) | Some(LocationMatch::Exact(uri)) => {
                Some(uri.as_bytes())
            }
            Some(LocationMatch::Regex(_)) | Some(LocationMatch::Named(_)) => None,
            None => Some(&b""[..]),
        }
    }

    /// A template's value for this request.
    pub(crate) fn eval(&self, template: &Template) -> Vec<u8> {
        let mut out = Vec::new();
        vars::eval(template, &self.var_context(&self.uri), &mut out);
        out
    }

    /// An `error_page` redirect is in effect (its target's answer is
    /// sent as it is: no conditionals, no ranges).
    pub(crate) fn in_error_page(&self) -> bool {
        self.error_page_used
    }
}

/// nginx's `ngx_http_split_args`: `uri?args` at the first `?`.
pub(super) fn split_args(target: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    match target.iter().position(|&b| b == b'?') {
        Some(q) => (target[..q].to_vec(), target[q + 1..].to_vec()),
        None => (target, Vec::new()),
    }
}

pub(super) fn location_header(value: Vec<u8>) -> (Bytes, Bytes) {
    (Bytes::from_static(b"Location"), Bytes::from(value))
}

/// A 500/400 page when there is not even a server to dress it.
pub(super) fn bare_error(status: u16) -> Response {
    pages::special_response(
        status,
        PageStyle {
            server_tokens: true,
            padding: false,
        },
        "text/plain",
    )
}

/// The request's protocol as text, without a UTF-8 check for the usual three.
fn protocol_text(protocol: &[u8]) -> &str {
    match protocol {
        b"HTTP/1.1" => "HTTP/1.1",
        b"HTTP/1.0" => "HTTP/1.0",
        b"HTTP/2.0" => "HTTP/2.0",
        other => std::str::from_utf8(other).unwrap_or("HTTP/1.0"),
    }
}
