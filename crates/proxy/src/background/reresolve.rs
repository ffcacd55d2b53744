//! `server NAME resolve`: the name is looked up again every period and,
//! when its addresses changed, the block's group is rebuilt over the new
//! ones ([`UpstreamGroup::rebuilt`]: peers that stay keep their state) and
//! swapped into the [`GroupSlot`]. Requests under way finish on the group
//! they started on.
//!
//! The period is the `resolver`'s `valid=` when set, else
//! [`DEFAULT_PERIOD`] (the system resolver gives no TTL). Names are looked
//! up with the system resolver (`getaddrinfo`, through
//! `tokio::net::lookup_host`): `resolver ADDRESS` is accepted, its
//! addresses are not used. A lookup that fails keeps the addresses the
//! server had (logged once per failure episode); servers without
//! `resolve` keep the addresses they got at load. The lookup is
//! injectable ([`Lookup`]) so the swap is tested without DNS.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portico_config::site::{Upstream, UpstreamTarget};

use super::GroupSlot;
use crate::target::PeerAddr;

/// How often names are looked up again without `resolver ... valid=`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

/// A name lookup: every address of `host` with `port`.
pub type Lookup = Arc<
    dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>
        + Send
        + Sync,
>;

/// The system resolver.
pub fn system_lookup() -> Lookup {
    Arc::new(|host, port| {
        Box::pin(async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(Iterator::collect)
        })
    })
}

/// The re-resolution of one block's `resolve` servers.
pub struct Reresolver {
    slot: Arc<GroupSlot>,
    up: Arc<Upstream>,
    period: Duration,
    lookup: Lookup,
    /// Whether the last lookup failed (log once per episode).
    failing: AtomicBool,
}

impl Reresolver {
    /// For `up`, whose group is in `slot`; `None` when no server of it
    /// has `resolve`.
    pub fn new(slot: Arc<GroupSlot>, up: Arc<Upstream>, lookup: Lookup) -> Option<Reresolver> {
        if !up.servers.iter().any(|s| s.resolve) {
            return None;
        }
        let period = up
            .resolver
            .as_ref()
            .and_then(|r| r.valid)
            .filter(|v| !v.is_zero())
            .unwrap_or(DEFAULT_PERIOD);
        Some(Reresolver {
            slot,
            up,
            period,
            lookup,
            failing: AtomicBool::new(false),
        })
    }

    /// How often it looks up.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Look up every `period`, for ever (the runtime ends it). The first
    /// round is one period after start (the group was just resolved).
    pub async fn run(self: Arc<Self>) {
        let start = tokio::time::Instant::now() + self.period;
        let mut tick = tokio::time::interval_at(start, self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.once().await;
        }
    }

    /// Look up every `resolve` server now; swap in a rebuilt group if an
    /// address set changed. Returns whether it swapped.
    pub async fn once(&self) -> bool {
        let group = self.slot.current();
        let old = group.resolved();
        let mut new = Vec::with_capacity(old.len());
        let mut failed = false;
        for (i, s) in self.up.servers.iter().enumerate() {
            let kept = old.get(i).cloned().unwrap_or_default();
            let UpstreamTarget::Tcp { host, port } = &s.target else {
                new.push(kept);
                continue;
            };
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if !s.resolve || bare.parse::<IpAddr>().is_ok() {
                new.push(kept);
                continue;
            }
            match (self.lookup)(bare.to_string(), *port).await {
                Ok(addrs) if !addrs.is_empty() => {
                    let mut list: Vec<PeerAddr> = Vec::with_capacity(addrs.len());
                    for a in addrs {
                        let a = PeerAddr::Tcp(a);
                        if !list.contains(&a) {
                            list.push(a);
                        }
                    }
                    new.push(list);
                }
                result => {
                    failed = true;
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        let why = result
                            .err()
                            .map_or("no address".to_string(), |e| e.to_string());
                        portico_server::logln!(
                            "[error] {bare} could not be resolved ({why}), upstream \"{}\" keeps its addresses",
                            self.up.name
                        );
                    }
                    new.push(kept);
                }
            }
        }
        if !failed {
            self.failing.store(false, Ordering::Relaxed);
        }
        if same_sets(old, &new) {
            return false;
        }
        match group.rebuilt(&self.up, &new) {
            Ok(rebuilt) => {
                portico_server::logln!(
                    "[notice] upstream \"{}\": addresses changed, now {}",
                    self.up.name,
                    shown(&new)
                );
                self.slot.replace(Arc::new(rebuilt));
                true
            }
            Err(e) => {
                portico_server::logln!("[error] upstream \"{}\": {e}", self.up.name);
                false
            }
        }
    }
}

/// Whether each server has the same addresses (order aside: a name's
/// answers may rotate).
fn same_sets(a: &[Vec<PeerAddr>], b: &[Vec<PeerAddr>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().all(|p| y.contains(p)))
}

fn shown(resolved: &[Vec<PeerAddr>]) -> String {
    let all: Vec<String> = resolved.iter().flatten().map(ToString::to_string).collect();
    if all.is_empty() {
        "none".to_string()
    } else {
        all.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::Mutex;

    use portico_config::site::{Resolver, UpstreamServer};

    use super::*;
    use crate::balance::{CheckRule, Outcome, PeerState, PickInput, UpstreamGroup};

    fn ip(last: u8) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 80))
    }

    /// What the fake lookup answers now (`None`: an error).
    type Answers = Arc<Mutex<Option<Vec<SocketAddr>>>>;

    /// A lookup answering what `answers` holds now.
    fn fake(answers: Answers) -> Lookup {
        Arc::new(move |host, _port| {
            assert_eq!(host, "app.internal");
            let answer = answers.lock().map(|a| a.clone()).unwrap_or(None);
            Box::pin(async move { answer.ok_or_else(|| io::Error::other("SERVFAIL")) })
        })
    }

    fn upstream(valid: Option<Duration>) -> Upstream {
        Upstream {
            name: "app".into(),
            servers: vec![
                UpstreamServer {
                    target: UpstreamTarget::Tcp {
                        host: "app.internal".into(),
                        port: 80,
                    },
                    name: "app.internal".into(),
                    resolve: true,
                    ..UpstreamServer::default()
                },
                UpstreamServer {
                    target: UpstreamTarget::Tcp {
                        host: "127.0.0.1".into(),
                        port: 9,
                    },
                    name: "127.0.0.1:9".into(),
                    ..UpstreamServer::default()
                },
            ],
            resolver: valid.map(|valid| Resolver {
                servers: Vec::new(),
                valid: Some(valid),
                ipv4: true,
                ipv6: true,
                timeout: Duration::from_secs(30),
            }),
            ..Upstream::default()
        }
    }

    fn names(slot: &GroupSlot) -> Vec<String> {
        let g = slot.current();
        g.snapshot(g.epoch()).into_iter().map(|p| p.name).collect()
    }

    fn setup(first: Vec<SocketAddr>) -> (Arc<GroupSlot>, Reresolver, Answers) {
        let up = Arc::new(upstream(None));
        let local = PeerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 9)));
        let resolved = vec![first.into_iter().map(PeerAddr::Tcp).collect(), vec![local]];
        let group = UpstreamGroup::new(&up, &resolved).map(Arc::new);
        let Ok(group) = group else {
            unreachable!("the test upstream builds")
        };
        let slot = Arc::new(GroupSlot::new(group));
        let answers = Arc::new(Mutex::new(None));
        let Some(r) = Reresolver::new(slot.clone(), up, fake(answers.clone())) else {
            unreachable!("the test upstream has a resolve server")
        };
        (slot, r, answers)
    }

    fn answer(answers: &Mutex<Option<Vec<SocketAddr>>>, value: Option<Vec<SocketAddr>>) {
        if let Ok(mut a) = answers.lock() {
            *a = value;
        }
    }

    #[tokio::test]
    async fn new_addresses_swap_in_a_rebuilt_group_that_keeps_known_peers_state() {
        let (slot, r, answers) = setup(vec![ip(1), ip(2)]);
        let old = slot.current();
        // 10.0.0.1 fails passively and 10.0.0.2 fails its checks.
        {
            let mut a = old.start(PickInput::default());
            let Some(p) = a.pick(old.epoch()) else {
                unreachable!()
            };
            assert_eq!(&**p.name, "10.0.0.1:80");
            let _ = a.release(p, Outcome::Failure, old.epoch());
        }
        let rule = CheckRule {
            fails: 1,
            passes: 1,
        };
        let t = old.check_targets()[1].clone();
        let _ = old.record_check(&t, false, rule);

        answer(&answers, Some(vec![ip(2), ip(3), ip(2)]));
        assert!(r.once().await);
        assert_eq!(
            names(&slot),
            vec!["10.0.0.2:80", "10.0.0.3:80", "127.0.0.1:9"]
        );
        let new = slot.current();
        let states: Vec<PeerState> = new
            .snapshot(new.epoch())
            .into_iter()
            .map(|p| p.state)
            .collect();
        assert_eq!(
            states,
            vec![PeerState::Unhealthy, PeerState::Up, PeerState::Up]
        );
        // The old group stays whole for requests that started on it.
        assert_eq!(old.len(), 3);
    }

    #[tokio::test]
    async fn the_same_set_in_another_order_is_no_change() {
        let (slot, r, answers) = setup(vec![ip(1), ip(2)]);
        let before = slot.current();
        answer(&answers, Some(vec![ip(2), ip(1)]));
        assert!(!r.once().await);
        assert!(Arc::ptr_eq(&before, &slot.current()));
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_addresses() {
        let (slot, r, answers) = setup(vec![ip(1)]);
        answer(&answers, None);
        assert!(!r.once().await);
        answer(&answers, Some(Vec::new()));
        assert!(!r.once().await);
        assert_eq!(names(&slot), vec!["10.0.0.1:80", "127.0.0.1:9"]);
    }

    #[tokio::test]
    async fn a_name_unresolved_at_load_joins_when_it_resolves() {
        let (slot, r, answers) = setup(Vec::new());
        assert_eq!(names(&slot), vec!["127.0.0.1:9"]);
        answer(&answers, Some(vec![ip(7)]));
        assert!(r.once().await);
        assert_eq!(names(&slot), vec!["10.0.0.7:80", "127.0.0.1:9"]);
    }

    #[test]
    fn the_period_is_valid_else_five_seconds_and_only_resolve_blocks_get_one() {
        let slot = || {
            let up = upstream(None);
            let resolved = vec![vec![PeerAddr::Tcp(ip(1))], vec![PeerAddr::Tcp(ip(9))]];
            match UpstreamGroup::new(&up, &resolved) {
                Ok(g) => Arc::new(GroupSlot::new(Arc::new(g))),
                Err(e) => unreachable!("{e}"),
            }
        };
        let period = |up: Upstream| {
            Reresolver::new(slot(), Arc::new(up), system_lookup()).map(|r| r.period())
        };
        assert_eq!(period(upstream(None)), Some(DEFAULT_PERIOD));
        assert_eq!(
            period(upstream(Some(Duration::from_secs(30)))),
            Some(Duration::from_secs(30))
        );
        let mut plain = upstream(None);
        plain.servers.iter_mut().for_each(|s| s.resolve = false);
        assert_eq!(period(plain), None);
    }
}
