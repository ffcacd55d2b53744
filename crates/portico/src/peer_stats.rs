//! A worker's upstream peers in the scoreboard: a background task copies
//! every group's snapshot (requests, failures, active tries, health-check
//! counts, state) into the worker's peer slots once a second, for the
//! master's stats document (`upstreams`) and `portico_upstream_*` metrics.
//! Balancer state is per worker (nginx without `zone`), so the stats show
//! each worker's view. At most `MAX_PEERS` peers per worker are shown; the
//! rest are left out (logged once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_proxy::GroupSlot;
use portico_server::BackgroundTask;
use portico_supervisor::{MAX_PEERS, PeerRecord, Scoreboard};

/// How often the slots are refreshed.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The task publishing `groups` (by upstream name) into worker `wid`'s slots.
pub(crate) fn peer_publisher(
    board: Arc<Scoreboard>,
    wid: usize,
    groups: Vec<(String, Arc<GroupSlot>)>,
) -> BackgroundTask {
    let groups = Arc::new(groups);
    Arc::new(move || {
        let (board, groups) = (board.clone(), groups.clone());
        Box::pin(async move {
            let mut tick = tokio::time::interval(PUBLISH_EVERY);
            let mut warned = false;
            loop {
                tick.tick().await;
                let shown = publish(&board, wid, &groups, Instant::now());
                if shown.1 > shown.0 && !warned {
                    warned = true;
                    portico_server::logln!(
                        "worker {wid}: {} upstream peers, the stats show the first {}",
                        shown.1,
                        shown.0
                    );
                }
            }
        })
    })
}

/// Write every peer of `groups` into worker `wid`'s slots and clear the
/// rest. Returns (peers shown, peers there are).
pub(crate) fn publish(
    board: &Scoreboard,
    wid: usize,
    groups: &[(String, Arc<GroupSlot>)],
    now: Instant,
) -> (usize, usize) {
    let mut total = 0;
    for (name, slot) in groups {
        let group = slot.current();
        for p in group.snapshot(now) {
            if total < MAX_PEERS {
                board.peer(wid, total).publish(&PeerRecord {
                    upstream: name.clone(),
                    peer: p.name,
                    state: p.state.as_str().to_string(),
                    requests: p.requests,
                    failures: p.failures,
                    active: p.active,
                    checks: p.checks,
                    check_fails: p.check_fails,
                });
            }
            total += 1;
        }
    }
    let shown = total.min(MAX_PEERS);
    for i in shown..MAX_PEERS {
        board.peer(wid, i).clear();
    }
    (shown, total)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use portico_proxy::{PeerAddr, UpstreamGroup};

    use super::*;

    #[test]
    fn every_group_peer_lands_in_the_workers_slots_and_the_rest_are_cleared() {
        let board = Scoreboard::new(2, 1).expect("map");
        let addr = |port| PeerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        let group = |name: &str, ports: &[u16]| {
            let g = UpstreamGroup::implicit(name, ports.iter().map(|p| addr(*p)).collect());
            (name.to_string(), Arc::new(GroupSlot::new(Arc::new(g))))
        };
        let groups = vec![group("a", &[8001, 8002]), group("b", &[8003])];
        board.peer(2, 5).publish(&PeerRecord {
            upstream: "stale".into(),
            state: "up".into(),
            ..PeerRecord::default()
        });
        assert_eq!(publish(&board, 2, &groups, Instant::now()), (3, 3));
        let seen: Vec<(usize, String, String, String)> = board
            .peers()
            .into_iter()
            .map(|(w, p)| (w, p.upstream, p.peer, p.state))
            .collect();
        let row = |u: &str, p: &str| (2, u.to_string(), p.to_string(), "up".to_string());
        assert_eq!(
            seen,
            vec![
                row("a", "127.0.0.1:8001"),
                row("a", "127.0.0.1:8002"),
                row("b", "127.0.0.1:8003")
            ]
        );
    }
}
