//! One HTTP/1.1 connection: read a head, hand the request to the handler,
//! feed it the body on demand, write its response, and repeat while the
//! connection may persist (keep-alive and pipelining).
//!
//! A malformed head gets a 4xx and the connection closed, and no handler
//! ever sees it. A body that cannot be read to its end closes the connection
//! after the response, since the next request's start is then unknown.
//!
//! A request body is received in full before the handler is called (in
//! memory, then a temporary file: [`SpoolConfig`]), so a client that stalls
//! mid-body holds no Python thread and no accept slot; with buffering off
//! it streams to the handler, each read waiting at most `client_body_timeout`.
//! Between requests an idle connection keeps no read or write buffer.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{BodyFraming, HeadLimits, RequestHead, parse_request_head};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::body::{BodyError, BodyPump, RequestBody};
use crate::body_spool::{BodySpool, SpoolConfig};
use crate::exchange::{
    Logged, ResponseFraming, UNREAD_BODY_LINGER_MAX, exchange, finish, linger, linger_for, refuse,
};
use crate::handler::{Handler, Request, RequestSource};
use crate::hooks::WorkerHooks;
use crate::listener::ListenerInfo;
use crate::listener::Wire;
use crate::log::AccessLog;
use crate::timeouts::{SendTimeout, Timeouts};
use crate::write::SendFile;

/// The read buffer of a connection with a request in hand.
pub(crate) const READ_BUFFER: usize = 8 * 1024;

/// Bytes read on the stack while a connection idles: the first read of a
/// request head lands here and only then is a read buffer allocated.
const IDLE_READ: usize = 4 * 1024;

/// After a stop signal, how long a connection that has not sent its first
/// request yet may take to send it (it was accepted before the stop).
pub(crate) const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(2);

/// What every connection of a listener shares.
pub(crate) struct ConnContext {
    pub handler: Arc<dyn Handler>,
    pub log: Arc<AccessLog>,
    pub listener: Arc<ListenerInfo>,
    pub limits: HeadLimits,
    pub hooks: Option<Arc<dyn WorkerHooks>>,
    /// Largest request body in bytes (`--limit-post`); 0 for no limit.
    pub limit_post: u64,
    /// Notified when the hooks ask the worker to retire.
    pub retire: Arc<tokio::sync::Notify>,
    pub handoff: Arc<crate::handoff::Handoff>,
    /// The accept gate, with blocking acceptors.
    pub gate: Option<Arc<crate::gate::Gate>>,
    /// Answer refused requests with nginx's HTML pages (`-c nginx.conf`).
    pub nginx_pages: bool,
    /// The time limits of this listener's connections.
    pub timeouts: Timeouts,
    /// Notified (`notify_waiters`) when the server stops, after `shutdown`
    /// turned true: wakes idle connections so they close.
    pub stop: Arc<tokio::sync::Notify>,
    /// How request bodies are received before the handler is called.
    pub spool: SpoolConfig,
}

enum HeadRead {
    Head(Box<RequestHead>),
    /// The client went away (or idled out, or the server is stopping) between requests.
    Closed,
    Refused {
        status: u16,
        reason: String,
    },
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Read the next request head. The idle wait (no byte yet) ends at
/// `idle_deadline`; from the first byte the head must be complete within
/// `head_timeout` (one deadline, as nginx's `client_header_timeout`).
/// Small on purpose: this is the state an idle connection's task is in.
/// (A function returning an `async move` block: see [`serve_connection`].)
#[allow(clippy::too_many_arguments)]
#[allow(clippy::manual_async_fn)] // kept small on purpose (see above)
fn read_head<'a, R: AsyncRead + Unpin>(
    reader: &'a mut R,
    rbuf: &'a mut BytesMut,
    ctx: &'a ConnContext,
    shutdown: &'a watch::Receiver<bool>,
    fresh: bool,
    idle_deadline: tokio::time::Instant,
    head_timeout: Duration,
) -> impl std::future::Future<Output = HeadRead> + 'a {
    async move {
        if rbuf.is_empty() {
            // Idle: keep no buffer until the client sends something.
            *rbuf = BytesMut::new();
        }
        let mut in_head = false;
        let sleep = sleep_until(idle_deadline);
        tokio::pin!(sleep);
        loop {
            if !rbuf.is_empty() {
                match parse_request_head(rbuf, &ctx.limits) {
                    Ok(Some(head)) => return HeadRead::Head(Box::new(head)),
                    Ok(None) => {}
                    Err(e) => {
                        return HeadRead::Refused {
                            status: e.status(),
                            reason: e.reason().to_string(),
                        };
                    }
                }
                if !in_head {
                    in_head = true;
                    sleep
                        .as_mut()
                        .reset(tokio::time::Instant::now() + head_timeout);
                }
            }
            let idle = rbuf.is_empty();
            // Made before the flag is read, so a stop in between still wakes it.
            let stop = ctx.stop.notified();
            if idle && *shutdown.borrow() {
                if !fresh {
                    // An idle persistent connection: close it now.
                    return HeadRead::Closed;
                }
                // A connection accepted just before the stop: its first request
                // is likely in flight, so give it a moment instead of a reset.
                let grace = tokio::time::Instant::now() + FIRST_REQUEST_GRACE;
                if grace < sleep.deadline() {
                    sleep.as_mut().reset(grace);
                }
            }
            tokio::select! {
                read = read_some(reader, rbuf) => match read {
                    Ok(0) | Err(_) => return HeadRead::Closed,
                    Ok(_) => {}
                },
                _ = &mut sleep => {
                    return if idle {
                        HeadRead::Closed
                    } else {
                        HeadRead::Refused { status: 408, reason: "request head not received in time".into() }
                    };
                }
                _ = stop, if idle => {}
            }
        }
    }
}

/// Read more into `rbuf`. A connection with no buffer (idle) reads on the
/// stack and allocates its buffer only when bytes arrive, so an idle
/// connection costs no buffer memory while it waits.
pub(crate) async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
) -> std::io::Result<usize> {
    if rbuf.capacity() > 0 {
        rbuf.reserve(READ_BUFFER);
        return reader.read_buf(rbuf).await;
    }
    poll_fn(|cx| {
        // Uninitialized: zeroing 4 KiB on every poll cost more than the read.
        let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); IDLE_READ];
        let mut buf = ReadBuf::uninit(&mut stack);
        match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let got = buf.filled();
                if !got.is_empty() {
                    rbuf.reserve(READ_BUFFER.max(got.len()));
                    rbuf.extend_from_slice(got);
                }
                Poll::Ready(Ok(got.len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The client's address as logs show it.
pub(crate) fn peer_text(peer: Option<SocketAddr>) -> String {
    match peer {
        // By hand: `Display` through the formatter cost ~1,300 instructions
        // per request (callgrind), this about a tenth.
        Some(SocketAddr::V4(v4)) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text
        }
        Some(p) => p.ip().to_string(),
        None => String::new(),
    }
}

/// Room for a small response's head and body: the response buffer grows
/// once at most for the usual answer, not once per header line.
pub(crate) const RESPONSE_BUFFER: usize = 512;

/// The two ends of a connection (`None` on a unix socket) and what its
/// TLS handshake settled (`None`: plain).
pub(crate) struct Ends {
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub tls: Option<Arc<crate::tls::TlsFacts>>,
}

/// Serve requests on one connection until it closes. `initial`: what was
/// read from it already (the first request, read as it was accepted).
///
/// A plain function returning an `async move` block rather than an `async
/// fn`: the block uses its captures in place, where an `async fn` would
/// keep a second copy of its arguments in every connection's future.
#[allow(clippy::manual_async_fn)] // kept small on purpose (see above)
pub(crate) fn serve_connection<'a, R, W>(
    reader: &'a mut R,
    writer: &'a mut W,
    ends: Ends,
    ctx: &'a Arc<ConnContext>,
    shutdown: watch::Receiver<bool>,
    initial: BytesMut,
) -> impl std::future::Future<Output = ()> + 'a
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + SendFile + Unpin,
{
    async move {
        // Only what an idle connection needs lives here; the rest is made
        // per request (serve_request, boxed).
        let mut rbuf = initial;
        let mut fresh = true;
        let mut served: u64 = 0;
        // nginx: a new connection's first byte is due within client_header_timeout.
        let mut idle_timeout = ctx.timeouts.header;
        // Prior-knowledge HTTP/2 (h2c) on a plain listener that speaks it;
        // over TLS, ALPN has chosen already (serve.rs). Boxed: the idle
        // HTTP/1.1 connection's future stays small.
        if let Some(settings) = ctx.listener.http2.filter(|_| ends.tls.is_none()) {
            let h2_ends = Ends {
                peer: ends.peer,
                local: ends.local,
                tls: None,
            };
            let sniffed = Box::pin(crate::h2::serve_if_preface(
                reader,
                writer,
                &mut rbuf,
                h2_ends,
                ctx.clone(),
                shutdown.clone(),
                settings,
            ))
            .await;
            if sniffed != Some(false) {
                return;
            }
        }
        loop {
            let head = match read_head(
                reader,
                &mut rbuf,
                ctx,
                &shutdown,
                fresh,
                tokio::time::Instant::now() + idle_timeout,
                ctx.timeouts.header,
            )
            .await
            {
                HeadRead::Head(head) => head,
                HeadRead::Closed => return,
                HeadRead::Refused { status, reason } => {
                    Box::pin(refuse_and_linger(
                        writer,
                        reader,
                        status,
                        &reason,
                        &peer_text(ends.peer),
                        ctx,
                    ))
                    .await;
                    return;
                }
            };
            fresh = false;
            let stopping = *shutdown.borrow();
            // Boxed: an idle connection's task stays small.
            let next = Box::pin(serve_request(
                reader,
                writer,
                head,
                &mut rbuf,
                Conn {
                    peer: ends.peer,
                    local: ends.local,
                    tls: ends.tls.clone(),
                    ctx,
                    served,
                    stopping,
                },
            ))
            .await;
            let Some(next_idle) = next else {
                return;
            };
            served += 1;
            idle_timeout = next_idle.unwrap_or(ctx.timeouts.keepalive);
        }
    }
}

/// What [`serve_request`] needs to know of its connection.
struct Conn<'a> {
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    tls: Option<Arc<crate::tls::TlsFacts>>,
    ctx: &'a ConnContext,
    /// Requests served before this one.
    served: u64,
    /// The server is stopping: answer, then close.
    stopping: bool,
}

/// Answer one request whose head is read: receive its body (or start
/// streaming it), call the handler, write the response. `None`: close the
/// connection; else how long it may idle (`None` inside: the default).
async fn serve_request<R, W>(
    reader: &mut R,
    writer: &mut W,
    head: Box<RequestHead>,
    rbuf: &mut BytesMut,
    conn: Conn<'_>,
) -> Option<Option<Duration>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + SendFile + Unpin,
{
    let Conn {
        peer,
        local,
        tls,
        ctx,
        served,
        stopping,
    } = conn;
    let mut writer = SendTimeout::new(writer, ctx.timeouts.send);
    let writer = &mut writer;
    let mut out = Vec::with_capacity(RESPONSE_BUFFER);
    let out = &mut out;
    let peer_shown = peer_text(peer);
    let peer_shown = peer_shown.as_str();
    if let Some(why) = over_limit_post(&head.framing, ctx.limit_post) {
        // Before the handler and before any `100 Continue`: the app
        // never sees the request and the client need not send the body.
        Box::pin(refuse_and_linger(
            writer, reader, 413, &why, peer_shown, ctx,
        ))
        .await;
        return None;
    }
    let started = SystemTime::now();
    let clock = Instant::now();
    let (body, pump) = match BodyPump::start(head.framing, head.expect_continue, rbuf) {
        Ok(started) => started,
        Err(e) => {
            Box::pin(refuse_and_linger(
                writer,
                reader,
                400,
                &e.to_string(),
                peer_shown,
                ctx,
            ))
            .await;
            return None;
        }
    };
    if ctx.limit_post > 0 && body.buffered_len() > ctx.limit_post {
        // A chunked body that came whole with its head.
        let why = format!(
            "chunked body over the limit of {} bytes (--limit-post)",
            ctx.limit_post
        );
        refuse_and_linger(writer, reader, 413, &why, peer_shown, ctx).await;
        return None;
    }
    let (body, pump) = match pump {
        Some(pump) if ctx.spool.receives(pump.remaining()) => {
            // The request waits for its client, not for the app: the
            // gate counts no Python work for it while its body arrives.
            let received = Box::pin(receive_body(
                reader,
                writer,
                rbuf,
                body,
                pump,
                ctx,
                Wire::Http,
            ))
            .await;
            match received {
                Ok(body) => (body, None),
                Err(e) => {
                    if let Some(status) = body_error_status(&e) {
                        Box::pin(refuse_and_linger(
                            writer,
                            reader,
                            status,
                            &e.to_string(),
                            peer_shown,
                            ctx,
                        ))
                        .await;
                    }
                    return None;
                }
            }
        }
        Some(mut pump) => {
            pump.set_timeout(ctx.timeouts.body);
            pump.set_limit(ctx.limit_post, body.buffered_len());
            (body, Some(pump))
        }
        None => (body, None),
    };
    let method = head.method.clone();
    let uri = head.target.clone();
    let log_fields = ctx.log.fields_of(|| RequestSource::Http((*head).clone()));
    let framing = ResponseFraming {
        wire: Wire::Http,
        version: head.version,
        protocol: Bytes::from_static(head.version.as_bytes()),
        is_head: head.method.as_ref() == b"HEAD",
        keep_alive_wanted: head.keep_alive && !stopping,
        served_before: served,
    };
    let request = Request {
        source: RequestSource::Http(*head),
        peer,
        local,
        listener: ctx.listener.clone(),
        body,
        handoff: ctx.handoff.clone(),
        tls,
    };
    let pending = ctx.handler.handle(request);
    let done = exchange(
        reader, writer, rbuf, out, pump, pending, &framing, peer_shown, ctx,
    )
    .await?;
    finish(
        ctx,
        &done,
        Logged {
            peer: peer_shown,
            user: b"",
            started,
            method: &method,
            uri: &uri,
            protocol: framing.protocol.as_ref(),
            fields: &log_fields,
        },
        clock,
    );
    if !done.persist {
        // A plain socket's close sends the FIN itself; the shutdown() call
        // is needed before a lingering read (the client must see the end
        // while it still sends) and on TLS (close_notify).
        if done.unread_body || writer.needs_shutdown() {
            let _ = writer.shutdown().await;
        }
        if done.unread_body {
            Box::pin(linger_for(reader, UNREAD_BODY_LINGER_MAX)).await;
        }
        return None;
    }
    Some(done.idle_timeout)
}

/// The status that answers a request whose body failed before the app
/// answered: `None` when the client is gone and nothing can be said.
pub(crate) fn body_error_status(e: &BodyError) -> Option<u16> {
    match e {
        BodyError::Malformed(_) => Some(400),
        BodyError::TimedOut(_) => Some(408),
        BodyError::TooLarge(_) => Some(413),
        BodyError::Spool(_) => Some(500),
        BodyError::Incomplete | BodyError::Io(_) => None,
    }
}

/// Receive the whole request body (memory, then a temporary file) before
/// the handler is called; `100 Continue` first if the client waits for it.
pub(crate) async fn receive_body<R, W>(
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    body: RequestBody,
    mut pump: BodyPump,
    ctx: &ConnContext,
    wire: Wire,
) -> Result<RequestBody, BodyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if pump.awaiting_demand {
        pump.awaiting_demand = false;
        if wire == Wire::Http {
            // (flushed: a TLS stream may hold it while the socket is full)
            crate::write::flush(writer, &mut b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())
                .await
                .map_err(|e| BodyError::Io(e.to_string()))?;
        }
    }
    pump.set_timeout(ctx.timeouts.body);
    let mut spool = BodySpool::new(&ctx.spool);
    pump.receive(reader, rbuf, body, &mut spool).await?;
    spool.finish()
}

/// Answer a refused request and read what the client still sends for a moment.
async fn refuse_and_linger<R, W>(
    writer: &mut W,
    reader: &mut R,
    status: u16,
    why: &str,
    peer: &str,
    ctx: &ConnContext,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut writer = SendTimeout::new(writer, ctx.timeouts.send);
    let mut out = Vec::new();
    refuse(&mut writer, &mut out, status, why, peer, ctx.nginx_pages).await;
    linger(reader).await;
}

/// Why a request whose body is framed by `framing` is over `--limit-post`
/// (`limit`, 0 for none), if it is. Only a Content-Length is known up front;
/// a chunked body is not limited yet (its size is only known as it streams).
pub(crate) fn over_limit_post(framing: &BodyFraming, limit: u64) -> Option<String> {
    match *framing {
        BodyFraming::Length(n) if limit > 0 && n > limit => Some(format!(
            "Content-Length {n} is over the limit of {limit} bytes (--limit-post)"
        )),
        _ => None,
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "conn_duplex_tests.rs"]
mod duplex_tests;
