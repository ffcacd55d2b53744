//! The HTTP/1.x upstream client: one attempt at one peer. Take an idle
//! pooled connection or connect (TCP with TCP_NODELAY, or unix, within
//! `proxy_connect_timeout`), send the request head and body (each write
//! within `proxy_send_timeout`), read the response head (each read within
//! `proxy_read_timeout`; interim 1xx answers skipped), and turn it into the
//! client's [`Response`] with the body pulled from the connection by the
//! client's writer (`pump.rs`).
//!
//! A connection returns to the pool only after a response read to its end
//! cleanly, on an HTTP/1.1 exchange that both sides let persist. A pooled
//! connection that fails before any byte of the response arrived was stale:
//! the request goes once more on a fresh connection to the same peer, as
//! nginx does, and that is not a failure of the peer.
//!
//! With `proxy_buffering on` the body is read ahead of a slow client
//! (`spool.rs`: memory, then a temporary file), so the connection is back in
//! the pool as soon as the upstream is done.
//!
//! Not here: choosing peers and retrying on another one (`proxy.rs`),
//! rewriting the request (the site engine).

mod pool;
mod request;
mod response;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use portico_proto::http1::{
    ChunkedDecoder, ResponseFraming, ResponseHead, ResponseLimits, parse_response_head,
};
use portico_server::{Response, ResponseBody, ResponseMeta};
use tokio::io::AsyncReadExt;

pub use pool::{
    ConnPool, DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE, DEFAULT_MAX_AGE, DEFAULT_MAX_REQUESTS,
    PoolSettings, PooledConn,
};
pub(crate) use request::Outgoing;
pub use response::{DEFAULT_HIDDEN, HeaderFilter};

use crate::error::{ErrorKind, Phase, ProxyError};
use crate::io::{client_body_error, send, within, within_kept};
use crate::log::LogContext;
use crate::pump::{self, BodyReader, Buffered, Framing, READ_CHUNK, Unbuffered};
use crate::spool::Spool;
use crate::target::PeerAddr;
use request::{BodyPlan, LAST_CHUNK, chunk};

/// Buffered request bodies up to this size go out in the head's write.
const COALESCE_BODY: usize = 64 * 1024;

/// The timeouts and sizes of one attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerSettings {
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub read_timeout: Duration,
    /// `proxy_buffer_size`: the largest response head.
    pub buffer_size: usize,
    /// `proxy_buffering`: read the body ahead of the client, in memory up
    /// to `proxy_buffers` (`memory_ahead` bytes), then in a temporary file
    /// up to `proxy_max_temp_file_size` (`file_ahead`).
    pub buffering: bool,
    pub memory_ahead: usize,
    pub file_ahead: u64,
}

/// A response head from a peer, its connection still open for the body.
pub(crate) struct Answer {
    pub head: ResponseHead,
    /// Body bytes that came with the head.
    buf: BytesMut,
    conn: PooledConn,
    /// Both sides let the connection persist after this exchange.
    reusable: bool,
}

/// A failed exchange; `stale`: it may be a dead pooled connection.
struct Failed {
    error: ProxyError,
    stale: bool,
}

/// One attempt at `peer`: a pooled connection (and once more on a fresh one
/// if that was stale and `stale_retry` allows it: nginx does not resend a
/// POST/LOCK/PATCH without `non_idempotent`), else a new one. `now`: the
/// clock as the try starts.
pub(crate) async fn attempt(
    peer: &PeerAddr,
    pool: Option<&ConnPool>,
    out: &mut Outgoing,
    s: &PeerSettings,
    stale_retry: bool,
    now: Instant,
) -> Result<Answer, ProxyError> {
    if let Some(conn) = pool.and_then(|p| p.take(peer, now)) {
        match exchange(conn, out, s, true, 0).await {
            Err(f) if f.stale && stale_retry && !out.body_streamed() => {}
            result => return result.map_err(|f| f.error),
        }
    }
    // A request without a body goes in the connect's wake (one write).
    let first = match &out.body {
        BodyPlan::Buffered(pieces) if pieces.is_empty() => &out.head[..],
        _ => &[],
    };
    let (stream, sent) = peer.connect_sending(s.connect_timeout, first).await?;
    let conn = PooledConn {
        stream,
        requests: 0,
        born: now,
        // Its first read's room made at once (not grown from empty).
        buf: BytesMut::with_capacity(READ_CHUNK),
        nodelay: false,
        timer: Default::default(),
    };
    exchange(conn, out, s, false, sent)
        .await
        .map_err(|f| f.error)
}

/// `sent`: bytes of the head already written (by the connect).
async fn exchange(
    mut conn: PooledConn,
    out: &mut Outgoing,
    s: &PeerSettings,
    reused: bool,
    sent: usize,
) -> Result<Answer, Failed> {
    let fail = |error: ProxyError, got_response: bool| Failed {
        stale: reused
            && !got_response
            && matches!(
                error.kind(),
                ErrorKind::Send | ErrorKind::Read | ErrorKind::ClosedEarly
            ),
        error,
    };
    send_request(&mut conn, out, s, sent)
        .await
        .map_err(|e| fail(e, false))?;
    conn.requests += 1;
    let limits = ResponseLimits {
        max_head: s.buffer_size,
        ..ResponseLimits::default()
    };
    // The connection's buffer of its last answer, when that answer is gone
    // (no allocation then), else a new one.
    let mut buf = std::mem::take(&mut conn.buf);
    buf.clear();
    buf.reserve(READ_CHUNK);
    let mut got_response = false;
    loop {
        let head = read_head(
            &mut conn,
            &mut buf,
            &limits,
            out.head_request,
            s.read_timeout,
            out.keep_alive,
        )
        .await
        .map_err(|e| fail(e, got_response || !buf.is_empty()))?;
        got_response = true;
        match head.status {
            101 => {
                return Err(fail(
                    ProxyError::new(
                        ErrorKind::InvalidHeader,
                        Phase::ReadingHeader,
                        "upstream sent \"101 Switching Protocols\" to a request without Upgrade",
                    ),
                    true,
                ));
            }
            // 100 Continue, 102, 103 Early Hints: interim; the answer follows.
            100..=199 => continue,
            _ => {}
        }
        let reusable = head.keep_alive && out.keep_alive;
        return Ok(Answer {
            head,
            buf,
            conn,
            reusable,
        });
    }
}

async fn send_request(
    conn: &mut PooledConn,
    out: &mut Outgoing,
    s: &PeerSettings,
    sent: usize,
) -> Result<(), ProxyError> {
    let has_body = !matches!(&out.body, BodyPlan::Buffered(pieces) if pieces.is_empty());
    if has_body && !conn.nodelay {
        // A body after the head: the writes after the first must not wait
        // for the peer's (delayed) ACK.
        conn.stream.set_nodelay();
        conn.nodelay = true;
    }
    let stream = &mut conn.stream;
    match &mut out.body {
        BodyPlan::Buffered(pieces) if pieces.is_empty() => match out.head.get(sent..) {
            Some([]) | None => Ok(()),
            Some(rest) => send(stream, rest, s.send_timeout).await,
        },
        BodyPlan::Buffered(pieces) => {
            let size: usize = pieces.iter().map(|p| p.len()).sum();
            if size <= COALESCE_BODY {
                let mut all = Vec::with_capacity(out.head.len() + size);
                all.extend_from_slice(&out.head);
                pieces.iter().for_each(|p| all.extend_from_slice(p));
                send(stream, &all, s.send_timeout).await
            } else {
                send(stream, &out.head, s.send_timeout).await?;
                for piece in pieces.iter() {
                    send(stream, piece, s.send_timeout).await?;
                }
                Ok(())
            }
        }
        BodyPlan::Stream {
            body,
            chunked,
            started,
        } => {
            send(stream, &out.head, s.send_timeout).await?;
            let Some(mut client) = body.take() else {
                // Taken by an earlier try: the caller must not retry.
                return Err(ProxyError::new(
                    ErrorKind::Unsupported,
                    Phase::SendingRequest,
                    "request body already sent to another upstream",
                ));
            };
            // Taken from the client: whatever happens now, no other try
            // can have it.
            *started = true;
            while let Some(piece) = client.next().await {
                let piece = piece.map_err(client_body_error)?;
                if *chunked {
                    send(stream, &chunk(&piece), s.send_timeout).await?;
                } else {
                    send(stream, &piece, s.send_timeout).await?;
                }
            }
            if *chunked {
                send(stream, LAST_CHUNK, s.send_timeout).await?;
            }
            Ok(())
        }
    }
}

/// Read until a whole head is in `buf`; the body bytes after it stay there.
async fn read_head(
    conn: &mut PooledConn,
    buf: &mut BytesMut,
    limits: &ResponseLimits,
    head_request: bool,
    timeout: Duration,
    keep_alive: bool,
) -> Result<ResponseHead, ProxyError> {
    let phase = Phase::ReadingHeader;
    loop {
        // (Nothing read yet, the usual first turn: nothing to parse.)
        let parsed = match buf.is_empty() {
            true => Ok(None),
            false => parse_response_head(buf, limits, head_request),
        };
        match parsed {
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(e) if e.is_too_large() => {
                return Err(ProxyError::new(
                    ErrorKind::HeaderTooBig,
                    phase,
                    "upstream sent too big header",
                ));
            }
            Err(e) => {
                let what = if e.in_status_line() {
                    format!("upstream sent no valid HTTP/1.0 header ({})", e.reason())
                } else {
                    format!("upstream sent invalid header ({})", e.reason())
                };
                return Err(ProxyError::new(ErrorKind::InvalidHeader, phase, what));
            }
        }
        buf.reserve(READ_CHUNK);
        // A connection that carries one request (`Connection: close`) has
        // no use for a timer kept in a box for the next.
        let read = conn.stream.read_buf(buf);
        let n = match keep_alive {
            true => within_kept(&mut conn.timer, timeout, read).await,
            false => within(timeout, read).await,
        }
        .map_err(|_| ProxyError::timeout(phase))?
        .map_err(|e| ProxyError::io(ErrorKind::Read, phase, "recv()", e))?;
        if n == 0 {
            return Err(ProxyError::new(
                ErrorKind::ClosedEarly,
                phase,
                "upstream prematurely closed connection",
            ));
        }
    }
}

impl Answer {
    pub(crate) fn status(&self) -> u16 {
        self.head.status
    }

    /// The client's response: filtered fields, the body streamed from the
    /// connection, which goes back to `pool` after a clean end (at once,
    /// `now`, when the whole body came with the head).
    pub(crate) fn into_response(
        self,
        filter: &HeaderFilter,
        pool: Option<(Arc<ConnPool>, PeerAddr)>,
        s: &PeerSettings,
        log: impl FnOnce() -> LogContext,
        now: Instant,
    ) -> Response {
        let Answer {
            mut head,
            mut buf,
            conn,
            reusable,
        } = self;
        let headers = filter.take(std::mem::take(&mut head.headers));
        let pool = pool.filter(|_| reusable);
        let keep = move |conn: PooledConn, pool: Option<(Arc<ConnPool>, PeerAddr)>| {
            if let Some((pool, peer)) = pool {
                pool.put(peer, conn, now);
            }
        };
        let framing = match head.framing {
            ResponseFraming::None => None,
            ResponseFraming::Length(n) => Some(Framing::Length(n)),
            ResponseFraming::Chunked => Some(Framing::Chunked(Box::new(ChunkedDecoder::new()))),
            ResponseFraming::Close => Some(Framing::Close),
        };
        let body = match framing {
            None => {
                if buf.is_empty() {
                    keep(PooledConn { buf, ..conn }, pool);
                }
                ResponseBody::Empty
            }
            // The whole body came with the head: no task, no channel.
            Some(Framing::Length(n)) if buf.len() as u64 >= n => {
                let n = n as usize;
                let body = buf.split_to(n).freeze();
                if !buf.is_empty() {
                    log().log(&pump::excess_data());
                } else {
                    keep(PooledConn { buf, ..conn }, pool);
                }
                ResponseBody::Full(body)
            }
            Some(framing) => {
                let PooledConn {
                    stream,
                    requests,
                    born,
                    nodelay,
                    timer,
                    ..
                } = conn;
                let reuse: Option<pump::Reuse> = pool.map(|(pool, peer)| {
                    Box::new(move |stream| {
                        let conn = PooledConn {
                            stream,
                            requests,
                            born,
                            buf: BytesMut::new(),
                            nodelay,
                            timer,
                        };
                        pool.put(peer, conn, portico_server::clock::now());
                    }) as pump::Reuse
                });
                let reader = BodyReader::new(stream, buf, framing, s.read_timeout, log(), reuse);
                ResponseBody::Stream(if s.buffering {
                    let spool = Spool::new(s.memory_ahead, s.file_ahead, std::env::temp_dir());
                    Buffered::stream(reader, spool)
                } else {
                    Unbuffered::stream(reader)
                })
            }
        };
        Response {
            status: head.status,
            reason: head.reason,
            headers,
            body,
            meta: ResponseMeta {
                app_id: -1,
                ..ResponseMeta::default()
            },
        }
    }
}
