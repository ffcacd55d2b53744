//! A tiny tokio HTTP/1.1 backend for the HTTP upstream tests: it parses
//! requests with Portico's own parser, records them raw, counts connections
//! and requests, and answers as each test tells it ([`Act`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{
    BodyFraming, ChunkedDecoder, ChunkedStep, HeadLimits, parse_request_head,
};
use portico_proxy::PeerAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a backend does with a request it has read.
#[derive(Clone)]
pub(crate) enum Act {
    /// Write these bytes and keep the connection for the next request.
    Reply(Bytes),
    /// Write these bytes, then close.
    ReplyAndClose(Bytes),
    /// Wait, then reply (keep-alive).
    Late(Duration, Bytes),
    /// Close without answering.
    Close,
    /// Write these bytes, then wait for the client to close (recorded).
    ReplyAndHold(Bytes),
}

#[derive(Default)]
pub(crate) struct Stats {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    /// Request heads and bodies, as received.
    pub seen: Mutex<Vec<Vec<u8>>>,
    /// A held connection saw the client close it.
    pub client_closed: AtomicUsize,
}

pub(crate) struct Backend {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

impl Backend {
    pub(crate) async fn start(act: impl Fn(usize) -> Act + Send + Sync + 'static) -> Backend {
        Backend::start_at("127.0.0.1:0", act).await
    }

    /// On a given address (a peer that comes back on its old port).
    pub(crate) async fn start_at(
        addr: &str,
        act: impl Fn(usize) -> Act + Send + Sync + 'static,
    ) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stats = Arc::new(Stats::default());
        let act = Arc::new(act);
        let s = stats.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(conn, s.clone(), act.clone()));
            }
        });
        Backend { addr, stats }
    }

    pub(crate) fn peer(&self) -> PeerAddr {
        PeerAddr::Tcp(self.addr)
    }

    pub(crate) fn count(&self) -> (usize, usize) {
        (
            self.stats.connections.load(Ordering::SeqCst),
            self.stats.requests.load(Ordering::SeqCst),
        )
    }
}

async fn serve(
    mut conn: TcpStream,
    stats: Arc<Stats>,
    act: Arc<dyn Fn(usize) -> Act + Send + Sync>,
) {
    let mut buf = BytesMut::new();
    loop {
        let Some(raw) = read_request(&mut conn, &mut buf).await else {
            return;
        };
        let n = stats.requests.fetch_add(1, Ordering::SeqCst);
        stats.seen.lock().expect("lock").push(raw);
        match act(n) {
            Act::Reply(bytes) => {
                if conn.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Act::ReplyAndClose(bytes) => {
                let _ = conn.write_all(&bytes).await;
                return;
            }
            Act::Late(wait, bytes) => {
                tokio::time::sleep(wait).await;
                if conn.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Act::Close => return,
            Act::ReplyAndHold(bytes) => {
                let _ = conn.write_all(&bytes).await;
                let mut rest = [0u8; 64];
                let closed = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut rest))
                    .await
                    .is_ok_and(|r| matches!(r, Ok(0) | Err(_)));
                if closed {
                    stats.client_closed.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        }
    }
}

/// One request (head and decoded body bytes appended raw), or `None` at EOF.
async fn read_request(conn: &mut TcpStream, buf: &mut BytesMut) -> Option<Vec<u8>> {
    let head = loop {
        if let Ok(Some(head)) = parse_request_head(buf, &HeadLimits::default()) {
            break head;
        }
        if conn.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    };
    let mut raw = Vec::new();
    raw.extend_from_slice(&head.method);
    raw.push(b' ');
    raw.extend_from_slice(&head.target);
    raw.push(b' ');
    raw.extend_from_slice(head.version.as_bytes());
    raw.extend_from_slice(b"\r\n");
    for h in &head.headers {
        raw.extend_from_slice(h.name);
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(h.value);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    match head.framing {
        BodyFraming::None => {}
        BodyFraming::Length(n) => {
            while (buf.len() as u64) < n {
                if conn.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            }
            raw.extend_from_slice(&buf.split_to(n as usize));
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            loop {
                match decoder.decode(buf).ok()? {
                    ChunkedStep::Data(d) => raw.extend_from_slice(&d),
                    ChunkedStep::Done => break,
                    ChunkedStep::NeedMore => {
                        if conn.read_buf(buf).await.ok()? == 0 {
                            return None;
                        }
                    }
                }
            }
        }
    }
    Some(raw)
}
