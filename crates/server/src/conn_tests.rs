//! Tests of conn.rs that need a whole connection context: the size of a
//! connection's future (what every open connection costs before any
//! request) and the idle buffers.

use super::*;
use crate::handler::NotFound;
use crate::listener::{ListenAddress, ListenerInfo};
use crate::log::LogConfig;

fn context() -> ConnContext {
    context_for(Arc::new(NotFound))
}

/// A connection context for tests, answering with `handler`.
pub(crate) fn context_for(handler: Arc<dyn Handler>) -> ConnContext {
    ConnContext {
        handler,
        log: Arc::new(AccessLog::new(LogConfig::default())),
        listener: Arc::new(ListenerInfo {
            addr: ListenAddress::Unix("test.sock".into()),
            wire: Wire::Http,
            scheme: "http",
            spec: "test".to_string(),
            buffer_size: 4096,
            http2: None,
            tls: None,
        }),
        limits: HeadLimits::default(),
        hooks: None,
        limit_post: 0,
        retire: Arc::new(tokio::sync::Notify::new()),
        handoff: crate::handoff::Handoff::new(),
        gate: None,
        nginx_pages: false,
        timeouts: Timeouts::HTTP,
        shutdown: crate::worker_conns::never_stopping(),
        spool: SpoolConfig::default(),
        open: crate::worker_conns::OpenConnections::new(0),
    }
}

/// The largest a connection's future may be: it is allocated for every
/// open connection, idle ones included (issue 16's goal is 1 KiB per idle
/// connection, all costs together). An idle connection holds no timer (the
/// worker's idle queue times it out), so this is the same in the binary, in
/// `cargo test --workspace` (where portico-proxy turns on tokio's
/// `rt-multi-thread`, which grows a timer) and in `-p portico-server`.
const MAX_CONNECTION_FUTURE: usize = 216;

#[tokio::test]
async fn a_connection_future_stays_small_because_requests_are_boxed() {
    let (mut a, _b) = tokio::net::UnixStream::pair().expect("a socket pair");
    let ctx = Arc::new(context());
    let (mut reader, mut writer) = a.split();
    let ends = Ends::new(None, None, None);
    let mut rbuf = BytesMut::new();
    let http = serve_connection(&mut reader, &mut writer, &ends, &ctx, &mut rbuf);
    let http_size = std::mem::size_of_val(&http);
    drop(http);
    let uwsgi = crate::uwsgi_conn::serve_uwsgi_connection(
        &mut reader,
        &mut writer,
        None,
        None,
        &ctx,
        BytesMut::new(),
    );
    let uwsgi_size = std::mem::size_of_val(&uwsgi);
    drop(uwsgi);
    println!("connection futures: HTTP {http_size} bytes, uwsgi {uwsgi_size} bytes");
    assert!(http_size <= MAX_CONNECTION_FUTURE, "HTTP: {http_size}");
    assert!(uwsgi_size <= MAX_CONNECTION_FUTURE, "uwsgi: {uwsgi_size}");
}

#[tokio::test]
async fn an_idle_read_allocates_its_buffer_only_when_bytes_arrive() {
    use tokio::io::AsyncWriteExt;
    let (mut a, mut b) = tokio::net::UnixStream::pair().expect("a socket pair");
    let mut rbuf = BytesMut::new();
    assert!(b.write_all(b"GET / HTTP/1.1\r\n").await.is_ok());
    let Ok(n) = read_some(&mut a, &mut rbuf).await else {
        panic!("read failed")
    };
    assert_eq!(n, 16);
    assert_eq!(&rbuf[..], b"GET / HTTP/1.1\r\n");
    assert!(rbuf.capacity() >= READ_BUFFER);
}

#[test]
fn peer_text_shows_the_address_as_display_does() {
    let cases = [
        "1.2.3.4:5",
        "0.0.0.0:1",
        "255.255.255.255:80",
        "10.0.120.9:9",
        "[::1]:8",
    ];
    for case in cases {
        let Ok(addr) = case.parse::<SocketAddr>() else {
            panic!("bad test address {case}");
        };
        assert_eq!(peer_text(Some(addr)), addr.ip().to_string());
    }
    assert_eq!(peer_text(None), "");
}
