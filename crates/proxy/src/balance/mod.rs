//! nginx's load balancers, pick for pick: an [`UpstreamGroup`] is one
//! `upstream {}` block (or the implicit one-address upstream of
//! `proxy_pass http://ADDR`) with this worker's peer state; an [`Attempt`]
//! is one request's walk through it, tries and retries included.
//!
//! Methods, one file each, reproduced from nginx 1.22's source (see
//! `/work/shared/reference/nginx.md` §1): smooth weighted round-robin
//! (default, and every method's fallback), `least_conn`, `ip_hash`,
//! `hash KEY`, `hash KEY consistent` (ketama), `random [two [least_conn]]`.
//! Passive health is nginx's: `max_fails` failures inside `fail_timeout`
//! take a peer out for `fail_timeout`, then one trial request may use it;
//! `backup` peers serve only when no primary can.
//!
//! # Use (the retry loop of the HTTP/uwsgi upstream clients)
//!
//! ```ignore
//! let group = UpstreamGroup::resolve(&upstream)?;   // at load (or ::single(addr))
//! // per request:
//! let mut attempt = group.start(PickInput {
//!     client_ip, hash_key: key.as_deref(), next_upstream_tries: settings.tries,
//! });
//! loop {
//!     let Some(peer) = attempt.pick(Instant::now()) else {
//!         break 502; // "no live upstreams while connecting to upstream"
//!     };
//!     let result = try_peer(peer.addr).await;       // &PeerAddr; $upstream_addr gets peer.name
//!     let outcome = /* Failure: error, timeout, invalid_header (always, even with
//!                      `proxy_next_upstream off`), a listed http_500/502/503/504/429;
//!                      NextNotCounted: a listed http_403/404; else Success */;
//!     if attempt.release(peer, outcome, Instant::now()).disabled {
//!         // log "[warn] upstream server temporarily disabled while ..., upstream: ..."
//!     }
//!     if outcome == Outcome::Success || attempt.tries_left() == 0 || !next_upstream_allows(..) {
//!         break;
//!     }
//! }
//! ```
//!
//! Every pick must be released (a dropped [`Attempt`] releases its open
//! pick as nginx's finalize does: not a failure). Times are `Instant`s
//! passed in, counted in whole seconds from [`UpstreamGroup::epoch`] as
//! nginx counts `ngx_time()`, so tests are exact. State is behind one
//! mutex per group, held for one pick or one release; a group is one
//! worker's view (nginx without `zone`).
//!
//! Active health checks (`health_check`) keep their own per-peer state
//! here (`health.rs`): an unhealthy peer is skipped by every method.
//!
//! Not here: connecting, `proxy_next_upstream` rules, keep-alive pools,
//! sending the checks and re-resolving names (`crate::background`).

#[cfg(test)]
mod api_tests;
mod chash;
mod crc32;
mod hash;
mod health;
mod ip_hash;
mod least_conn;
mod peer;
mod random;
mod resolve;
mod rng;
mod round_robin;
mod stats;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use portico_config::site::{Balancer, Upstream};

use crate::target::{PeerAddr, TargetError};
use peer::{Cursor, FreeState, Lists, Peer, PeerList, Tried};

pub use health::{CheckRule, CheckTarget, HealthChange};
pub use resolve::{resolve_target, resolve_upstream};
pub use rng::{GlibcRandom, RandomSource};
pub use stats::{PeerState, PeerStats};

/// The warning nginx logs when a failure takes a peer out (`[warn]`).
pub const TEMPORARILY_DISABLED: &str = "upstream server temporarily disabled";

/// Misses before `ip_hash`, `hash` and `random` give up and fall back to
/// round-robin (nginx: `++tries > 20`).
pub(crate) const KEY_TRIES: u32 = 20;

/// What a request brings to the balancer.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickInput<'a> {
    /// The client's address (`ip_hash`); `None` for a unix-socket client.
    pub client_ip: Option<IpAddr>,
    /// The evaluated `hash KEY` (`None` or empty: round-robin, as nginx).
    pub hash_key: Option<&'a [u8]>,
    /// `proxy_next_upstream_tries` (0: no cap).
    pub next_upstream_tries: usize,
}

/// The peer to try now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picked<'g> {
    /// Position in the group: primaries in order, then backups
    /// ([`UpstreamGroup::snapshot`] uses the same order).
    pub index: usize,
    pub addr: &'g PeerAddr,
    /// nginx's peer name (`127.0.0.1:8080`, `[::1]:80`, `unix:/run/a.sock`),
    /// what `$upstream_addr` shows.
    pub name: &'g Arc<str>,
    /// The `server` text it came from (shared by a name's addresses).
    pub server: &'g str,
    pub backup: bool,
}

/// How a try ended, for the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (any status `proxy_next_upstream` does not list).
    Success,
    /// nginx's `NGX_PEER_FAILED`: error, timeout, invalid header, or a
    /// listed `http_500/502/503/504/429`. Counts toward `max_fails`.
    Failure,
    /// nginx's `NGX_PEER_NEXT`: a listed `http_403`/`http_404`, not counted.
    NextNotCounted,
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "log TEMPORARILY_DISABLED at [warn] when `disabled`"]
pub struct Released {
    /// This failure reached `max_fails`: log [`TEMPORARILY_DISABLED`].
    pub disabled: bool,
}

/// Why a group could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// A server's host name did not resolve.
    Resolve(TargetError),
    /// No primary server (all `backup`, or none).
    NoServers { upstream: String, origin: String },
    /// `resolved` does not have one non-empty address list per server.
    Mismatch { upstream: String },
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupError::Resolve(e) => write!(f, "{e}"),
            GroupError::NoServers { upstream, origin } => {
                write!(f, "no servers in upstream \"{upstream}\" in {origin}")
            }
            GroupError::Mismatch { upstream } => write!(
                f,
                "upstream \"{upstream}\": one resolved address list per server is required"
            ),
        }
    }
}

impl std::error::Error for GroupError {}

/// A peer's fixed facts (outside the lock: [`Picked`] borrows them).
#[derive(Debug, Clone)]
struct PeerInfo {
    addr: PeerAddr,
    /// Shared with `$upstream_addr` (no copy per request).
    name: Arc<str>,
    server: String,
    /// Equal texts share an id (consistent hashing compares texts).
    server_id: u32,
    backup: bool,
    weight: u32,
}

/// The method and what it precomputes at load.
#[derive(Debug, Clone)]
enum Method {
    RoundRobin,
    LeastConn,
    IpHash,
    Hash,
    /// The ring, and every peer's server-text id (group order).
    Chash {
        points: Vec<chash::Point>,
        servers: Vec<u32>,
    },
    Random {
        two: bool,
        ranges: Vec<u64>,
    },
}

/// The mutable part.
struct State {
    lists: Lists,
    rng: RandomSource,
}

/// One upstream group and this worker's state of its peers.
pub struct UpstreamGroup {
    name: String,
    method: Method,
    /// Primaries in order, then backups.
    info: Vec<PeerInfo>,
    primaries: usize,
    /// Non-down peers, backups included: nginx's initial `pc->tries`.
    tries: usize,
    epoch: Instant,
    /// The addresses it was built from, one list per `server` line
    /// (re-resolution compares new answers with them).
    resolved: Vec<Vec<PeerAddr>>,
    state: Mutex<State>,
}

impl std::fmt::Debug for UpstreamGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamGroup")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("peers", &self.info.len())
            .finish()
    }
}

impl UpstreamGroup {
    /// Resolve every server of `up` now and build the group.
    pub fn resolve(up: &Upstream) -> Result<UpstreamGroup, GroupError> {
        let resolved = resolve_upstream(up).map_err(GroupError::Resolve)?;
        UpstreamGroup::new(up, &resolved)
    }

    /// Build from `up` and the addresses of each server (one list per
    /// `server` line, in order; see [`resolve_upstream`]). Only a
    /// `server ... resolve` line may have no address (yet).
    pub fn new(up: &Upstream, resolved: &[Vec<PeerAddr>]) -> Result<UpstreamGroup, GroupError> {
        // A `resolve` server may have no address yet; any other needs one.
        let unresolved = up
            .servers
            .iter()
            .zip(resolved)
            .any(|(s, addrs)| addrs.is_empty() && !s.resolve);
        if resolved.len() != up.servers.len() || unresolved {
            return Err(GroupError::Mismatch {
                upstream: up.name.clone(),
            });
        }
        let mut texts: Vec<String> = Vec::new();
        let mut info = Vec::new();
        let (mut primary, mut backup) = (Vec::new(), Vec::new());
        for want_backup in [false, true] {
            for (s, addrs) in up.servers.iter().zip(resolved) {
                if s.backup != want_backup {
                    continue;
                }
                let text = resolve::server_text(s);
                let server_id = texts.iter().position(|t| *t == text).unwrap_or_else(|| {
                    texts.push(text.clone());
                    texts.len() - 1
                });
                for addr in addrs {
                    info.push(PeerInfo {
                        addr: addr.clone(),
                        name: addr.to_string().into(),
                        server: text.clone(),
                        server_id: u32::try_from(server_id).unwrap_or(u32::MAX),
                        backup: s.backup,
                        weight: s.weight,
                    });
                    let list = if s.backup { &mut backup } else { &mut primary };
                    list.push(Peer::from_server(s));
                }
            }
        }
        if up.servers.iter().all(|s| s.backup) {
            return Err(GroupError::NoServers {
                upstream: up.name.clone(),
                origin: up.origin.clone(),
            });
        }
        let primaries = primary.len();
        let method = match &up.balancer {
            Balancer::RoundRobin => Method::RoundRobin,
            Balancer::LeastConn => Method::LeastConn,
            Balancer::IpHash => Method::IpHash,
            Balancer::Hash {
                consistent: false, ..
            } => Method::Hash,
            Balancer::Hash {
                consistent: true, ..
            } => {
                let ring: Vec<(&str, u32, u64)> = info[..primaries]
                    .iter()
                    .map(|p| (p.server.as_str(), p.server_id, u64::from(p.weight)))
                    .collect();
                Method::Chash {
                    points: chash::build(&ring),
                    servers: info.iter().map(|p| p.server_id).collect(),
                }
            }
            Balancer::Random { two, .. } => Method::Random {
                two: *two,
                ranges: random::ranges(primary.iter().map(|p| p.weight.unsigned_abs())),
            },
        };
        let backup = (!backup.is_empty()).then(|| PeerList::new(backup));
        let mut group = UpstreamGroup::assemble(up.name.clone(), method, info, primary, backup);
        group.resolved = resolved.to_vec();
        Ok(group)
    }

    /// The implicit upstream of `proxy_pass http://ADDR`: one peer, no
    /// failure accounting (nginx's `single`), never retried.
    pub fn single(addr: PeerAddr) -> UpstreamGroup {
        let name = addr.to_string();
        UpstreamGroup::implicit(&name, vec![addr])
    }

    /// The implicit upstream of `proxy_pass http://NAME:PORT` whose name
    /// resolved to `addrs`: round-robin, weight 1, `max_fails=1
    /// fail_timeout=10s` each; one address is [`UpstreamGroup::single`].
    /// An empty `addrs` gives a group whose every pick is `None`.
    pub fn implicit(name: &str, addrs: Vec<PeerAddr>) -> UpstreamGroup {
        let info = addrs
            .into_iter()
            .map(|addr| PeerInfo {
                name: addr.to_string().into(),
                server: name.to_string(),
                server_id: 0,
                backup: false,
                weight: 1,
                addr,
            })
            .collect::<Vec<_>>();
        let peers = info.iter().map(|_| Peer::implicit()).collect();
        let mut group =
            UpstreamGroup::assemble(name.to_string(), Method::RoundRobin, info, peers, None);
        group.resolved = vec![group.info.iter().map(|p| p.addr.clone()).collect()];
        group
    }

    fn assemble(
        name: String,
        method: Method,
        info: Vec<PeerInfo>,
        primary: Vec<Peer>,
        backup: Option<PeerList>,
    ) -> UpstreamGroup {
        let primary = PeerList::new(primary);
        let primaries = primary.peers.len();
        let tries = primary.tries() + backup.as_ref().map_or(0, PeerList::tries);
        let single = primaries == 1 && backup.is_none();
        UpstreamGroup {
            name,
            method,
            info,
            primaries,
            tries,
            epoch: Instant::now(),
            resolved: Vec::new(),
            state: Mutex::new(State {
                lists: Lists {
                    primary,
                    backup,
                    single,
                },
                rng: GlibcRandom::nginx_seeded().into_source(),
            }),
        }
    }

    /// Draw `random`'s numbers from `rng` instead (tests; any source
    /// uniform in `[0, 2^31)` behaves as nginx's).
    pub fn with_rng(self, rng: RandomSource) -> UpstreamGroup {
        self.lock().rng = rng;
        self
    }

    /// Count whole seconds from `epoch` instead of from construction.
    pub fn with_epoch(mut self, epoch: Instant) -> UpstreamGroup {
        self.epoch = epoch;
        self
    }

    /// The group's name (the `upstream` name, or the implicit address).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The addresses of each `server` line it was built from.
    pub fn resolved(&self) -> &[Vec<PeerAddr>] {
        &self.resolved
    }

    /// Second 0 of the group's clock.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Number of peers (addresses), backups included.
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// Whether the group has no peer (an implicit upstream of no address).
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// Begin one request.
    pub fn start(&self, input: PickInput<'_>) -> Attempt<'_> {
        let mut tries = self.tries;
        if input.next_upstream_tries != 0 && tries > input.next_upstream_tries {
            tries = input.next_upstream_tries;
        }
        let key = input.hash_key.unwrap_or_default();
        let key_state = match &self.method {
            Method::RoundRobin | Method::LeastConn => KeyState::None,
            Method::IpHash => KeyState::Ip(ip_hash::IpHashState::new(input.client_ip)),
            Method::Hash => KeyState::Hash(hash::HashState::new(key)),
            Method::Chash { points, .. } => KeyState::Chash(chash::ChashState::new(points, key)),
            Method::Random { .. } => KeyState::Random(random::RandomState::default()),
        };
        let widest = self.primaries.max(self.info.len() - self.primaries);
        Attempt {
            group: self,
            cur: Cursor {
                backup: false,
                tried: Tried::new(widest),
            },
            tries,
            key: key_state,
            open: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the counters unusable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// nginx's `ngx_time()` for `now`.
    fn secs(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(i64::MAX / 4)
    }

    /// (backup list?, index in it) of a group index.
    fn locate(&self, index: usize) -> (bool, usize) {
        if index < self.primaries {
            (false, index)
        } else {
            (true, index - self.primaries)
        }
    }
}

/// The per-request data of the key-based methods.
#[derive(Debug, Clone)]
enum KeyState {
    None,
    Ip(ip_hash::IpHashState),
    Hash(hash::HashState),
    Chash(chash::ChashState),
    Random(random::RandomState),
}

/// One request's tries through a group.
#[derive(Debug)]
pub struct Attempt<'g> {
    group: &'g UpstreamGroup,
    cur: Cursor,
    /// nginx's `pc->tries`.
    tries: usize,
    key: KeyState,
    /// The picked, not yet released peer (group index).
    open: Option<usize>,
}

impl<'g> Attempt<'g> {
    /// The next peer to try, or `None`: no live upstreams (nginx answers
    /// 502). A pick still open is released first (as not failed).
    pub fn pick(&mut self, now: Instant) -> Option<Picked<'g>> {
        if let Some(open) = self.open.take() {
            let _ = self.free(open, FreeState::Other, now);
        }
        let group = self.group;
        let secs = group.secs(now);
        let mut guard = group.lock();
        let state = &mut *guard;
        let lists = &mut state.lists;
        let cur = &mut self.cur;
        let i = match (&group.method, &mut self.key) {
            (Method::LeastConn, _) => least_conn::get(lists, cur, secs),
            (Method::IpHash, KeyState::Ip(st)) => ip_hash::get(lists, cur, st, secs),
            (Method::Hash, KeyState::Hash(st)) => hash::get(lists, cur, st, secs),
            (Method::Chash { points, servers }, KeyState::Chash(st)) => {
                let offset = if cur.backup { group.primaries } else { 0 };
                let servers = servers.get(offset..).unwrap_or_default();
                chash::get(lists, cur, st, points, servers, secs)
            }
            (Method::Random { two, ranges }, KeyState::Random(st)) => {
                random::get(lists, cur, st, ranges, *two, &mut state.rng, secs)
            }
            _ => round_robin::get(lists, cur, secs),
        }?;
        let peer = &mut lists.get_mut(cur.backup).peers[i];
        peer.conns += 1;
        peer.requests += 1;
        drop(guard);
        let index = if cur.backup { group.primaries + i } else { i };
        let info = &group.info[index];
        self.open = Some(index);
        Some(Picked {
            index,
            addr: &info.addr,
            name: &info.name,
            server: &info.server,
            backup: info.backup,
        })
    }

    /// End the try of `picked` (nginx's `free_peer`): failure accounting,
    /// connection count, one try used.
    pub fn release(&mut self, picked: Picked<'_>, outcome: Outcome, now: Instant) -> Released {
        if self.open != Some(picked.index) {
            debug_assert!(false, "release of a peer this attempt has not open");
            return Released { disabled: false };
        }
        self.open = None;
        let state = match outcome {
            Outcome::Failure => FreeState::Failed,
            Outcome::Success | Outcome::NextNotCounted => FreeState::Other,
        };
        self.free(picked.index, state, now)
    }

    /// How many more tries this request may make (0: give up). Starts at
    /// the non-down peers, backups included, capped by
    /// `proxy_next_upstream_tries`; each release uses one; a single-peer
    /// group allows none after its first.
    pub fn tries_left(&self) -> usize {
        self.tries
    }

    fn free(&mut self, index: usize, state: FreeState, now: Instant) -> Released {
        let group = self.group;
        let secs = group.secs(now);
        let (backup, i) = group.locate(index);
        let mut guard = group.lock();
        let single = guard.lists.single;
        let Some(peer) = guard.lists.get_mut(backup).peers.get_mut(i) else {
            return Released { disabled: false };
        };
        if state == FreeState::Failed {
            peer.failures += 1;
        }
        if single {
            peer.conns = peer.conns.saturating_sub(1);
            self.tries = 0;
            return Released { disabled: false };
        }
        let disabled = peer::free_peer(peer, state, secs);
        self.tries = self.tries.saturating_sub(1);
        Released { disabled }
    }
}

impl Drop for Attempt<'_> {
    /// nginx's finalize frees the open peer with state 0 (not failed).
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            let _ = self.free(open, FreeState::Other, portico_server::clock::now());
        }
    }
}
