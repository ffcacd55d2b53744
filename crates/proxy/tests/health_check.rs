//! Active health checks (`health_check`) against tiny backends: a dead
//! peer leaves the rotation before a request reaches it and comes back on
//! its own; `match` status conditions decide; the checks are `GET uri`
//! with `Host:` the upstream's name; passive health is left alone.

// Test code: a failed expect is a failed test (clippy.toml exempts #[test] fns only).
#![allow(clippy::expect_used)]

#[allow(dead_code)]
mod http_backend;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_backend::{Act, Backend};
use portico_config::site::{
    HealthCheck, HealthMatch, ProxySettings, StatusCondition, Upstream, UpstreamServer,
    UpstreamTarget,
};
use portico_proxy::background::check::HealthChecker;
use portico_proxy::{GroupSlot, HttpProxy, PeerState, UpstreamGroup};
use portico_server::{ProxyCall, ProxyUpstream, Request};

const GET: &str = "GET / HTTP/1.1\r\nHost: app\r\n\r\n";

fn ok() -> Bytes {
    Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

fn call() -> ProxyCall {
    let peer: SocketAddr = "10.0.0.7:5555".parse().expect("addr");
    let request = Request::from_http_bytes(GET.as_bytes(), Some(peer), None).expect("parses");
    ProxyCall {
        request,
        client_ip: Some(peer.ip()),
        hash_key: None,
        started: Instant::now(),
        authority: None,
        encoded_head: None,
    }
}

fn upstream(addrs: &[SocketAddr]) -> Upstream {
    Upstream {
        name: "backend".into(),
        servers: addrs
            .iter()
            .map(|a| UpstreamServer {
                target: UpstreamTarget::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                },
                name: a.to_string(),
                ..UpstreamServer::default()
            })
            .collect(),
        ..Upstream::default()
    }
}

fn health_check(interval_ms: u64, matcher: Option<HealthMatch>) -> HealthCheck {
    HealthCheck {
        interval: Duration::from_millis(interval_ms),
        fails: 1,
        passes: 1,
        uri: "/health".into(),
        matcher,
        origin: "test".into(),
    }
}

fn slot_of(up: &Upstream) -> Arc<GroupSlot> {
    let group = UpstreamGroup::resolve(up).expect("literal addresses");
    Arc::new(GroupSlot::new(Arc::new(group)))
}

fn checker(slot: &Arc<GroupSlot>, check: HealthCheck) -> HealthChecker {
    let s = ProxySettings::default();
    HealthChecker::new(
        slot.clone(),
        "backend",
        check,
        s.connect_timeout,
        s.read_timeout,
    )
}

fn states(slot: &GroupSlot) -> Vec<PeerState> {
    let g = slot.current();
    g.snapshot(Instant::now())
        .into_iter()
        .map(|p| p.state)
        .collect()
}

/// Wait (at most 3 s) until the peers' states are `want`.
async fn wait_for(slot: &GroupSlot, want: &[PeerState]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while states(slot) != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(states(slot), want);
}

/// A port nothing listens on (bound, then released).
async fn dead_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test]
async fn a_dead_peer_leaves_before_requests_reach_it_and_comes_back_on_its_own() {
    let alive = Backend::start(|_| Act::Reply(ok())).await;
    let dead = dead_port().await;
    let up = upstream(&[alive.addr, dead]);
    let slot = slot_of(&up);
    let task = tokio::spawn(checker(&slot, health_check(200, None)).run());
    wait_for(&slot, &[PeerState::Up, PeerState::Unhealthy]).await;

    let proxy = HttpProxy::in_slot(slot.clone(), Arc::new(ProxySettings::default()), None);
    for _ in 0..6 {
        let out = proxy.forward(call()).await;
        assert_eq!(out.response.status, 200);
        assert_eq!(
            out.tries.addr(),
            alive.addr.to_string(),
            "never the dead peer"
        );
    }
    let stats = slot.current().snapshot(Instant::now());
    assert_eq!((stats[1].requests, stats[1].failures), (0, 0));

    let _back = Backend::start_at(&dead.to_string(), |_| Act::Reply(ok())).await;
    wait_for(&slot, &[PeerState::Up, PeerState::Up]).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(proxy.forward(call()).await.tries.addr().to_string());
    }
    assert!(
        seen.contains(&dead.to_string()),
        "back in rotation: {seen:?}"
    );
    task.abort();
}

#[tokio::test]
async fn checks_are_get_uri_with_the_upstream_name_as_host() {
    let backend = Backend::start(|_| Act::Reply(ok())).await;
    let slot = slot_of(&upstream(&[backend.addr]));
    checker(&slot, health_check(1000, None)).round().await;
    let seen = backend.stats.seen.lock().expect("lock")[0].clone();
    let head = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        head.starts_with("GET /health HTTP/1.1\r\nHost: backend\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn status_conditions_decide_what_passes() {
    let unavailable = Bytes::from_static(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
    let backend = Backend::start(move |_| Act::Reply(unavailable.clone())).await;
    let slot = slot_of(&upstream(&[backend.addr]));
    checker(&slot, health_check(1000, None)).round().await;
    assert_eq!(
        states(&slot),
        vec![PeerState::Unhealthy],
        "default: 2xx/3xx"
    );
    let accept_503 = HealthMatch {
        name: "busy_is_fine".into(),
        conditions: vec![StatusCondition {
            negate: false,
            ranges: vec![(200, 299), (503, 503)],
        }],
    };
    checker(&slot, health_check(1000, Some(accept_503)))
        .round()
        .await;
    assert_eq!(states(&slot), vec![PeerState::Up]);
}

#[tokio::test]
async fn a_peer_that_never_answers_fails_within_the_interval() {
    // Accepts, reads, never answers.
    let silent = Backend::start(|_| Act::Late(Duration::from_secs(30), ok())).await;
    let slot = slot_of(&upstream(&[silent.addr]));
    let started = Instant::now();
    checker(&slot, health_check(200, None)).round().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(states(&slot), vec![PeerState::Unhealthy]);
}
