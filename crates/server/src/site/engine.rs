//! [`SiteHandler`]: the request-phase engine that serves a [`Site`] as
//! nginx does. It owns the site, the server table and the handlers the
//! binary wires in for `uwsgi_pass` targets and for the option-style app;
//! per request it runs the phases (`phases.rs`) and, when they end in an
//! upstream, hands the request over and finishes its answer (intercepted
//! errors, `add_header`, absolute redirects).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use portico_config::site::{Content, Location, ProxyPass, ProxyTarget, Site, UpstreamTarget};

use super::access_log::AccessLogs;
use super::phases::{Outcome, Phase, Req, Step};
use super::proxy::BodyOut;
use super::select::ServerTable;
use crate::body::RequestBody;
use crate::handler::{Handler, HandlerFuture, Request, RequestSource, Response, Sent};
use crate::statics::{ContentCache, MetaCache};
use crate::upstream::{ProxyCall, ProxyUpstream};

/// What each `uwsgi_pass` target is served by, in any order: the binary
/// passes, for every distinct [`UpstreamTarget`] of the site's
/// `Content::Uwsgi` locations, the [`Handler`] to call: a uwsgi client
/// (the proxy crate) for a remote address, or the in-process WSGI handler
/// when the target is one of this process's own app sockets. A target
/// missing here is answered 502.
pub type UpstreamMap = Vec<(UpstreamTarget, Arc<dyn Handler>)>;

/// A location's place in a [`Site`], without pointers: the index of its
/// server in `Site::servers`, and its number in that server's pre-order
/// walk: `locations` depth first (a location, then its nested ones),
/// then `named`. [`proxy_locations`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocationId {
    /// The server's index in `Site::servers`.
    pub server: usize,
    /// The location's number in that server's pre-order walk.
    pub index: usize,
}

/// What each `proxy_pass` location is served by: the binary builds one
/// [`ProxyUpstream`] per location of [`proxy_locations`] (its group and
/// its `proxy_*` settings) and passes them here. A location missing here
/// is answered 502 (with an error-log line).
pub type ProxyMap = Vec<(LocationId, Arc<dyn ProxyUpstream>)>;

/// What `uwsgi_pass` locations with settings of their own are served by
/// (an `upstream {}` group: each location its `uwsgi_next_upstream*` and
/// timeouts over the shared group), before the [`UpstreamMap`] by target.
pub type UwsgiLocationMap = Vec<(LocationId, Arc<dyn Handler>)>;

/// Every `uwsgi_pass` location of `site`, with its id and its target.
pub fn uwsgi_locations(site: &Site) -> Vec<(LocationId, &Location, &UpstreamTarget)> {
    let mut out = Vec::new();
    for_each_location(site, &mut |id, location| {
        if let Content::Uwsgi(target) = &location.content {
            out.push((id, location, target));
        }
    });
    out
}

/// Every `proxy_pass` location of `site`, with its id, in the order of
/// [`LocationId`].
pub fn proxy_locations(site: &Site) -> Vec<(LocationId, &Location, &ProxyPass)> {
    let mut out = Vec::new();
    for_each_location(site, &mut |id, location| {
        if let Content::Proxy(pass) = &location.content {
            out.push((id, location, pass));
        }
    });
    out
}

/// Call `f` on every location of `site` with its [`LocationId`].
fn for_each_location<'a>(site: &'a Site, f: &mut dyn FnMut(LocationId, &'a Location)) {
    fn walk<'a>(
        server: usize,
        locations: &'a [Location],
        next: &mut usize,
        f: &mut dyn FnMut(LocationId, &'a Location),
    ) {
        for location in locations {
            f(
                LocationId {
                    server,
                    index: *next,
                },
                location,
            );
            *next += 1;
            walk(server, &location.locations, next, f);
        }
    }
    for (server, s) in site.servers.iter().enumerate() {
        let mut next = 0;
        walk(server, &s.locations, &mut next, f);
        walk(server, &s.named, &mut next, f);
    }
}

/// A location's address inside its [`Site`]: the key of the tables
/// [`resolve_by_location`] builds (the site is behind an `Arc` and never
/// changed, so its locations never move).
pub(super) fn location_address(location: &Location) -> usize {
    location as *const Location as usize
}

/// A `proxy_pass`'s address inside its [`Site`] (the key of
/// [`Engine::pass_hosts`]), as [`location_address`].
pub(super) fn pass_address(pass: &ProxyPass) -> usize {
    pass as *const ProxyPass as usize
}

/// The values of `map` keyed by their location's address in `site`
/// instead of its [`LocationId`], in the order of the site's walk; ids
/// that name no location of `site` are left out.
pub(super) fn resolve_by_location<T: Clone>(
    site: &Site,
    map: &[(LocationId, T)],
) -> Vec<(usize, T)> {
    let mut resolved = Vec::with_capacity(map.len());
    for_each_location(site, &mut |id, location| {
        if let Some((_, value)) = map.iter().find(|(i, _)| *i == id) {
            resolved.push((location_address(location), value.clone()));
        }
    });
    resolved
}

/// The value `table` (from [`resolve_by_location`]) holds for `location`.
pub(super) fn by_location<T: Clone>(
    table: &[(usize, T)],
    location: Option<&Location>,
) -> Option<T> {
    let at = location_address(location?);
    table.iter().find(|(a, _)| *a == at).map(|(_, v)| v.clone())
}

/// Serves a [`Site`]: server and location selection, rewrite, access,
/// `client_max_body_size`, content (`return`, `try_files`, static files,
/// index, autoindex, `uwsgi_pass`, the app), `error_page`, `add_header`,
/// `expires`, `charset`, and the `access_log` lines (written when the
/// connection reports the response sent, [`Handler::done`]).
pub struct SiteHandler {
    engine: Arc<Engine>,
}

/// What every request of a site shares.
pub(crate) struct Engine {
    pub site: Arc<Site>,
    pub table: ServerTable,
    /// nginx's `-p` prefix: relative `root`/`alias` paths start here.
    pub prefix: PathBuf,
    pub upstreams: UpstreamMap,
    /// The handler for `Content::App` locations (option style).
    pub app: Option<Arc<dyn Handler>>,
    /// The `proxy_pass` upstream of each proxied location, by the
    /// location's address inside `site` (which never moves: it is behind
    /// the `Arc` and never changed), resolved once from a [`ProxyMap`].
    pub proxies: Vec<(usize, Arc<dyn ProxyUpstream>)>,
    /// The `uwsgi_pass` handlers of single locations (an [`UwsgiLocationMap`]),
    /// by the location's address as `proxies`.
    pub uwsgi_locations: Vec<(usize, Arc<dyn Handler>)>,
    /// `$proxy_host` of each `proxy_pass` without variables, by the
    /// [`ProxyPass`]'s address inside `site` (see `proxies`): made once,
    /// shared by every request (its `Host` field, [`super::vars::ProxyFacts`]).
    pub pass_hosts: Vec<(usize, Bytes)>,
    /// Small files kept in memory (shared with nothing else).
    pub cache: Mutex<ContentCache>,
    /// Files' metadata under `open_file_cache`.
    pub file_meta: MetaCache,
    /// `access_log` records waiting for their responses to be written.
    pub logs: AccessLogs,
}

impl SiteHandler {
    /// Serve `site`, with relative paths under `prefix` and `uwsgi_pass`
    /// targets answered by `upstreams`.
    pub fn new(site: Arc<Site>, prefix: PathBuf, upstreams: UpstreamMap) -> SiteHandler {
        let table = ServerTable::new(&site);
        let pass_hosts = proxy_locations(&site)
            .into_iter()
            .filter(|(_, _, pass)| !matches!(pass.target, ProxyTarget::Dynamic(_)))
            .map(|(_, _, pass)| (pass_address(pass), Bytes::from(pass.proxy_host.clone())))
            .collect();
        SiteHandler {
            engine: Arc::new(Engine {
                site,
                table,
                prefix,
                upstreams,
                app: None,
                proxies: Vec::new(),
                uwsgi_locations: Vec::new(),
                pass_hosts,
                cache: Mutex::new(ContentCache::default()),
                file_meta: MetaCache::default(),
                logs: AccessLogs::default(),
            }),
        }
    }

    /// The handler `Content::App` locations hand their requests to,
    /// unchanged (the option-style app behind `--static-map` files).
    pub fn with_app(mut self, app: Arc<dyn Handler>) -> SiteHandler {
        if let Some(engine) = Arc::get_mut(&mut self.engine) {
            engine.app = Some(app);
        }
        self
    }
}

impl SiteHandler {
    /// The upstreams of the `proxy_pass` locations (see [`ProxyMap`]).
    pub fn with_proxies(mut self, proxies: ProxyMap) -> SiteHandler {
        if let Some(engine) = Arc::get_mut(&mut self.engine) {
            engine.proxies = resolve_by_location(&engine.site, &proxies);
        }
        self
    }

    /// The `uwsgi_pass` handlers of single locations (see [`UwsgiLocationMap`]).
    pub fn with_uwsgi_locations(mut self, map: UwsgiLocationMap) -> SiteHandler {
        if let Some(engine) = Arc::get_mut(&mut self.engine) {
            engine.uwsgi_locations = resolve_by_location(&engine.site, &map);
        }
        self
    }

    /// Close the `access_log` files so the next lines open them afresh
    /// (for `-s reopen` / SIGUSR1 after a log rotation).
    pub fn reopen_logs(&self) {
        self.engine.logs.reopen();
    }
}

impl Handler for SiteHandler {
    fn handle(&self, request: Request) -> HandlerFuture {
        // The engine's own future, boxed as it is: no wrapping block, made
        // in its block (no copy of the whole future into it), the block
        // reused from the last request (no allocation); the request is
        // handed in once the block is found (copied once, into it).
        let engine = self.engine.clone();
        HandlerFuture::new_with(request, move |request| engine.serve(request))
    }

    /// The `access_log` line of a written response.
    fn done(&self, tag: u64, sent: Option<&Sent>) {
        let engine = &self.engine;
        engine.logs.done(&engine.site, &engine.prefix, tag, sent);
    }
}

/// Follow a phase exit in [`Engine::serve`]: out of the `'serve` block
/// with the response, or on at the phase it jumps to (the label and the
/// phase variable are passed in: a macro's own would not be the caller's).
macro_rules! take_step {
    ($step:expr, $serve:lifetime, $at:ident) => {
        match $step {
            Step::Out(response) => break $serve response,
            Step::Jump(phase) => {
                $at = phase;
                continue;
            }
        }
    };
}

impl Engine {
    /// `$proxy_host` of `pass` (a `proxy_pass` without variables).
    pub(super) fn pass_host(&self, pass: &ProxyPass) -> Bytes {
        let at = pass_address(pass);
        match self.pass_hosts.iter().find(|(a, _)| *a == at) {
            Some((_, host)) => host.clone(),
            None => Bytes::copy_from_slice(pass.proxy_host.as_bytes()),
        }
    }

    /// The upstream of the `proxy_pass` location `location`.
    fn proxy_for(&self, location: Option<&Location>) -> Option<Arc<dyn ProxyUpstream>> {
        by_location(&self.proxies, location)
    }

    /// The `uwsgi_pass` handler of `location` (its own, else its target's).
    fn upstream(
        &self,
        location: Option<&Location>,
        target: &UpstreamTarget,
    ) -> Option<Arc<dyn Handler>> {
        if let Some(h) = by_location(&self.uwsgi_locations, location) {
            return Some(h);
        }
        self.upstreams
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, h)| h.clone())
    }

    /// Serve one request, with the keep-alive limits of the server that
    /// answered it (`keepalive_timeout`, `keepalive_requests`). One `async
    /// fn`, no nested one: the request is not moved into a second future.
    async fn serve(self: Arc<Self>, request: Request) -> Response {
        let mut keepalive = None;
        let mut response = 'serve: {
            let Request {
                mut source,
                peer,
                local,
                listener,
                body,
                handoff,
                tls,
            } = request;
            let mut body = Some(body);
            let started = crate::clock::now();
            if self.site.servers.is_empty() {
                break 'serve super::phases::bare_error(500);
            }
            let mut refused = None;
            let mut req = Req::new(
                &self,
                &mut source,
                peer,
                local,
                &listener,
                tls.as_ref(),
                &mut refused,
            );
            if let Some(why) = refused {
                break 'serve req.refuse(why);
            }
            let server_config = &req.server.config;
            keepalive = Some(crate::handler::KeepAlive {
                timeout: server_config.keepalive_timeout,
                requests: server_config.keepalive_requests,
            });
            // The request an upstream or a uwsgi handler gets: the
            // connection's facts with `source` and `body` of its own. (A
            // macro, not a closure: the request is built where it goes, in
            // the call, not returned from the closure and copied there.)
            macro_rules! upstream_request {
                ($source:expr, $body:expr $(,)?) => {
                    Request {
                        source: $source,
                        peer,
                        local,
                        listener: listener.clone(),
                        body: $body,
                        handoff: handoff.clone(),
                        tls: tls.clone(),
                    }
                };
            }
            let mut at = Phase::ServerRewrite;
            loop {
                let (handler, source) = match req.run(at) {
                    Outcome::Done(response) => break 'serve response,
                    Outcome::App => {
                        let Some(app) = self.app.clone() else {
                            break 'serve req.fail(502);
                        };
                        // (After an intercepted upstream error the body is spent.)
                        let body = body
                            .take()
                            .unwrap_or_else(|| RequestBody::complete(Bytes::new()));
                        req.facts.give_back(&mut source);
                        // Handed over unchanged: the app sees the request as sent;
                        // its answer passes the compression filters only.
                        let response = app
                            .handle(Request {
                                source,
                                peer,
                                local,
                                listener,
                                body,
                                handoff,
                                tls,
                            })
                            .await;
                        break 'serve req.compress(response, false);
                    }
                    Outcome::Upstream(target) => {
                        let Some(handler) = self.upstream(req.loc.location, target) else {
                            crate::logln!(
                                "portico: no handler for uwsgi_pass {target:?} (site wiring); answering 502"
                            );
                            take_step!(req.special(502, Vec::new()), 'serve, at)
                        };
                        let sent = match upstream_body(&mut req, &mut body).await {
                            Ok(sent) => sent,
                            Err(status) => take_step!(req.special(status, Vec::new()), 'serve, at),
                        };
                        if let Some(upstream) = self.proxy_for(req.loc.location) {
                            // A uwsgi client through the proxy seam: the group's
                            // hash key goes in, the `$upstream_*` record comes back.
                            // (The call made in a block of its own: a value
                            // held over an await lives in the future, and is
                            // copied again to be passed.)
                            let pending = {
                                let hash_key =
                                    upstream.hash_key().map(|t| Bytes::from(req.eval(t)));
                                upstream.forward(ProxyCall {
                                    request: upstream_request!(
                                        RequestSource::Uwsgi(req.uwsgi_packet()),
                                        sent,
                                    ),
                                    client_ip: req.facts.client_ip(),
                                    hash_key,
                                    started,
                                    authority: None,
                                    encoded_head: None,
                                })
                            };
                            let outcome = pending.await;
                            take_step!(req.after_uwsgi(outcome), 'serve, at)
                        }
                        body = Some(sent);
                        (handler, RequestSource::Uwsgi(req.uwsgi_packet()))
                    }
                    Outcome::Proxy(pass) => {
                        let Some(upstream) = self.proxy_for(req.loc.location) else {
                            crate::logln!(
                                "portico: no upstream for proxy_pass {} ({}) (site wiring); answering 502",
                                pass.url,
                                pass.origin
                            );
                            take_step!(req.special(502, Vec::new()), 'serve, at)
                        };
                        let passes_body = req.loc.config.proxy.pass_request_body && body.is_some();
                        let (sent, framing) = if passes_body {
                            match upstream_body(&mut req, &mut body).await {
                                Ok(sent) => {
                                    let framing = match req.facts.content_length.or(req.body_length)
                                    {
                                        Some(n) => BodyOut::Length(n),
                                        None if req.facts.chunked => BodyOut::Chunked,
                                        None => BodyOut::None,
                                    };
                                    (sent, framing)
                                }
                                Err(status) => {
                                    take_step!(req.special(status, Vec::new()), 'serve, at)
                                }
                            }
                        } else {
                            // No body goes (proxy_pass_request_body off, or it
                            // was spent on an upstream before an error_page):
                            // no Content-Length either, so the upstream never
                            // waits for one.
                            (RequestBody::complete(Bytes::new()), BodyOut::None)
                        };
                        // The call made in a block of its own, as above (the
                        // head and the call are not kept in the future).
                        let pending = {
                            let (head, encoded_head) = req.proxy_head(pass, framing);
                            let hash_key = upstream.hash_key().map(|t| Bytes::from(req.eval(t)));
                            let authority = req.dynamic_authority(pass);
                            upstream.forward(ProxyCall {
                                request: upstream_request!(RequestSource::Http(head), sent),
                                client_ip: req.facts.client_ip(),
                                hash_key,
                                started,
                                authority,
                                encoded_head,
                            })
                        };
                        let outcome = pending.await;
                        take_step!(req.after_proxy(pass, outcome), 'serve, at)
                    }
                };
                let pending = handler.handle(upstream_request!(
                    source,
                    body.take()
                        .unwrap_or_else(|| RequestBody::complete(Bytes::new())),
                ));
                let response = pending.await;
                match req.after_upstream(response) {
                    Step::Out(response) => break 'serve response,
                    Step::Jump(phase) => at = phase,
                }
            }
        };
        response.meta.keepalive = keepalive;
        response
    }
}

/// The client's body for an upstream (empty once an earlier upstream
/// spent it). As nginx's request buffering, a chunked body is read whole
/// within `client_max_body_size` and passed on with its length (in
/// memory, so only under a limit; without one it streams as it arrives).
/// `Err` is the status to answer (413, 400).
async fn upstream_body(
    req: &mut Req<'_>,
    body: &mut Option<RequestBody>,
) -> Result<RequestBody, u16> {
    let mut sent = body
        .take()
        .unwrap_or_else(|| RequestBody::complete(Bytes::new()));
    let limit = req.loc.config.client_max_body_size;
    if req.facts.chunked
        && req.body_length.is_none()
        && let Some(n) = sent.complete_len()
    {
        // Received whole by the connection (memory or temporary file).
        if limit != 0 && n > limit {
            crate::logln!(
                "portico: client intended to send too large chunked body: more than {limit} bytes"
            );
            return Err(413);
        }
        req.body_length = Some(n);
        return Ok(sent);
    }
    if req.facts.chunked && req.body_length.is_none() && limit != 0 {
        let data = read_whole(&mut sent, limit).await?;
        req.body_length = Some(data.len() as u64);
        sent = RequestBody::complete(data);
    }
    Ok(sent)
}

/// Read a whole request body, at most `limit` bytes; `Err`
/// is the status to answer: 413 past the limit, 400 for a broken body.
async fn read_whole(body: &mut RequestBody, limit: u64) -> Result<Bytes, u16> {
    let mut all = bytes::BytesMut::new();
    while let Some(piece) = body.next().await {
        match piece {
            Ok(data) => {
                if (all.len() + data.len()) as u64 > limit {
                    crate::logln!(
                        "portico: client intended to send too large chunked body: more than {limit} bytes"
                    );
                    return Err(413);
                }
                all.extend_from_slice(&data);
            }
            Err(e) => {
                crate::logln!("portico: {e}");
                return Err(400);
            }
        }
    }
    Ok(all.freeze())
}
