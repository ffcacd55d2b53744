//! `proxy_pass` for one location: [`HttpProxy`] implements the server's
//! [`ProxyUpstream`] seam. It asks the location's upstream group for a peer,
//! makes one attempt (`http/`), and goes to the next peer as nginx's
//! `ngx_http_upstream_next` does (the loop is `retry.rs`, shared with
//! `uwsgi_pass`): only while tries are left, only for a failure
//! `proxy_next_upstream` lists, never for POST/LOCK/PATCH once sent
//! (unless `non_idempotent`), never after a body streamed unbuffered, never
//! past `proxy_next_upstream_timeout`. When it gives up: 504 for a timeout,
//! 502 for an error, an invalid header or no live upstreams (nginx's pages),
//! or the last upstream answer as it is. The `$upstream_*` strings list
//! every try, formatted as nginx formats them.

use std::sync::Arc;

use bytes::Bytes;
use portico_proto::http1::RequestHead;

use portico_config::site::{ProxySettings, Template, Upstream, UpstreamTarget};
use portico_server::{ProxyCall, ProxyFuture, ProxyOutcome, ProxyUpstream, Request, RequestSource};

use crate::background::GroupSlot;
use crate::balance::{PickInput, UpstreamGroup};
use crate::error::{ErrorKind, Phase, ProxyError};
use crate::error_page::error_response;
use crate::http::{self, ConnPool, HeaderFilter, Outgoing, PoolSettings};
use crate::log::{LogContext, Peer, RequestFacts, Scheme, UpstreamName};
use crate::retry::{self, Exchange, Finished, Rules, Tries};
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
            idle_timeout: up.keepalive_timeout,
            max_requests: up.keepalive_requests,
            max_age: up.keepalive_time,
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
        // Taken apart here, before the future: it keeps only what the tries
        // need, so it is half the size to build and to move into its box,
        // and a request without a body has its upstream head made already.
        let ProxyCall {
            request,
            client_ip,
            hash_key,
            started,
            encoded_head,
            ..
        } = call;
        let Request {
            source, body, peer, ..
        } = request;
        let inner = self.inner.clone();
        let head = match source {
            RequestSource::Http(head) => head,
            source => {
                let e = ProxyError::new(
                    ErrorKind::Unsupported,
                    Phase::Preparing,
                    "proxy_pass given a uwsgi request (the engine must build an HTTP head)",
                );
                RequestFacts::of_source(&source, peer).log(None, &e);
                return ProxyFuture::new(move || {
                    std::future::ready(inner.fail(Tries::default(), e.status()))
                });
            }
        };
        let client = peer.map(|p| p.ip());
        let pick = Pick {
            client_ip,
            hash_key,
            started,
        };
        let ready = match encoded_head {
            Some(bytes) => Some(Outgoing::encoded(&head, bytes)),
            None => Outgoing::bodiless(&head),
        };
        // Made in their blocks (no copy of the 2 KiB future into them),
        // the block reused from the last request (no allocation). The
        // head's pieces an error line names move into its facts.
        match ready {
            Some(out) => {
                // The facts (200 bytes) handed in once the block is found:
                // copied once, into it, not into a closure first.
                let facts = head_facts(client, head);
                ProxyFuture::new_with(facts, move |facts| inner.send(out, pick, facts))
            }
            None => ProxyFuture::new(move || async move {
                let built = Outgoing::build(&head, body, inner.settings.request_buffering).await;
                let facts = head_facts(client, head);
                match built {
                    Ok(out) => inner.send(out, pick, facts).await,
                    Err(e) => {
                        facts.log(None, &e);
                        inner.fail(Tries::default(), e.status())
                    }
                }
            }),
        }
    }

    fn hash_key(&self) -> Option<&Template> {
        self.inner.hash_key.as_ref()
    }
}

/// One HTTP try (`http::attempt`) for the shared retry loop.
struct HttpExchange<'a> {
    out: Outgoing,
    target: &'a Bytes,
    pool: Option<&'a ConnPool>,
    peer: &'a http::PeerSettings,
    /// A stale pooled connection may be retried on a fresh one.
    stale_retry: bool,
    /// The answer the tries ended with ([`Exchange::keep`]).
    answer: Option<http::Answer>,
}

impl Exchange for HttpExchange<'_> {
    type Answer = http::Answer;

    async fn attempt(
        &mut self,
        peer: &PeerAddr,
        now: std::time::Instant,
    ) -> Result<http::Answer, ProxyError> {
        let out = &mut self.out;
        http::attempt(peer, self.pool, out, self.peer, self.stale_retry, now).await
    }

    fn status(answer: &http::Answer) -> u16 {
        answer.status()
    }

    fn keep(&mut self, answer: http::Answer) {
        self.answer = Some(answer);
    }

    fn body_streamed(&self) -> bool {
        self.out.body_streamed()
    }

    fn non_idempotent(&self) -> bool {
        self.out.non_idempotent
    }

    fn upstream(&self, peer: Peer) -> UpstreamName {
        UpstreamName {
            scheme: Scheme::Http,
            peer,
            target: self.target.clone(),
        }
    }
}

/// What an error line says of a request whose head is `head`.
fn head_facts(client: Option<std::net::IpAddr>, head: RequestHead) -> RequestFacts {
    RequestFacts::http(client, head.method, head.target, head.version, head.host)
}

/// What the balancer needs of the request.
struct Pick {
    client_ip: Option<std::net::IpAddr>,
    hash_key: Option<Bytes>,
    started: std::time::Instant,
}

impl Inner {
    /// The tries, `out` built.
    async fn send(self: Arc<Self>, out: Outgoing, pick: Pick, facts: RequestFacts) -> ProxyOutcome {
        let Pick {
            client_ip,
            hash_key,
            started,
        } = pick;
        let settings = &self.settings;
        let mut x = HttpExchange {
            stale_retry: !out.non_idempotent || settings.next_upstream.non_idempotent,
            out,
            target: facts.uri(),
            pool: self.pool.as_deref(),
            peer: &self.peer,
            answer: None,
        };
        let rules = Rules {
            next: settings.next_upstream,
            tries: settings.next_upstream_tries,
            timeout: settings.next_upstream_timeout,
        };
        let input = PickInput {
            client_ip,
            hash_key: hash_key.as_deref(),
            next_upstream_tries: 0,
        };
        let mut tries = Tries::default();
        let group = self.group.current();
        match retry::run(&group, input, rules, started, &facts, &mut x, &mut tries).await {
            Finished::Answer { addr, at } => {
                // (`run` keeps an answer whenever it finishes with one.)
                let Some(answer) = x.answer.take() else {
                    return self.fail(tries, 502);
                };
                let pool = self.pool.clone().map(|pool| (pool, addr.clone()));
                // Made only for a body read after the head (or a line).
                let log = move || {
                    let upstream = UpstreamName {
                        scheme: Scheme::Http,
                        peer: Peer::Addr(addr.clone()),
                        target: facts.uri().clone(),
                    };
                    LogContext::of(facts, Some(upstream))
                };
                let response = answer.into_response(&self.filter, pool, &self.peer, log, at);
                tries.outcome(response, true)
            }
            Finished::Failed(status) => self.fail(tries, status),
        }
    }

    /// nginx's own page for `status`, not from an upstream.
    fn fail(&self, tries: Tries, status: u16) -> ProxyOutcome {
        tries.outcome(error_response(status, &self.server_token), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_blocks_keepalive_limits_apply_to_its_pool() {
        let up = Upstream {
            keepalive: Some(4),
            keepalive_timeout: std::time::Duration::from_secs(7),
            keepalive_requests: 3,
            keepalive_time: std::time::Duration::from_secs(90),
            ..Upstream::default()
        };
        let got = upstream_pool(&up).map(|p| *p.settings());
        assert_eq!(
            got,
            Some(PoolSettings {
                max_idle: 4,
                idle_timeout: std::time::Duration::from_secs(7),
                max_requests: 3,
                max_age: std::time::Duration::from_secs(90),
            })
        );
    }
}
