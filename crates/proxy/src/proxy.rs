//! `proxy_pass` for one location: [`HttpProxy`] implements the server's
//! [`ProxyUpstream`] seam. It asks the location's upstream group for a peer,
//! makes one attempt (`http/`), and goes to the next peer as nginx's
//! `ngx_http_upstream_next` does: only while tries are left, only for a
//! failure `proxy_next_upstream` lists, never for POST/LOCK/PATCH once sent
//! (unless `non_idempotent`), never after a body streamed unbuffered, never
//! past `proxy_next_upstream_timeout`. When it gives up: 504 for a timeout,
//! 502 for an error, an invalid header or no live upstreams (nginx's pages),
//! or the last upstream answer as it is. The `$upstream_*` strings list
//! every try, formatted as nginx formats them.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_config::site::{ProxySettings, Template, Upstream, UpstreamTarget};
use portico_server::{
    ProxyCall, ProxyFuture, ProxyOutcome, ProxyUpstream, Request, RequestSource, Response,
};

use crate::background::GroupSlot;
use crate::balance::{Outcome, PickInput, TEMPORARILY_DISABLED, UpstreamGroup};
use crate::error::{ErrorKind, Level, Phase, ProxyError, Side};
use crate::error_page::error_response;
use crate::http::{self, ConnPool, HeaderFilter, Outgoing, PoolSettings};
use crate::log::LogContext;
use crate::target::{PeerAddr, TargetError};

/// `proxy_pass` to a group or an address, with a location's settings.
#[derive(Clone)]
pub struct HttpProxy {
    inner: Arc<Inner>,
}

struct Inner {
    /// The block's current group (re-resolution may replace it).
    group: Arc<GroupSlot>,
    settings: Arc<ProxySettings>,
    peer: http::PeerSettings,
    filter: HeaderFilter,
    pool: Option<Arc<ConnPool>>,
    server_token: String,
    hash_key: Option<Template>,
}

/// The keep-alive pool an `upstream {}` block gets: nginx 1.29.7+ keeps
/// connections to explicit upstreams by default (`keepalive 32`);
/// `keepalive 0` turns that off (1.22's behaviour). nginx's implicit
/// default is `keepalive 32 local` (a pool per location), an explicit
/// `keepalive N` one pool for all the block's locations: the caller makes
/// one pool per location or shares one accordingly.
pub fn upstream_pool(up: &Upstream) -> Option<Arc<ConnPool>> {
    let max_idle = up.keepalive.unwrap_or(http::DEFAULT_KEEPALIVE);
    (max_idle > 0).then(|| {
        Arc::new(ConnPool::new(PoolSettings {
            max_idle,
            ..PoolSettings::default()
        }))
    })
}

impl HttpProxy {
    /// Through `group`, keeping idle connections in `pool` (share one pool
    /// per `upstream {}` block; see [`upstream_pool`]).
    pub fn new(
        group: Arc<UpstreamGroup>,
        settings: Arc<ProxySettings>,
        pool: Option<Arc<ConnPool>>,
    ) -> HttpProxy {
        HttpProxy::in_slot(Arc::new(GroupSlot::new(group)), settings, pool)
    }

    /// Through whatever group `slot` holds when a request starts (a block
    /// with `server ... resolve` gets its group replaced while running).
    pub fn in_slot(
        group: Arc<GroupSlot>,
        settings: Arc<ProxySettings>,
        pool: Option<Arc<ConnPool>>,
    ) -> HttpProxy {
        let peer = http::PeerSettings {
            connect_timeout: settings.connect_timeout,
            send_timeout: settings.send_timeout,
            read_timeout: settings.read_timeout,
            buffer_size: settings.buffer_size,
            buffering: settings.buffering,
            memory_ahead: settings.buffers.0.saturating_mul(settings.buffers.1),
            file_ahead: settings.max_temp_file_size,
        };
        HttpProxy {
            inner: Arc::new(Inner {
                group,
                filter: HeaderFilter::new(&settings),
                settings,
                peer,
                pool,
                server_token: "portico".to_string(),
                hash_key: None,
            }),
        }
    }

    /// To one address (`proxy_pass http://127.0.0.1:8000`): nginx's implicit
    /// one-peer upstream, no keep-alive (only explicit upstreams keep
    /// connections), never retried.
    pub fn to_address(
        target: &UpstreamTarget,
        settings: Arc<ProxySettings>,
    ) -> Result<HttpProxy, TargetError> {
        let addr = PeerAddr::resolve(target)?;
        Ok(HttpProxy::new(
            Arc::new(UpstreamGroup::single(addr)),
            settings,
            None,
        ))
    }

    /// What error pages say where nginx says `nginx` (default `portico`).
    pub fn with_server_token(mut self, token: &str) -> HttpProxy {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.server_token = token.to_string();
        }
        self
    }

    /// The group balances by `hash KEY`: the engine evaluates this per request.
    pub fn with_hash_key(mut self, key: Template) -> HttpProxy {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.hash_key = Some(key);
        }
        self
    }

    /// The keep-alive pool, if connections are kept.
    pub fn pool(&self) -> Option<&Arc<ConnPool>> {
        self.inner.pool.as_ref()
    }
}

impl ProxyUpstream for HttpProxy {
    fn forward(&self, call: ProxyCall) -> ProxyFuture {
        let inner = self.inner.clone();
        Box::pin(async move { inner.forward(call).await })
    }

    fn hash_key(&self) -> Option<&Template> {
        self.inner.hash_key.as_ref()
    }
}

/// The `$upstream_*` record of every try.
#[derive(Default)]
struct Tries {
    addr: String,
    status: String,
    time: String,
}

impl Tries {
    fn push(&mut self, addr: &str, status: u16, took: Duration) {
        let sep = if self.addr.is_empty() { "" } else { ", " };
        let _ = write!(self.addr, "{sep}{addr}");
        let _ = write!(self.status, "{sep}{status}");
        let _ = write!(
            self.time,
            "{sep}{}.{:03}",
            took.as_secs(),
            took.subsec_millis()
        );
    }

    fn outcome(self, response: Response, from_upstream: bool) -> ProxyOutcome {
        ProxyOutcome {
            response,
            from_upstream,
            upstream_addr: self.addr,
            upstream_status: self.status,
            upstream_response_time: self.time,
        }
    }
}

/// Which `proxy_next_upstream` kind a failed try is.
fn listed(settings: &ProxySettings, e: &ProxyError) -> bool {
    let nu = &settings.next_upstream;
    match e.kind() {
        _ if e.is_timeout() => nu.timeout,
        ErrorKind::InvalidHeader | ErrorKind::HeaderTooBig => nu.invalid_header,
        _ => nu.error,
    }
}

/// nginx's `upstream:` in a log line: `http://127.0.0.1:8080/path?a`.
fn upstream_url(peer: &str, target: &[u8]) -> String {
    format!("http://{peer}{}", String::from_utf8_lossy(target))
}

impl Inner {
    async fn forward(&self, call: ProxyCall) -> ProxyOutcome {
        let ProxyCall {
            request,
            client_ip,
            hash_key,
            started,
        } = call;
        let log = LogContext::new(&request, "");
        let Request { source, body, .. } = request;
        let RequestSource::Http(head) = source else {
            let e = ProxyError::new(
                ErrorKind::Unsupported,
                Phase::Preparing,
                "proxy_pass given a uwsgi request (the engine must build an HTTP head)",
            );
            log.log(&e);
            return self.fail(Tries::default(), e.status());
        };
        let mut out = match Outgoing::build(&head, body, self.settings.request_buffering).await {
            Ok(out) => out,
            Err(e) => {
                log.log(&e);
                return self.fail(Tries::default(), e.status());
            }
        };
        let mut tries = Tries::default();
        let group = self.group.current();
        let mut attempt = group.start(PickInput {
            client_ip,
            hash_key: hash_key.as_deref(),
            next_upstream_tries: self.settings.next_upstream_tries as usize,
        });
        loop {
            let now = Instant::now();
            let Some(picked) = attempt.pick(now) else {
                let e = ProxyError::new(ErrorKind::Connect, Phase::Connecting, "no live upstreams");
                log.with_upstream(&upstream_url(group.name(), &head.target))
                    .log(&e);
                tries.push(group.name(), 502, Duration::ZERO);
                return self.fail(tries, 502);
            };
            let peer_log = log.with_upstream(&upstream_url(picked.name, &head.target));
            let stale_retry = !out.non_idempotent || self.settings.next_upstream.non_idempotent;
            let result = http::attempt(
                picked.addr,
                self.pool.as_deref(),
                &mut out,
                &self.peer,
                stale_retry,
            )
            .await;
            let took = now.elapsed();
            // nginx's `ngx_http_upstream_next` conditions, but the kind.
            let may_retry = |out: &Outgoing, sent: bool, tries_left: usize| {
                tries_left > 1
                    && !out.body_streamed()
                    && !(out.non_idempotent && sent && !self.settings.next_upstream.non_idempotent)
                    && (self.settings.next_upstream_timeout.is_zero()
                        || started.elapsed() < self.settings.next_upstream_timeout)
            };
            match result {
                Ok(answer) => {
                    let status = answer.status();
                    tries.push(picked.name, status, took);
                    let retry = self.settings.next_upstream.retries_status(status)
                        && may_retry(&out, true, attempt.tries_left());
                    let outcome = match status {
                        _ if !retry => Outcome::Success,
                        403 | 404 => Outcome::NextNotCounted,
                        _ => Outcome::Failure,
                    };
                    let released = attempt.release(picked, outcome, Instant::now());
                    if released.disabled {
                        peer_log.log(&disabled(Phase::ReadingHeader));
                    }
                    if retry {
                        continue; // the answer and its connection are dropped
                    }
                    let pool = self.pool.clone().map(|pool| (pool, picked.addr.clone()));
                    let response = answer.into_response(&self.filter, pool, &self.peer, peer_log);
                    return tries.outcome(response, true);
                }
                Err(e) => {
                    tries.push(picked.name, e.status(), took);
                    if e.side() == Side::Client {
                        // The client failed us; the peer is not to blame.
                        let _ = attempt.release(picked, Outcome::NextNotCounted, Instant::now());
                        log.log(&e);
                        return self.fail(tries, e.status());
                    }
                    peer_log.log(&e);
                    let retry = listed(&self.settings, &e)
                        && may_retry(&out, e.request_sent(), attempt.tries_left());
                    // Errors, timeouts and invalid heads always count (nginx).
                    let released = attempt.release(picked, Outcome::Failure, Instant::now());
                    if released.disabled {
                        peer_log.log(&disabled(e.phase()));
                    }
                    if !retry {
                        return self.fail(tries, e.status());
                    }
                }
            }
        }
    }

    /// nginx's own page for `status`, not from an upstream.
    fn fail(&self, tries: Tries, status: u16) -> ProxyOutcome {
        tries.outcome(error_response(status, &self.server_token), false)
    }
}

/// `[warn] upstream server temporarily disabled while ...` (the phase of
/// the failure that reached `max_fails`).
fn disabled(phase: Phase) -> ProxyError {
    ProxyError::new(ErrorKind::Connect, phase, TEMPORARILY_DISABLED).with_level(Level::Warn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tries_are_listed_as_nginx_formats_them() {
        let mut tries = Tries::default();
        tries.push("127.0.0.1:8001", 502, Duration::from_millis(3));
        tries.push("unix:/run/a.sock", 200, Duration::from_micros(1_234_567));
        assert_eq!(tries.addr, "127.0.0.1:8001, unix:/run/a.sock");
        assert_eq!(tries.status, "502, 200");
        assert_eq!(tries.time, "0.003, 1.234");
    }

    #[test]
    fn explicit_upstreams_keep_connections_unless_keepalive_0() {
        let up = |keepalive| Upstream {
            name: "app".into(),
            servers: Vec::new(),
            balancer: portico_config::site::Balancer::RoundRobin,
            keepalive,
            origin: String::new(),
            ..Upstream::default()
        };
        let default = upstream_pool(&up(None)).map(|p| p.settings().max_idle);
        assert_eq!(default, Some(http::DEFAULT_KEEPALIVE));
        assert_eq!(
            upstream_pool(&up(Some(8))).map(|p| p.settings().max_idle),
            Some(8)
        );
        assert!(upstream_pool(&up(Some(0))).is_none());
    }
}
