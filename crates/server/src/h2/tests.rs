//! The driver in process: an `h2` client on one end of an in-memory pipe,
//! [`serve_h2`] with a test handler on the other.

use std::sync::Arc;

use bytes::Bytes;
use portico_config::Http2Settings;
use portico_proto::http1::{BodyFraming, Version};
use tokio::sync::watch;

use super::serve_h2;
use crate::conn::ConnContext;
use crate::handler::{
    Handler, HandlerFuture, Request, RequestSource, Response, ResponseBody, ResponseMeta,
};
use crate::listener::ListenerInfo;
use crate::log::{AccessLog, LogConfig};

/// Answers with what it saw: version, target, framing, and the body it read.
struct Echo;

impl Handler for Echo {
    fn handle(&self, mut request: Request) -> HandlerFuture {
        HandlerFuture::new(move || async move {
            let RequestSource::Http(head) = &request.source else {
                return Response::internal_error();
            };
            let seen = format!(
                "{:?} {} {:?} ",
                head.version,
                String::from_utf8_lossy(&head.target),
                head.framing
            );
            let mut body = seen.into_bytes();
            while let Some(piece) = request.body.next().await {
                let Ok(piece) = piece else {
                    return Response::internal_error();
                };
                body.extend_from_slice(&piece);
            }
            Response {
                status: 201,
                reason: Bytes::from_static(b"Created"),
                headers: vec![
                    (Bytes::from_static(b"X-Seen"), Bytes::from_static(b"Yes")),
                    (
                        Bytes::from_static(b"Connection"),
                        Bytes::from_static(b"close"),
                    ),
                ],
                body: ResponseBody::Full(Bytes::from(body)),
                meta: ResponseMeta::default(),
            }
        })
    }
}

fn context() -> Arc<ConnContext> {
    context_with(
        crate::timeouts::Timeouts::HTTP,
        crate::body_spool::SpoolConfig::default(),
    )
}

/// The shared test context (conn_tests.rs) answering with [`Echo`], with
/// HTTP/2 on, no access log, and these timeouts and body limits.
fn context_with(
    timeouts: crate::timeouts::Timeouts,
    spool: crate::body_spool::SpoolConfig,
) -> Arc<ConnContext> {
    let mut ctx = crate::conn::tests::context_for(Arc::new(Echo));
    ctx.log = Arc::new(AccessLog::new(LogConfig {
        enabled: false,
        ..LogConfig::default()
    }));
    ctx.listener = Arc::new(ListenerInfo {
        http2: Some(Http2Settings::default()),
        ..(*ctx.listener).clone()
    });
    ctx.timeouts = timeouts;
    ctx.spool = spool;
    Arc::new(ctx)
}

/// A client on an in-memory pipe to a driver with `ctx` and `settings`.
async fn connect(
    ctx: Arc<ConnContext>,
    settings: Http2Settings,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<()>,
    watch::Sender<bool>,
) {
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    let (stop_tx, stop) = watch::channel(false);
    let server = tokio::spawn(serve_h2(
        server_io,
        crate::conn::Ends::new(None, None, None),
        ctx,
        stop,
        settings,
    ));
    let Ok((client, conn)) = h2::client::handshake(client_io).await else {
        panic!("handshake");
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    (client, server, stop_tx)
}

fn post(path: &str) -> http::Request<()> {
    let Ok(req) = http::Request::post(format!("http://h{path}")).body(()) else {
        panic!("request");
    };
    req
}

/// How long a test waits for an answer or for the driver to end.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// GET `path` (no body): the answer, which must come within [`WAIT`].
async fn get(
    client: &mut h2::client::SendRequest<Bytes>,
    path: &str,
) -> http::Response<h2::RecvStream> {
    let Ok(req) = http::Request::get(format!("http://h{path}")).body(()) else {
        panic!("request");
    };
    let Ok((answer, _)) = client.send_request(req, true) else {
        panic!("send {path}");
    };
    let Ok(Ok(answer)) = tokio::time::timeout(WAIT, answer).await else {
        panic!("GET {path} must be answered");
    };
    answer
}

#[tokio::test]
async fn a_stream_reaches_the_handler_as_an_http2_request_with_its_body() {
    let (mut client, server, _stop) = connect(context(), Http2Settings::default()).await;
    let Ok((answer, mut send)) = client.send_request(post("/p?q=1"), false) else {
        panic!("send");
    };
    let big = vec![b'z'; 200_000];
    send.reserve_capacity(big.len());
    let mut left = Bytes::from(big.clone());
    while !left.is_empty() {
        let Some(Ok(cap)) = std::future::poll_fn(|cx| send.poll_capacity(cx)).await else {
            panic!("capacity");
        };
        let piece = left.split_to(cap.min(left.len()));
        assert!(send.send_data(piece, false).is_ok());
    }
    assert!(send.send_data(Bytes::new(), true).is_ok());
    let Ok(answer) = answer.await else {
        panic!("answer");
    };
    assert_eq!(answer.status(), 201);
    assert_eq!(
        answer.headers().get("x-seen").map(|v| v.as_bytes()),
        Some(&b"Yes"[..])
    );
    assert!(answer.headers().get("connection").is_none());
    let mut body = answer.into_body();
    let mut got = Vec::new();
    while let Some(Ok(piece)) = body.data().await {
        let _ = body.flow_control().release_capacity(piece.len());
        got.extend_from_slice(&piece);
    }
    let prefix = format!("{:?} /p?q=1 {:?} ", Version::Http2, BodyFraming::Chunked);
    assert!(
        got.starts_with(prefix.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&got[..60])
    );
    assert_eq!(&got[prefix.len()..], &big[..]);
    drop(client);
    server.abort();
}

#[tokio::test]
async fn a_stop_sends_goaway_and_the_connection_ends() {
    let (client, server, stop_tx) = connect(context(), Http2Settings::default()).await;
    assert!(stop_tx.send(true).is_ok());
    let ended = tokio::time::timeout(WAIT, server).await;
    assert!(ended.is_ok(), "the driver did not end after the stop");
    drop(client);
}

#[tokio::test]
async fn a_stalled_body_is_reset_after_the_body_timeout_before_any_handler_runs() {
    let timeouts = crate::timeouts::Timeouts {
        body: std::time::Duration::from_millis(100),
        ..crate::timeouts::Timeouts::HTTP
    };
    let ctx = context_with(timeouts, crate::body_spool::SpoolConfig::default());
    let (mut client, server, _stop) = connect(ctx, Http2Settings::default()).await;
    let Ok((answer, mut send)) = client.send_request(post("/stall"), false) else {
        panic!("send");
    };
    assert!(send.send_data(Bytes::from_static(b"ab"), false).is_ok());
    let started = tokio::time::Instant::now();
    let got = tokio::time::timeout(WAIT, answer).await;
    let Ok(Err(e)) = got else {
        panic!("the stalled stream must be reset, got {got:?}");
    };
    assert_eq!(e.reason(), Some(h2::Reason::PROTOCOL_ERROR), "{e}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(100));
    // The connection is still good for another request.
    assert_eq!(get(&mut client, "/next").await.status(), 201);
    server.abort();
}

#[tokio::test]
async fn a_body_growing_past_the_largest_size_gets_413() {
    let spool = crate::body_spool::SpoolConfig {
        max: 1000,
        ..crate::body_spool::SpoolConfig::default()
    };
    let ctx = context_with(crate::timeouts::Timeouts::HTTP, spool);
    let (mut client, server, _stop) = connect(ctx, Http2Settings::default()).await;
    let Ok((answer, mut send)) = client.send_request(post("/big"), false) else {
        panic!("send");
    };
    assert!(send.send_data(Bytes::from(vec![b'x'; 3000]), false).is_ok());
    let got = tokio::time::timeout(WAIT, answer).await;
    let Ok(Ok(answer)) = got else {
        panic!("a 413 answer, got {got:?}");
    };
    assert_eq!(answer.status(), 413);
    server.abort();
}

#[tokio::test]
async fn after_keepalive_requests_streams_the_connection_says_goaway_and_ends() {
    let settings = Http2Settings {
        max_requests: Some(2),
        ..Http2Settings::default()
    };
    let (mut client, server, _stop) = connect(context(), settings).await;
    for n in 0..2 {
        assert_eq!(get(&mut client, &format!("/{n}")).await.status(), 201);
    }
    let ended = tokio::time::timeout(WAIT, server).await;
    assert!(
        ended.is_ok(),
        "the driver did not end after keepalive_requests streams"
    );
}
