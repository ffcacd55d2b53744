//! [`SiteHandler`]: the request-phase engine that serves a [`Site`] as
//! nginx does. It owns the site, the server table and the handlers the
//! binary wires in for `uwsgi_pass` targets and for the option-style app;
//! per request it runs the phases (`phases.rs`) and, when they end in an
//! upstream, hands the request over and finishes its answer (intercepted
//! errors, `add_header`, absolute redirects).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use portico_config::site::{Site, UpstreamTarget};

use super::access_log::AccessLogs;
use super::phases::{Outcome, Phase, Req};
use super::select::ServerTable;
use crate::body::RequestBody;
use crate::handler::{Handler, HandlerFuture, Request, RequestSource, Response, Sent};
use crate::statics::ContentCache;

/// What each `uwsgi_pass` target is served by, in any order: the binary
/// passes, for every distinct [`UpstreamTarget`] of the site's
/// `Content::Uwsgi` locations, the [`Handler`] to call: a uwsgi client
/// (the proxy crate) for a remote address, or the in-process WSGI handler
/// when the target is one of this process's own app sockets. A target
/// missing here is answered 502.
pub type UpstreamMap = Vec<(UpstreamTarget, Arc<dyn Handler>)>;

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
    /// Small files kept in memory (shared with nothing else).
    pub cache: Mutex<ContentCache>,
    /// `access_log` records waiting for their responses to be written.
    pub logs: AccessLogs,
}

impl SiteHandler {
    /// Serve `site`, with relative paths under `prefix` and `uwsgi_pass`
    /// targets answered by `upstreams`.
    pub fn new(site: Arc<Site>, prefix: PathBuf, upstreams: UpstreamMap) -> SiteHandler {
        let table = ServerTable::new(&site);
        SiteHandler {
            engine: Arc::new(Engine {
                site,
                table,
                prefix,
                upstreams,
                app: None,
                cache: Mutex::new(ContentCache::default()),
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
    /// Close the `access_log` files so the next lines open them afresh
    /// (for `-s reopen` / SIGUSR1 after a log rotation).
    pub fn reopen_logs(&self) {
        self.engine.logs.reopen();
    }
}

impl Handler for SiteHandler {
    fn handle(&self, request: Request) -> HandlerFuture {
        let engine = self.engine.clone();
        Box::pin(async move { engine.serve(request).await })
    }

    /// The `access_log` line of a written response.
    fn done(&self, tag: u64, sent: Option<&Sent>) {
        let engine = &self.engine;
        engine.logs.done(&engine.site, &engine.prefix, tag, sent);
    }
}

impl Engine {
    fn upstream(&self, target: &UpstreamTarget) -> Option<Arc<dyn Handler>> {
        self.upstreams
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, h)| h.clone())
    }

    /// Serve one request, with the keep-alive limits of the server that
    /// answered it (`keepalive_timeout`, `keepalive_requests`).
    async fn serve(&self, request: Request) -> Response {
        let mut keepalive = None;
        let mut response = self.serve_request(request, &mut keepalive).await;
        response.meta.keepalive = keepalive;
        response
    }

    async fn serve_request(
        &self,
        request: Request,
        keepalive: &mut Option<crate::handler::KeepAlive>,
    ) -> Response {
        let Request {
            source,
            peer,
            local,
            listener,
            body,
            handoff,
        } = request;
        let mut body = Some(body);
        let mut req = match Req::new(self, &source, peer, local, &listener) {
            Ok(req) => req,
            Err(response) => return *response,
        };
        let server_config = &req.server.config;
        *keepalive = Some(crate::handler::KeepAlive {
            timeout: server_config.keepalive_timeout,
            requests: server_config.keepalive_requests,
        });
        let mut at = Phase::ServerRewrite;
        loop {
            let (handler, source) = match req.run(at) {
                Outcome::Done(response) => return response,
                Outcome::App => {
                    let Some(app) = self.app.clone() else {
                        return req.fail(502);
                    };
                    // (After an intercepted upstream error the body is spent.)
                    let body = body
                        .take()
                        .unwrap_or_else(|| RequestBody::complete(Bytes::new()));
                    // Handed over unchanged: the app sees the request as sent.
                    return app
                        .handle(Request {
                            source,
                            peer,
                            local,
                            listener,
                            body,
                            handoff,
                        })
                        .await;
                }
                Outcome::Upstream(target) => {
                    let Some(handler) = self.upstream(target) else {
                        crate::logln!(
                            "portico: no handler for uwsgi_pass {target:?} (site wiring); answering 502"
                        );
                        match req.special(502, Vec::new()) {
                            super::phases::Step::Out(response) => return *response,
                            super::phases::Step::Jump(phase) => {
                                at = phase;
                                continue;
                            }
                        }
                    };
                    let mut sent = body
                        .take()
                        .unwrap_or_else(|| RequestBody::complete(Bytes::new()));
                    let limit = req.loc.config.client_max_body_size;
                    if req.facts.chunked && req.body_length.is_none() && limit != 0 {
                        // As nginx's request buffering: read a chunked body
                        // whole, within client_max_body_size, and pass it
                        // on with its length (in memory, so only under a
                        // limit; without one it streams as it arrives).
                        match read_whole(&mut sent, limit).await {
                            Ok(data) => {
                                req.body_length = Some(data.len() as u64);
                                sent = RequestBody::complete(data);
                            }
                            Err(status) => match req.special(status, Vec::new()) {
                                super::phases::Step::Out(response) => return *response,
                                super::phases::Step::Jump(phase) => {
                                    at = phase;
                                    continue;
                                }
                            },
                        }
                    }
                    body = Some(sent);
                    (handler, RequestSource::Uwsgi(req.uwsgi_packet()))
                }
            };
            let sub = Request {
                source,
                peer,
                local,
                listener: listener.clone(),
                body: body
                    .take()
                    .unwrap_or_else(|| RequestBody::complete(Bytes::new())),
                handoff: handoff.clone(),
            };
            let response = handler.handle(sub).await;
            match req.after_upstream(response) {
                super::phases::Step::Out(response) => return *response,
                super::phases::Step::Jump(phase) => at = phase,
            }
        }
    }
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
