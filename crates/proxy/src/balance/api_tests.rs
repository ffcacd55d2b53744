//! The balancer API's own rules, beyond pick order: tries and their cap,
//! the single peer that never accounts failures, implicit upstreams,
//! fail_timeout windows and trial requests, release reports, dropped
//! attempts, load-time errors, stats snapshots.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use portico_config::site::{Balancer, Upstream};

use super::tests::{BASE_PORT, group, letter, server};
use super::*;

fn addr(port: u16) -> PeerAddr {
    PeerAddr::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

#[test]
fn single_peer_never_counts_failures_and_allows_no_retry() {
    let g = UpstreamGroup::single(addr(BASE_PORT));
    let now = g.epoch();
    for _ in 0..5 {
        let mut a = g.start(PickInput::default());
        assert_eq!(a.tries_left(), 1);
        let p = a.pick(now).map(|p| (p.index, p.name.to_string()));
        assert_eq!(p, Some((0, "127.0.0.1:29081".to_string())));
        let Some(p) = a.pick(now) else { unreachable!() };
        let released = a.release(p, Outcome::Failure, now);
        assert!(!released.disabled);
        assert_eq!(a.tries_left(), 0);
    }
    let stats = g.snapshot(now);
    assert_eq!(stats[0].state, PeerState::Up);
    assert_eq!(stats[0].failures, 5);
}

#[test]
fn implicit_upstream_of_several_addresses_accounts_failures() {
    let g = UpstreamGroup::implicit("app:80", vec![addr(1), addr(2)]);
    let now = g.epoch();
    let mut a = g.start(PickInput::default());
    assert_eq!(a.tries_left(), 2);
    let Some(p) = a.pick(now) else { unreachable!() };
    assert_eq!(p.server, "app:80");
    assert!(a.release(p, Outcome::Failure, now).disabled);
    assert_eq!(a.tries_left(), 1);
    assert_eq!(g.snapshot(now)[0].state, PeerState::Unavailable);
}

#[test]
fn tries_count_non_down_peers_with_backups_capped_by_next_upstream_tries() {
    let g = group(
        Balancer::RoundRobin,
        &["A", "B down", "C", "D backup", "E backup down"],
    );
    for (cap, want) in [(0, 3), (2, 2), (5, 3), (1, 1)] {
        let a = g.start(PickInput {
            next_upstream_tries: cap,
            ..PickInput::default()
        });
        assert_eq!(a.tries_left(), want, "cap {cap}");
    }
}

#[test]
fn failed_peer_is_skipped_for_fail_timeout_then_gets_one_trial() {
    let g = group(Balancer::RoundRobin, &["A", "B fail_timeout=10"]);
    let t = |s: u64| g.epoch() + Duration::from_secs(s);
    let one = |now: Instant, fail_b: bool| {
        let mut a = g.start(PickInput::default());
        let Some(p) = a.pick(now) else { return '-' };
        let l = letter(&p);
        let outcome = if l == 'B' && fail_b {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let _ = a.release(p, outcome, now);
        l
    };
    assert_eq!(one(t(0), true), 'A');
    assert_eq!(one(t(0), true), 'B'); // fails: out until second 10 ends
    let skipped: String = (0..4).map(|s| one(t(s * 3), true)).collect();
    assert_eq!(skipped, "AAAA");
    assert_eq!(one(t(10), true), 'A');
    // Second 11: the window is over; B (effective weight 0, recovering)
    // comes back into the rotation for exactly one trial, which fails.
    let trial: String = (0..4).map(|_| one(t(11), true)).collect();
    assert_eq!(trial.matches('B').count(), 1, "{trial}");
    let skipped: String = (0..4).map(|_| one(t(21), true)).collect();
    assert_eq!(skipped, "AAAA");
    // Second 22: the trial passes and resets fails: B stays in rotation.
    let trial: String = (0..4).map(|_| one(t(22), false)).collect();
    assert_eq!(trial.matches('B').count(), 1, "{trial}");
    let back: String = (0..4).map(|_| one(t(22), false)).collect();
    assert_eq!(back.matches('B').count(), 2, "{back}");
    assert_eq!(g.snapshot(t(22))[1].state, PeerState::Up);
}

#[test]
fn released_failure_reports_disable_once_at_max_fails() {
    let g = group(Balancer::RoundRobin, &["A max_fails=2", "B down"]);
    let now = g.epoch();
    let mut disabled = Vec::new();
    for _ in 0..2 {
        let mut a = g.start(PickInput::default());
        let Some(p) = a.pick(now) else { unreachable!() };
        assert_eq!(letter(&p), 'A');
        disabled.push(a.release(p, Outcome::Failure, now).disabled);
    }
    assert_eq!(disabled, [false, true]);
    let s = g.snapshot(now);
    assert_eq!(
        (s[0].state, s[0].failures, s[0].requests),
        (PeerState::Unavailable, 2, 2)
    );
}

#[test]
fn dropped_attempt_releases_its_connection() {
    let g = group(Balancer::LeastConn, &["A", "B"]);
    let now = g.epoch();
    {
        let mut a = g.start(PickInput::default());
        assert!(a.pick(now).is_some());
        assert_eq!(g.snapshot(now)[0].active, 1);
    }
    assert_eq!(g.snapshot(now)[0].active, 0);
}

#[test]
fn all_backup_upstream_is_refused_as_nginx_does() {
    let up = Upstream {
        name: "u".into(),
        servers: vec![server("A backup")],
        balancer: Balancer::RoundRobin,
        origin: "n.conf:3".into(),
        ..Default::default()
    };
    let err = UpstreamGroup::new(&up, &[vec![addr(1)]]).map(|_| ());
    let msg = err.map_err(|e| e.to_string());
    assert_eq!(
        msg,
        Err("no servers in upstream \"u\" in n.conf:3".to_string())
    );
}

#[test]
fn snapshot_shows_down_and_backup_states() {
    let g = group(Balancer::RoundRobin, &["A", "B down", "C backup"]);
    let states: Vec<_> = g
        .snapshot(g.epoch())
        .iter()
        .map(|s| s.state.as_str())
        .collect();
    assert_eq!(states, ["up", "down", "backup"]);
}

#[test]
fn groups_are_shared_and_attempts_cross_awaits() {
    fn shared<T: Send + Sync>() {}
    fn sendable<T: Send>() {}
    shared::<UpstreamGroup>();
    sendable::<Attempt<'static>>();
    sendable::<Picked<'static>>();
}

#[test]
fn rebuilt_group_keeps_the_state_of_peers_that_stay() {
    let mut specs = vec![server("A"), server("B")];
    specs[1].resolve = true;
    let up = Upstream {
        name: "u".into(),
        servers: specs,
        balancer: Balancer::RoundRobin,
        ..Default::default()
    };
    let (a, b, b2) = (addr(BASE_PORT), addr(BASE_PORT + 1), addr(BASE_PORT + 7));
    let g = match UpstreamGroup::new(&up, &[vec![a.clone()], vec![b.clone()]]) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    };
    let now = g.epoch();
    // Fail B once: it is out for fail_timeout.
    for _ in 0..2 {
        let mut at = g.start(PickInput::default());
        let Some(p) = at.pick(now) else {
            unreachable!()
        };
        let outcome = if p.addr == &b {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let _ = at.release(p, outcome, now);
    }
    // The name now resolves to B and a new address.
    let g2 = match g.rebuilt(&up, &[vec![a], vec![b, b2]]) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    };
    let states: Vec<_> = g2
        .snapshot(now)
        .iter()
        .map(|s| (s.state, s.requests))
        .collect();
    assert_eq!(
        states,
        [
            (PeerState::Up, 1),
            (PeerState::Unavailable, 1),
            (PeerState::Up, 0)
        ]
    );
    // A resolve server with no address yet is accepted; others are not.
    assert!(UpstreamGroup::new(&up, &[vec![addr(1)], vec![]]).is_ok());
    let err = UpstreamGroup::new(&up, &[vec![], vec![addr(2)]]).map(|_| ());
    assert!(matches!(err, Err(GroupError::Mismatch { .. })), "{err:?}");
    // Nothing resolved yet: no live upstreams, whatever the method.
    let mut only = server("B");
    only.resolve = true;
    for balancer in [
        Balancer::RoundRobin,
        Balancer::LeastConn,
        Balancer::IpHash,
        Balancer::Hash {
            key: "$k".into(),
            consistent: true,
        },
        Balancer::Random {
            two: true,
            least_conn: true,
        },
    ] {
        let up = Upstream {
            name: "u".into(),
            servers: vec![only.clone()],
            balancer,
            ..Default::default()
        };
        let g = match UpstreamGroup::new(&up, &[vec![]]) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        };
        let mut at = g.start(PickInput {
            hash_key: Some(b"k"),
            ..PickInput::default()
        });
        assert!(at.pick(now).is_none());
        assert_eq!(at.tries_left(), 0);
    }
}
