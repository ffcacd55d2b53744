//! The HTTP upstream client and `HttpProxy` against tiny tokio HTTP/1.1
//! backends that count their connections and requests: keep-alive reuse,
//! backends that close, a slow one (504), a refused one (502, and the next
//! peer), POST not retried once sent, chunked and 1 MiB responses streamed,
//! and a client that goes away dropping the upstream connection.

// Test code: a failed expect is a failed test (clippy.toml exempts #[test] fns only).
#![allow(clippy::expect_used)]

mod http_backend;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_backend::{Act, Backend};
use portico_config::site::{NextUpstream, ProxySettings, UpstreamTarget};
use portico_proxy::{ConnPool, HttpProxy, PeerAddr, PoolSettings, UpstreamGroup};
use portico_server::{ProxyCall, ProxyOutcome, ProxyUpstream, Request, ResponseBody, StreamItem};
use tokio::net::TcpListener;

fn ok(body: &str) -> Bytes {
    Bytes::from(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn call(raw: &str) -> ProxyCall {
    let peer: SocketAddr = "10.0.0.7:5555".parse().expect("addr");
    let local: SocketAddr = "127.0.0.1:80".parse().expect("addr");
    let request =
        Request::from_http_bytes(raw.as_bytes(), Some(peer), Some(local)).expect("request parses");
    ProxyCall {
        request,
        client_ip: Some(peer.ip()),
        hash_key: None,
        started: Instant::now(),
        authority: None,
        encoded_head: None,
    }
}

const GET: &str = "GET /a?b=1 HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 10.0.0.7\r\n\r\n";
const POST: &str = "POST /form HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\n\r\nabcd";

fn settings(f: impl FnOnce(&mut ProxySettings)) -> Arc<ProxySettings> {
    let mut s = ProxySettings::default();
    f(&mut s);
    Arc::new(s)
}

fn pooled(peers: Vec<PeerAddr>, s: Arc<ProxySettings>) -> HttpProxy {
    let group = Arc::new(UpstreamGroup::implicit("app", peers));
    HttpProxy::new(
        group,
        s,
        Some(Arc::new(ConnPool::new(PoolSettings::default()))),
    )
}

/// The whole body, and whether it ended cleanly.
async fn body_of(outcome: &mut ProxyOutcome) -> (Vec<u8>, bool) {
    match std::mem::replace(&mut outcome.response.body, ResponseBody::Empty) {
        ResponseBody::Empty => (Vec::new(), true),
        ResponseBody::Full(b) => (b.to_vec(), true),
        ResponseBody::Stream(mut rx) => {
            let mut all = Vec::new();
            while let Some(item) = rx.next().await {
                match item {
                    StreamItem::Data(d) => all.extend_from_slice(&d),
                    // Spooled to a temporary file (proxy_buffering).
                    StreamItem::File { file, offset, len } => {
                        use std::os::unix::fs::FileExt;
                        let mut piece = vec![0u8; len as usize];
                        file.read_exact_at(&mut piece, offset)
                            .expect("spooled bytes");
                        all.extend_from_slice(&piece);
                    }
                    StreamItem::End => return (all, true),
                    _ => return (all, false),
                }
            }
            (all, false)
        }
        ResponseBody::File { .. } => panic!("no file bodies from a proxy"),
    }
}

/// Let the pump put a connection back after delivering the end.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

#[tokio::test]
async fn keep_alive_connections_are_reused_and_the_head_goes_as_given() {
    let backend = Backend::start(|_| Act::Reply(ok("hello"))).await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    for _ in 0..3 {
        let mut out = proxy.forward(call(GET)).await;
        assert_eq!(out.response.status, 200);
        assert_eq!(body_of(&mut out).await, (b"hello".to_vec(), true));
        assert_eq!(out.tries.status(), "200");
        assert_eq!(out.tries.addr(), backend.addr.to_string());
        assert!(out.from_upstream);
        settle().await;
    }
    assert_eq!(backend.count(), (1, 3), "one connection, three requests");
    let seen = backend.stats.seen.lock().expect("lock")[0].clone();
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "GET /a?b=1 HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 10.0.0.7\r\n\r\n"
    );
}

#[tokio::test]
async fn a_backend_that_says_close_gets_a_new_connection_each_time() {
    let reply = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi";
    let backend =
        Backend::start(move |_| Act::ReplyAndClose(Bytes::from_static(reply.as_bytes()))).await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    for _ in 0..2 {
        let mut out = proxy.forward(call(GET)).await;
        assert_eq!(body_of(&mut out).await, (b"hi".to_vec(), true));
        settle().await;
    }
    assert_eq!(backend.count(), (2, 2));
    assert_eq!(proxy.pool().map(|p| p.idle_count()), Some(0));
}

#[tokio::test]
async fn a_stale_pooled_connection_is_retried_once_on_a_fresh_one() {
    // The second request meets a connection the backend drops unanswered.
    let backend = Backend::start(|n| {
        if n == 1 {
            Act::Close
        } else {
            Act::Reply(ok("x"))
        }
    })
    .await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    for _ in 0..2 {
        let mut out = proxy.forward(call(GET)).await;
        assert_eq!(out.response.status, 200);
        assert_eq!(body_of(&mut out).await, (b"x".to_vec(), true));
        assert_eq!(out.tries.status(), "200", "one try, not a failure");
        settle().await;
    }
    assert_eq!(backend.count(), (2, 3));
}

#[tokio::test]
async fn a_post_on_a_stale_connection_is_not_resent_as_nginx() {
    let backend = Backend::start(|n| {
        if n == 1 {
            Act::Close
        } else {
            Act::Reply(ok("x"))
        }
    })
    .await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    let mut out = proxy.forward(call(POST)).await;
    assert_eq!(body_of(&mut out).await, (b"x".to_vec(), true));
    settle().await;
    let out = proxy.forward(call(POST)).await;
    assert_eq!(
        (out.response.status, out.tries.status().as_str()),
        (502, "502")
    );
    assert_eq!(backend.count(), (1, 2));
}

#[tokio::test]
async fn a_slow_backend_is_a_504_with_nginx_page() {
    let backend = Backend::start(|_| Act::Late(Duration::from_secs(3), ok("late"))).await;
    let s = settings(|s| s.read_timeout = Duration::from_millis(200));
    let proxy = HttpProxy::to_address(
        &UpstreamTarget::Tcp {
            host: "127.0.0.1".into(),
            port: backend.addr.port(),
        },
        s,
    )
    .expect("address");
    let started = Instant::now();
    let mut out = proxy.forward(call(GET)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(out.response.status, 504);
    assert!(!out.from_upstream);
    assert_eq!(out.tries.status(), "504");
    let (page, _) = body_of(&mut out).await;
    assert!(String::from_utf8_lossy(&page).contains("<title>504 Gateway Time-out</title>"));
}

async fn refused_addr() -> PeerAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    PeerAddr::Tcp(addr)
}

#[tokio::test]
async fn a_refused_peer_is_a_502_alone_and_the_next_peer_answers_in_a_group() {
    let dead = refused_addr().await;
    let proxy = pooled(vec![dead.clone()], settings(|_| {}));
    let mut out = proxy.forward(call(GET)).await;
    assert_eq!((out.response.status, out.from_upstream), (502, false));
    assert_eq!(out.tries.status(), "502");
    let (page, _) = body_of(&mut out).await;
    assert!(String::from_utf8_lossy(&page).contains("<title>502 Bad Gateway</title>"));

    let backend = Backend::start(|_| Act::Reply(ok("alive"))).await;
    let proxy = pooled(vec![dead.clone(), backend.peer()], settings(|_| {}));
    let mut out = proxy.forward(call(POST)).await;
    assert_eq!(out.response.status, 200, "connect failures retry even POST");
    assert_eq!(body_of(&mut out).await, (b"alive".to_vec(), true));
    assert_eq!(out.tries.addr(), format!("{dead}, {}", backend.addr));
    assert_eq!(out.tries.status(), "502, 200");
    assert_eq!(out.tries.response_time().matches(", ").count(), 1);
}

#[tokio::test]
async fn a_post_is_not_retried_once_sent_unless_non_idempotent() {
    let closer = Backend::start(|_| Act::Close).await;
    let good = Backend::start(|_| Act::Reply(ok("done"))).await;
    let proxy = pooled(vec![closer.peer(), good.peer()], settings(|_| {}));
    let out = proxy.forward(call(POST)).await;
    assert_eq!(out.response.status, 502);
    assert_eq!(out.tries.status(), "502");
    assert_eq!(good.count().1, 0, "the next peer never saw the POST");

    let mut out = proxy.forward(call(GET)).await;
    // The closer failed once (max_fails=1): round-robin skips it now.
    assert_eq!(out.response.status, 200);
    assert_eq!(out.tries.addr(), good.addr.to_string());
    assert_eq!(body_of(&mut out).await.0, b"done");

    let retrying = pooled(
        vec![closer.peer(), good.peer()],
        settings(|s| {
            s.next_upstream = NextUpstream {
                non_idempotent: true,
                ..NextUpstream::default()
            }
        }),
    );
    let out = retrying.forward(call(POST)).await;
    assert_eq!(out.response.status, 200);
    assert_eq!(out.tries.status(), "502, 200");
}

#[tokio::test]
async fn listed_statuses_go_to_the_next_peer_and_unlisted_ones_are_relayed() {
    let failing = Backend::start(|_| {
        Act::Reply(Bytes::from_static(
            b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy",
        ))
    })
    .await;
    let good = Backend::start(|_| Act::Reply(ok("fine"))).await;
    let proxy = pooled(vec![failing.peer(), good.peer()], settings(|_| {}));
    let mut out = proxy.forward(call(GET)).await;
    assert_eq!((out.response.status, out.from_upstream), (503, true));
    assert_eq!(&out.response.reason[..], b"Busy");
    assert_eq!(body_of(&mut out).await.0, b"busy");

    let proxy = pooled(
        vec![failing.peer(), good.peer()],
        settings(|s| s.next_upstream.http_503 = true),
    );
    let mut out = proxy.forward(call(GET)).await;
    assert_eq!(out.response.status, 200);
    assert_eq!(out.tries.status(), "503, 200");
    assert_eq!(body_of(&mut out).await.0, b"fine");
}

#[tokio::test]
async fn chunked_responses_are_decoded_and_the_connection_kept() {
    let reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: backend\r\nDate: x\r\nX-Accel-Redirect: /in\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-App: yes\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let backend = Backend::start(move |_| Act::Reply(Bytes::from_static(reply.as_bytes()))).await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    for _ in 0..2 {
        let mut out = proxy.forward(call(GET)).await;
        let names: Vec<String> = out
            .response
            .headers
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert_eq!(
            names,
            ["Transfer-Encoding", "Connection", "X-Hop", "X-App"],
            "nginx-hidden fields dropped (hop-by-hop ones are the writer's to drop)"
        );
        assert_eq!(body_of(&mut out).await, (b"hello world".to_vec(), true));
        settle().await;
    }
    assert_eq!(backend.count(), (1, 2));
}

#[tokio::test]
async fn a_one_mib_response_is_streamed_whole() {
    const SIZE: usize = 1024 * 1024;
    let reply = one_mib_reply();
    let backend = Backend::start(move |_| Act::Reply(reply.clone())).await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    let mut out = proxy.forward(call(GET)).await;
    assert!(matches!(out.response.body, ResponseBody::Stream(_)));
    let (body, clean) = body_of(&mut out).await;
    assert!(clean);
    assert_eq!(body.len(), SIZE);
    assert!(body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    settle().await;
    assert_eq!(proxy.pool().map(|p| p.idle_count()), Some(1));
}

#[tokio::test]
async fn a_client_that_goes_away_drops_the_upstream_connection() {
    // Announces 1 MiB, sends 64 KiB, then waits for the proxy to close.
    let mut reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    reply.extend(std::iter::repeat_n(b'x', 64 * 1024));
    let reply = Bytes::from(reply);
    let backend = Backend::start(move |_| Act::ReplyAndHold(reply.clone())).await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    let mut out = proxy.forward(call(GET)).await;
    let ResponseBody::Stream(mut rx) =
        std::mem::replace(&mut out.response.body, ResponseBody::Empty)
    else {
        panic!("a streamed body");
    };
    assert!(matches!(rx.next().await, Some(StreamItem::Data(_))));
    drop(rx); // the client is gone
    for _ in 0..100 {
        if backend.stats.client_closed.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(backend.stats.client_closed.load(Ordering::SeqCst), 1);
    assert_eq!(
        proxy.pool().map(|p| p.idle_count()),
        Some(0),
        "closed, not pooled"
    );
}

#[tokio::test]
async fn interim_1xx_answers_are_skipped_and_head_answers_have_no_body() {
    let reply = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let backend = Backend::start(move |_| Act::Reply(Bytes::from_static(reply.as_bytes()))).await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    let mut out = proxy.forward(call(GET)).await;
    assert_eq!(out.response.status, 200);
    assert_eq!(body_of(&mut out).await, (b"hello".to_vec(), true));

    let head_reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    let backend =
        Backend::start(move |_| Act::Reply(Bytes::from_static(head_reply.as_bytes()))).await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    for _ in 0..2 {
        let mut out = proxy
            .forward(call("HEAD / HTTP/1.1\r\nHost: app\r\n\r\n"))
            .await;
        assert_eq!(
            out.response.headers,
            [(
                Bytes::from_static(b"Content-Length"),
                Bytes::from_static(b"5")
            )]
        );
        assert_eq!(body_of(&mut out).await, (Vec::new(), true));
    }
    assert_eq!(backend.count(), (1, 2), "a HEAD answer ends at its head");
}

#[tokio::test]
async fn an_invalid_head_is_a_502_and_counts_as_invalid_header() {
    let bad = Backend::start(|_| {
        Act::ReplyAndClose(Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        ))
    })
    .await;
    let good = Backend::start(|_| Act::Reply(ok("good"))).await;
    let proxy = pooled(vec![bad.peer(), good.peer()], settings(|_| {}));
    let out = proxy.forward(call(GET)).await;
    assert_eq!(
        (out.response.status, out.tries.status().as_str()),
        (502, "502")
    );
    let proxy = pooled(
        vec![bad.peer(), good.peer()],
        settings(|s| s.next_upstream.invalid_header = true),
    );
    let out = proxy.forward(call(GET)).await;
    assert_eq!(
        (out.response.status, out.tries.status().as_str()),
        (200, "502, 200")
    );
}

#[tokio::test]
async fn dead_peers_are_skipped_then_there_are_no_live_upstreams() {
    let (a, b) = (refused_addr().await, refused_addr().await);
    let proxy = pooled(vec![a.clone(), b.clone()], settings(|_| {}));
    let out = proxy.forward(call(GET)).await;
    assert_eq!(out.response.status, 502);
    assert_eq!(out.tries.addr(), format!("{a}, {b}"));
    assert_eq!(out.tries.status(), "502, 502");
    // Both failed within fail_timeout: nginx answers at once.
    let out = proxy.forward(call(GET)).await;
    assert_eq!(out.response.status, 502);
    assert_eq!(
        (out.tries.addr(), out.tries.status().as_str()),
        ("app", "502")
    );
    assert_eq!(out.tries.response_time(), "0.000");
}

fn one_mib_reply() -> Bytes {
    const SIZE: usize = 1024 * 1024;
    let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").into_bytes();
    reply.extend((0..SIZE).map(|i| (i % 251) as u8));
    Bytes::from(reply)
}

/// Waits up to `limit` for the pool to hold a connection again.
async fn pooled_within(proxy: &HttpProxy, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if proxy.pool().is_some_and(|p| p.idle_count() == 1) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn with_buffering_a_client_that_reads_nothing_does_not_hold_the_upstream() {
    let reply = one_mib_reply();
    let backend = Backend::start(move |_| Act::Reply(reply.clone())).await;
    let proxy = pooled(vec![backend.peer()], settings(|_| {}));
    let mut out = proxy.forward(call(GET)).await;
    // The client has not read a byte: the body went to memory and a file.
    assert!(
        pooled_within(&proxy, Duration::from_millis(900)).await,
        "the upstream connection is back in the pool while the client waits"
    );
    let (body, clean) = body_of(&mut out).await;
    assert!(clean);
    assert_eq!(body.len(), 1024 * 1024);
    assert!(body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
}

#[tokio::test]
async fn without_buffering_the_client_sets_the_pace() {
    let reply = one_mib_reply();
    let backend = Backend::start(move |_| Act::Reply(reply.clone())).await;
    let proxy = pooled(vec![backend.peer()], settings(|s| s.buffering = false));
    let mut out = proxy.forward(call(GET)).await;
    assert!(!pooled_within(&proxy, Duration::from_millis(200)).await);
    let (body, clean) = body_of(&mut out).await;
    assert!(clean && body.len() == 1024 * 1024);
    assert!(pooled_within(&proxy, Duration::from_millis(500)).await);
}

#[tokio::test]
async fn a_pooled_connections_read_timer_counts_from_each_wait_not_the_first() {
    // One connection for the three: the first answer takes 100 ms (the
    // timer is armed then), the second comes at once, the third never
    // within the timeout. Each wait has its own 300 ms.
    let backend = Backend::start(|n| match n {
        0 => Act::Late(Duration::from_millis(100), ok("first")),
        1 => Act::Reply(ok("second")),
        _ => Act::Late(Duration::from_secs(3), ok("late")),
    })
    .await;
    let proxy = pooled(
        vec![backend.peer()],
        settings(|s| s.read_timeout = Duration::from_millis(300)),
    );
    for want in ["first", "second"] {
        let mut out = proxy.forward(call(GET)).await;
        assert_eq!(out.response.status, 200);
        assert_eq!(body_of(&mut out).await.0, want.as_bytes());
        assert!(pooled_within(&proxy, Duration::from_secs(2)).await);
    }
    // Past the first wait's deadline: its timer came due in between.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    let out = proxy.forward(call(GET)).await;
    let took = started.elapsed();
    assert_eq!(out.response.status, 504);
    assert_eq!(backend.count(), (1, 3), "the pooled connection every time");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );
}
