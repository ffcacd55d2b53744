//! The uwsgi upstream client against a tiny fake uwsgi server on a tokio
//! TCP or unix listener: the exact packet bytes it receives, and what the
//! client makes of normal, CGI-style, slow, refused and cut-off answers.

// Test code: a failed expect is a failed test (clippy.toml exempts #[test] fns only).
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portico_config::site::{NextUpstream, UpstreamTarget};
use portico_proto::uwsgi::{UwsgiPacket, encode_packet};
use portico_proxy::{PeerAddr, UpstreamGroup, UwsgiSettings, UwsgiUpstream};
use portico_server::{
    Handler, Handoff, ListenAddress, ListenerInfo, Request, RequestBody, RequestSource, Response,
    ResponseBody, StreamItem, Wire,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

/// What the fake server does once it has read the request.
#[derive(Clone)]
enum Reply {
    /// Write these bytes, then close.
    Send(&'static [u8]),
    /// Wait, then write, then close.
    Late(Duration, &'static [u8]),
    /// Write, then keep the connection open until the client closes it;
    /// the handle's result then says whether it saw that close.
    SendAndHold(&'static [u8]),
}

/// What the fake server saw.
struct Seen {
    /// The packet and body bytes, exactly as received.
    request: Vec<u8>,
    /// For `SendAndHold`: the client closed the connection.
    client_closed: bool,
}

const VARS: &[(&[u8], &[u8])] = &[
    (b"REQUEST_METHOD", b"POST"),
    (b"REQUEST_URI", b"/form?x=1"),
    (b"PATH_INFO", b"/form"),
    (b"QUERY_STRING", b"x=1"),
    (b"CONTENT_TYPE", b"text/plain"),
    (b"CONTENT_LENGTH", b"4"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"SERVER_NAME", b"example.com"),
    (b"HTTP_HOST", b"example.com"),
];

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, reply: Reply) -> Seen {
    let mut request = Vec::new();
    // Header, vars, then CONTENT_LENGTH bytes of body.
    let mut header = [0u8; 4];
    s.read_exact(&mut header).await.expect("packet header");
    let size = usize::from(u16::from_le_bytes([header[1], header[2]]));
    let mut vars = vec![0u8; size];
    s.read_exact(&mut vars).await.expect("vars");
    request.extend_from_slice(&header);
    request.extend_from_slice(&vars);
    let mut buf = bytes::BytesMut::from(&request[..]);
    let packet = portico_proto::uwsgi::parse_packet(&mut buf, 65535)
        .expect("a valid packet")
        .expect("complete");
    let mut body = vec![0u8; packet.content_length().unwrap_or(0) as usize];
    s.read_exact(&mut body).await.expect("body");
    request.extend_from_slice(&body);
    let mut client_closed = false;
    match reply {
        Reply::Send(bytes) => {
            let _ = s.write_all(bytes).await;
        }
        Reply::Late(wait, bytes) => {
            tokio::time::sleep(wait).await;
            let _ = s.write_all(bytes).await;
        }
        Reply::SendAndHold(bytes) => {
            let _ = s.write_all(bytes).await;
            let mut rest = [0u8; 16];
            let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest)).await;
            client_closed = matches!(read, Ok(Ok(0)) | Ok(Err(_)));
        }
    }
    Seen {
        request,
        client_closed,
    }
}

async fn fake_tcp(reply: Reply) -> (UpstreamTarget, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        serve_one(s, reply).await
    });
    let target = UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    (target, task)
}

fn temp_socket_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("portico-proxy-{}-{tag}.sock", std::process::id()))
}

fn request(vars: &[(&[u8], &[u8])], body: &'static [u8]) -> Request {
    let packet = UwsgiPacket::from_vars(
        0,
        0,
        vars.iter()
            .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)))
            .collect(),
        vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum(),
    );
    let listener = ListenerInfo {
        addr: ListenAddress::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080))),
        wire: Wire::Http,
        scheme: "http",
        spec: "test".into(),
        buffer_size: 4096,
        http2: None,
        tls: None,
    };
    Request {
        source: RequestSource::Uwsgi(packet),
        peer: None,
        local: None,
        listener: Arc::new(listener),
        body: RequestBody::complete(Bytes::from_static(body)),
        handoff: Arc::new(Handoff::default()),
        tls: None,
    }
}

fn settings() -> UwsgiSettings {
    UwsgiSettings {
        connect_timeout: Duration::from_secs(2),
        send_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        ..UwsgiSettings::default()
    }
}

async fn call(target: UpstreamTarget, settings: UwsgiSettings, req: Request) -> Response {
    let upstream = UwsgiUpstream::new(target, settings).expect("a single peer");
    upstream.handle(req).await
}

/// How a body ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    End,
    Abort,
    /// The channel closed with neither.
    Dropped,
}

async fn body_of(response: Response) -> (Vec<u8>, Ending) {
    match response.body {
        ResponseBody::Empty => (Vec::new(), Ending::End),
        ResponseBody::Full(b) => (b.to_vec(), Ending::End),
        ResponseBody::Stream(mut rx) => {
            let mut out = Vec::new();
            while let Some(item) = rx.next().await {
                match item {
                    StreamItem::Data(d) => out.extend_from_slice(&d),
                    StreamItem::End => return (out, Ending::End),
                    StreamItem::Abort => return (out, Ending::Abort),
                    StreamItem::File { .. } => panic!("no files from an upstream"),
                }
            }
            (out, Ending::Dropped)
        }
        ResponseBody::File { .. } => panic!("no files from an upstream"),
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a [u8]> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_ref())
}

fn page(status: &str) -> String {
    format!(
        "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n<center><h1>{status}</h1></center>\r\n\
         <hr><center>portico</center>\r\n</body>\r\n</html>\r\n"
    )
}

#[tokio::test]
async fn the_upstream_receives_the_exact_packet_then_the_body() {
    let (target, seen) = fake_tcp(Reply::Send(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello",
    ))
    .await;
    let s = UwsgiSettings {
        modifier1: 30,
        ..settings()
    };
    let response = call(target, s, request(VARS, b"abcd")).await;
    let mut want = encode_packet(30, 0, VARS);
    want.extend_from_slice(b"abcd");
    assert_eq!(seen.await.expect("fake").request, want);
    assert_eq!((response.status, &response.reason[..]), (200, &b"OK"[..]));
    assert_eq!(header(&response, "content-type"), Some(&b"text/plain"[..]));
    assert_eq!(
        header(&response, "connection"),
        Some(&b"close"[..]),
        "hop-by-hop fields are the server writer's to drop"
    );
    assert_eq!(body_of(response).await, (b"hello".to_vec(), Ending::End));
}

#[tokio::test]
async fn a_cgi_style_answer_takes_its_status_from_the_status_header() {
    let (target, seen) = fake_tcp(Reply::Send(b"Status: 404 Not Here\r\nX-A: 1\r\n\r\nnope")).await;
    let response = call(target, settings(), request(VARS, b"abcd")).await;
    seen.await.expect("fake");
    assert_eq!(
        (response.status, &response.reason[..]),
        (404, &b"Not Here"[..])
    );
    assert_eq!(header(&response, "x-a"), Some(&b"1"[..]));
    assert_eq!(body_of(response).await, (b"nope".to_vec(), Ending::End));
}

#[tokio::test]
async fn a_body_that_came_with_the_head_needs_no_stream() {
    let (target, seen) = fake_tcp(Reply::Send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    ))
    .await;
    let response = call(target, settings(), request(VARS, b"abcd")).await;
    seen.await.expect("fake");
    assert_eq!(header(&response, "content-length"), Some(&b"5"[..]));
    assert!(matches!(&response.body, ResponseBody::Full(b) if b.as_ref() == b"hello"));
}

#[tokio::test]
async fn a_head_answer_keeps_its_length_unknown_when_the_upstream_gives_none() {
    let head: Vec<(&[u8], &[u8])> = VARS
        .iter()
        .map(|&(k, v)| {
            if k == b"REQUEST_METHOD" {
                (k, &b"HEAD"[..])
            } else {
                (k, v)
            }
        })
        .collect();
    // no length: a body of unknown length (no `Content-Length: 0` is made up)
    let (target, seen) = fake_tcp(Reply::Send(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n")).await;
    let response = call(target, settings(), request(&head, b"abcd")).await;
    seen.await.expect("fake");
    assert!(matches!(response.body, ResponseBody::Stream(_)));
    assert_eq!(body_of(response).await.0, b"");
    // the upstream's length is passed on, with no body
    let (target, seen) =
        fake_tcp(Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")).await;
    let response = call(target, settings(), request(&head, b"abcd")).await;
    seen.await.expect("fake");
    assert_eq!(header(&response, "content-length"), Some(&b"9"[..]));
    assert!(matches!(response.body, ResponseBody::Empty));
}

#[tokio::test]
async fn a_chunked_body_is_decoded() {
    let (target, seen) = fake_tcp(Reply::Send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n3\r\n!!!\r\n0\r\n\r\n",
    ))
    .await;
    let response = call(target, settings(), request(VARS, b"abcd")).await;
    seen.await.expect("fake");
    // The field stays for the writer to drop; the body is decoded here.
    assert_eq!(
        header(&response, "transfer-encoding"),
        Some(&b"chunked"[..])
    );
    assert_eq!(body_of(response).await, (b"body!!!".to_vec(), Ending::End));
}

#[tokio::test]
async fn a_body_cut_short_of_its_length_ends_in_abort() {
    let (target, seen) = fake_tcp(Reply::Send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nbody",
    ))
    .await;
    let response = call(target, settings(), request(VARS, b"abcd")).await;
    seen.await.expect("fake");
    assert_eq!(response.status, 200);
    assert_eq!(body_of(response).await, (b"body".to_vec(), Ending::Abort));
}

#[tokio::test]
async fn a_slow_upstream_is_a_504() {
    let (target, _seen) = fake_tcp(Reply::Late(
        Duration::from_secs(3),
        b"HTTP/1.1 200 OK\r\n\r\nlate",
    ))
    .await;
    let s = UwsgiSettings {
        read_timeout: Duration::from_millis(200),
        ..settings()
    };
    let response = call(target, s, request(VARS, b"abcd")).await;
    assert_eq!(
        (response.status, &response.reason[..]),
        (504, &b"Gateway Time-out"[..])
    );
    assert_eq!(header(&response, "content-type"), Some(&b"text/html"[..]));
    let (body, _) = body_of(response).await;
    assert_eq!(String::from_utf8_lossy(&body), page("504 Gateway Time-out"));
}

#[tokio::test]
async fn a_refused_connection_is_a_502_with_nginx_page() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let target = UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    let response = call(target, settings(), request(VARS, b"abcd")).await;
    assert_eq!(
        (response.status, &response.reason[..]),
        (502, &b"Bad Gateway"[..])
    );
    let (body, _) = body_of(response).await;
    assert_eq!(String::from_utf8_lossy(&body), page("502 Bad Gateway"));
}

#[tokio::test]
async fn an_upstream_that_closes_before_the_head_is_a_502() {
    for reply in [&b""[..], b"HTTP/1.1 200 OK\r\nX-A: 1\r\n"] {
        let (target, seen) = fake_tcp(Reply::Send(reply)).await;
        let response = call(target, settings(), request(VARS, b"abcd")).await;
        seen.await.expect("fake");
        assert_eq!(response.status, 502, "{reply:?}");
    }
}

#[tokio::test]
async fn a_head_too_big_for_the_buffer_is_a_502() {
    static BIG: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let mut v = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        v.resize(5000, b'a');
        v.extend_from_slice(b"\r\n\r\n");
        v
    });
    let (target, _seen) = fake_tcp(Reply::Send(BIG.as_slice())).await;
    let response = call(target, settings(), request(VARS, b"abcd")).await;
    assert_eq!(response.status, 502);
}

#[tokio::test]
async fn an_invalid_header_is_a_502() {
    let (target, seen) = fake_tcp(Reply::Send(b"HTTP/1.1 200 OK\r\nX A: 1\r\n\r\nbody")).await;
    let response = call(target, settings(), request(VARS, b"abcd")).await;
    seen.await.expect("fake");
    assert_eq!(response.status, 502);
}

#[tokio::test]
async fn vars_over_64k_are_a_500_without_connecting() {
    let big = vec![b'a'; 65_000];
    let big: &'static [u8] = Box::leak(big.into_boxed_slice());
    let vars: Vec<(&[u8], &[u8])> = vec![(b"HTTP_X_BIG", big), (b"HTTP_X_MORE", &big[..1000])];
    // Nothing listens on port 1: had it connected, the answer would be a 502.
    let target = UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port: 1,
    };
    let response = call(target, settings(), request(&vars, b"")).await;
    assert_eq!(response.status, 500);
}

#[tokio::test]
async fn a_unix_socket_upstream_works() {
    let path = temp_socket_path("unix");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind unix");
    let seen = tokio::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        serve_one(s, Reply::Send(b"HTTP/1.0 201 Created\r\n\r\nmade")).await
    });
    let response = call(
        UpstreamTarget::Unix(path.clone()),
        settings(),
        request(VARS, b"abcd"),
    )
    .await;
    let mut want = encode_packet(0, 0, VARS);
    want.extend_from_slice(b"abcd");
    assert_eq!(seen.await.expect("fake").request, want);
    assert_eq!(response.status, 201);
    assert_eq!(body_of(response).await, (b"made".to_vec(), Ending::End));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_missing_unix_socket_is_a_502() {
    let path = temp_socket_path("missing");
    let _ = std::fs::remove_file(&path);
    let response = call(
        UpstreamTarget::Unix(path),
        settings(),
        request(VARS, b"abcd"),
    )
    .await;
    assert_eq!(response.status, 502);
}

#[tokio::test]
async fn when_the_client_goes_away_the_upstream_connection_is_dropped() {
    let (target, seen) = fake_tcp(Reply::SendAndHold(b"HTTP/1.1 200 OK\r\n\r\nfirst piece")).await;
    let response = call(target, settings(), request(VARS, b"abcd")).await;
    let ResponseBody::Stream(mut rx) = response.body else {
        panic!("a streamed body");
    };
    assert!(matches!(rx.next().await, Some(StreamItem::Data(_))));
    drop(rx);
    assert!(seen.await.expect("fake").client_closed);
}

#[tokio::test]
async fn a_stalled_body_times_out_and_aborts() {
    let (target, _seen) = fake_tcp(Reply::SendAndHold(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart",
    ))
    .await;
    let s = UwsgiSettings {
        read_timeout: Duration::from_millis(200),
        ..settings()
    };
    let response = call(target, s, request(VARS, b"abcd")).await;
    assert_eq!(body_of(response).await, (b"part".to_vec(), Ending::Abort));
}

#[tokio::test]
async fn a_group_target_is_refused_at_construction() {
    let err = UwsgiUpstream::new(UpstreamTarget::Group("app".into()), settings()).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some("upstream group \"app\" needs a balancer; a single-peer client cannot use it".into())
    );
}

#[tokio::test]
async fn a_head_request_gets_no_body() {
    let vars: &[(&[u8], &[u8])] = &[(b"REQUEST_METHOD", b"HEAD")];
    let (target, seen) =
        fake_tcp(Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")).await;
    let response = call(target, settings(), request(vars, b"")).await;
    seen.await.expect("fake");
    assert_eq!(header(&response, "content-length"), Some(&b"5"[..]));
    assert!(matches!(response.body, ResponseBody::Empty));
}

/// A fake that answers every connection with `body` (as a 200), until dropped.
async fn fake_peer(body: &'static [u8]) -> (PeerAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reply: &'static [u8] = match body {
        b"a" => b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb",
    };
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve_one(s, Reply::Send(reply)));
        }
    });
    (PeerAddr::Tcp(addr), task)
}

/// An address nothing listens on (bound, then closed: connect is refused).
async fn dead_peer() -> PeerAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    PeerAddr::Tcp(listener.local_addr().expect("addr"))
}

async fn bodies(upstream: &UwsgiUpstream, n: usize) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let response = upstream.handle(request(VARS, b"abcd")).await;
        let status = response.status;
        out.push((status, body_of(response).await.0));
    }
    out
}

#[tokio::test]
async fn a_group_is_balanced_round_robin() {
    let (a, _ta) = fake_peer(b"a").await;
    let (b, _tb) = fake_peer(b"b").await;
    let group = UpstreamGroup::implicit("app", vec![a, b]);
    let upstream = UwsgiUpstream::group(Arc::new(group), settings());
    let got: Vec<Vec<u8>> = bodies(&upstream, 4)
        .await
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(got, [b"a", b"b", b"a", b"b"]);
}

#[tokio::test]
async fn a_down_peer_fails_over_and_is_then_skipped() {
    let dead = dead_peer().await;
    let (b, _tb) = fake_peer(b"b").await;
    let group = UpstreamGroup::implicit("app", vec![dead, b]);
    let upstream = UwsgiUpstream::group(Arc::new(group), settings());
    // The POST was never sent to the dead peer: `error` sends it on.
    let got = bodies(&upstream, 3).await;
    assert_eq!(got, vec![(200, b"b".to_vec()); 3]);
    let stats = upstream
        .upstream_group()
        .snapshot(std::time::Instant::now());
    assert_eq!(
        (stats[0].requests, stats[0].failures),
        (1, 1),
        "max_fails=1: picked once, failed, then skipped"
    );
    assert_eq!(stats[1].requests, 3);
}

#[tokio::test]
async fn next_upstream_off_and_tries_stop_the_failover() {
    let group = |peers| Arc::new(UpstreamGroup::implicit("app", peers));
    let off = UwsgiSettings {
        next_upstream: NextUpstream::OFF,
        ..settings()
    };
    let (b, _tb) = fake_peer(b"b").await;
    let upstream = UwsgiUpstream::group(group(vec![dead_peer().await, b.clone()]), off);
    assert_eq!(bodies(&upstream, 1).await[0].0, 502);
    let one_try = UwsgiSettings {
        next_upstream_tries: 1,
        ..settings()
    };
    let upstream = UwsgiUpstream::group(group(vec![dead_peer().await, b]), one_try);
    assert_eq!(bodies(&upstream, 1).await[0].0, 502);
    let all_dead = group(vec![dead_peer().await, dead_peer().await]);
    let upstream = UwsgiUpstream::group(all_dead, settings());
    assert_eq!(bodies(&upstream, 1).await[0].0, 502);
}
