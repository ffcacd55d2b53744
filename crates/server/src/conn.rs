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
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{HeadLimits, RequestHead, parse_request_head};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::body_spool::SpoolConfig;
use crate::exchange::{
    Logged, ResponseFraming, UNREAD_BODY_LINGER_MAX, exchange, finish, linger, linger_for, refuse,
};
use crate::handler::{Handler, Request, RequestSource};
use crate::hooks::WorkerHooks;
use crate::listener::ListenerInfo;
use crate::listener::Wire;
use crate::log::AccessLog;
use crate::receive::{Begun, Refused, begin_body, receive_body};
use crate::timeouts::{SendTimeout, Timeouts};
use crate::worker_conns::Reusable;
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
    /// Turns true when the server stops (graceful): idle connections
    /// close, the others after their response. The idle queue wakes idle
    /// connections when it does (`OpenConnections::close_idle`).
    pub shutdown: watch::Receiver<bool>,
    /// How request bodies are received before the handler is called.
    pub spool: SpoolConfig,
    /// The worker's connections (`worker_connections`): an idle one may be
    /// closed to make room for a new one.
    pub open: Arc<crate::worker_conns::OpenConnections>,
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

/// Read the next request head. The idle wait (no byte yet) lasts at most
/// `idle_timeout`; from the first byte the head must be complete within
/// `client_header_timeout` (one deadline, as nginx's).
/// Small on purpose: this is the state an idle connection's task is in.
/// While idle the connection is in the worker's idle queue
/// (worker_conns.rs), which times it out (one timer per worker, none in
/// the task) and wakes it when the server stops or when its slot is needed
/// for a new connection. A head that comes in pieces is read on in a boxed
/// future with its own timer ([`finish_head`]).
/// (A function returning an `async move` block: see [`serve_connection`].)
#[allow(clippy::manual_async_fn)] // kept small on purpose (see above)
fn read_head<'a, R: AsyncRead + Unpin>(
    reader: &'a mut R,
    rbuf: &'a mut BytesMut,
    ctx: &'a ConnContext,
    fresh: bool,
    idle_timeout: Duration,
) -> impl std::future::Future<Output = HeadRead> + 'a {
    async move {
        if rbuf.is_empty() {
            // Idle: keep no buffer until the client sends something (the
            // last one is the worker's spare if nothing holds it).
            crate::read_spare::give(std::mem::take(rbuf), READ_BUFFER);
            let mut came = false;
            if !*ctx.shutdown.borrow() {
                // In the worker's idle queue while idle.
                let mut reusable = Reusable::enter(&ctx.open, idle_timeout);
                tokio::select! {
                    read = read_idle(reader, rbuf) => if let Ok(n) = read {
                        // Drained (or timed out) as the bytes came: its
                        // slot is given away. At a stop, answer it.
                        came = n > 0 && (!reusable.drained() || *ctx.shutdown.borrow());
                    },
                    // Woken by the queue: timed out, drained, or the server stops.
                    _ = &mut reusable => {}
                }
            }
            if !came {
                if fresh && *ctx.shutdown.borrow() {
                    // A connection accepted just before the stop: its first
                    // request is likely in flight, so give it a moment
                    // instead of a reset.
                    let grace = FIRST_REQUEST_GRACE.min(idle_timeout);
                    if !matches!(Box::pin(tokio::time::timeout(grace, read_some(reader, rbuf))).await, Ok(Ok(n)) if n > 0)
                    {
                        return HeadRead::Closed;
                    }
                } else {
                    return HeadRead::Closed;
                }
            }
        }
        // (The parse's result is out of scope before the await: a match
        // scrutinee lives to the match's end, and a head is 144 bytes.)
        if let Some(read) = parsed_head(rbuf, ctx) {
            return read;
        }
        Box::pin(finish_head(reader, rbuf, ctx)).await
    }
}

/// The head in `rbuf`, or why it is refused; None while it is incomplete.
fn parsed_head(rbuf: &mut BytesMut, ctx: &ConnContext) -> Option<HeadRead> {
    match parse_request_head(rbuf, &ctx.limits) {
        Ok(Some(head)) => Some(HeadRead::Head(Box::new(head))),
        Ok(None) => None,
        Err(e) => Some(HeadRead::Refused {
            status: e.status(),
            reason: e.reason().to_string(),
        }),
    }
}

/// The rest of a head whose first bytes are in `rbuf`, within
/// `client_header_timeout` from now (408 after).
async fn finish_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    ctx: &ConnContext,
) -> HeadRead {
    let sleep = sleep_until(crate::clock::tokio_now() + ctx.timeouts.header);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            read = read_some(reader, rbuf) => match read {
                Ok(0) | Err(_) => return HeadRead::Closed,
                Ok(_) => {}
            },
            _ = &mut sleep => {
                return HeadRead::Refused { status: 408, reason: "request head not received in time".into() };
            }
        }
        if let Some(read) = parsed_head(rbuf, ctx) {
            return read;
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
    read_idle(reader, rbuf).await
}

/// [`read_some`] into an empty `rbuf` (no capacity): the read lands on the
/// stack and `rbuf` is allocated only when bytes came. A plain `poll_fn`
/// (16 bytes), not an `async fn` (40): it is in every idle connection.
fn read_idle<'a, R: AsyncRead + Unpin>(
    reader: &'a mut R,
    rbuf: &'a mut BytesMut,
) -> impl std::future::Future<Output = std::io::Result<usize>> + 'a {
    poll_fn(move |cx| {
        // Uninitialised: zeroing 4 KiB on every poll (each idle wake-up
        // polls twice) was 17% of a proxied request's instructions.
        let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); IDLE_READ];
        let mut buf = ReadBuf::uninit(&mut stack);
        match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let got = buf.filled();
                if !got.is_empty() {
                    if rbuf.capacity() == 0
                        && let Some(spare) = crate::read_spare::take()
                    {
                        *rbuf = spare;
                    }
                    rbuf.reserve(READ_BUFFER.max(got.len()));
                    rbuf.extend_from_slice(got);
                }
                Poll::Ready(Ok(got.len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
}

/// The client's address as logs show it.
pub(crate) fn peer_text(peer: Option<SocketAddr>) -> String {
    match peer.map(|p| p.ip()) {
        // Per request: `Ipv4Addr`'s `Display` goes through the formatter
        // (about 1,300 instructions), the octets through itoa about 100.
        Some(std::net::IpAddr::V4(ip)) => {
            let mut text = String::with_capacity(15);
            let mut digits = itoa::Buffer::new();
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(digits.format(octet));
            }
            text
        }
        Some(ip) => ip.to_string(),
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
    /// `peer` as logs show it ([`peer_text`]): made once per connection
    /// (as nginx's `addr_text`), not per request (264 instructions).
    pub peer_text: Box<str>,
}

impl Ends {
    pub(crate) fn new(
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
        tls: Option<Arc<crate::tls::TlsFacts>>,
    ) -> Ends {
        Ends {
            peer,
            local,
            tls,
            peer_text: peer_text(peer).into_boxed_str(),
        }
    }
}

/// Serve requests on one connection until it closes. `rbuf`: what was
/// read from it already (the first request, read as it was accepted).
///
/// A plain function returning an `async move` block rather than an `async
/// fn`: the block uses its captures in place, where an `async fn` would
/// keep a second copy of its arguments in every connection's future.
#[allow(clippy::manual_async_fn)] // kept small on purpose (see above)
pub(crate) fn serve_connection<'a, R, W>(
    reader: &'a mut R,
    writer: &'a mut W,
    ends: &'a Ends,
    ctx: &'a Arc<ConnContext>,
    rbuf: &'a mut BytesMut,
) -> impl std::future::Future<Output = ()> + 'a
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + SendFile + Unpin,
{
    async move {
        // Only what an idle connection needs lives here; the rest is made
        // per request (serve_request, boxed).
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
                peer_text: ends.peer_text.clone(),
            };
            let sniffed = Box::pin(crate::h2::serve_if_preface(
                reader,
                writer,
                rbuf,
                h2_ends,
                ctx.clone(),
                ctx.shutdown.clone(),
                settings,
            ))
            .await;
            if sniffed != Some(false) {
                return;
            }
        }
        loop {
            let head = match read_head(reader, rbuf, ctx, fresh, idle_timeout).await {
                HeadRead::Head(head) => head,
                HeadRead::Closed => return,
                HeadRead::Refused { status, reason } => {
                    Box::pin(refuse_and_linger(
                        writer,
                        reader,
                        status,
                        &reason,
                        &ends.peer_text,
                        ctx,
                    ))
                    .await;
                    return;
                }
            };
            fresh = false;
            let stopping = *ctx.shutdown.borrow();
            // Boxed: an idle connection's task stays small; made in its
            // box (no copy of the whole future into it), the block reused
            // from the thread's last request (no allocation, no free).
            let tls = ends.tls.clone();
            let next = crate::reused_box::Reused::new(|| {
                serve_request(
                    reader,
                    writer,
                    head,
                    rbuf,
                    Conn {
                        peer: ends.peer,
                        peer_shown: &ends.peer_text,
                        local: ends.local,
                        tls,
                        ctx,
                        served,
                        stopping,
                    },
                )
            })
            .await;
            let Some(next_idle) = next else {
                // Closing: its read buffer may serve the next connection.
                crate::read_spare::give(std::mem::take(rbuf), READ_BUFFER);
                return;
            };
            served += 1;
            idle_timeout = next_idle.unwrap_or(ctx.timeouts.keepalive);
        }
    }
}

/// An exchange that took this long lets the worker's other tasks run
/// before the connection reads its next request (a Flask request in place
/// is some 100 µs; a hello-world one some 5 µs, which never yields).
const FAIR_SHARE: Duration = Duration::from_micros(50);

/// [`FAIR_SHARE`], or the environment's `PORTICO_FAIR_SHARE_US`
/// (microseconds), a knob for measuring, read once: under valgrind every
/// exchange takes 50 times longer and would yield, which a native run
/// almost never does (`bench/proxy_instructions.py` raises it).
fn fair_share() -> Duration {
    static LIMIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("PORTICO_FAIR_SHARE_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(FAIR_SHARE, Duration::from_micros)
    })
}

/// What [`serve_request`] needs to know of its connection.
struct Conn<'a> {
    peer: Option<SocketAddr>,
    /// `peer` as logs show it.
    peer_shown: &'a str,
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
        peer_shown,
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
    let started = crate::clock::wall();
    let clock = crate::clock::now();
    // Only a body received before the handler needs a future (boxed: it
    // is large and rare); the usual request is ready at once.
    let taken = match begin_body(rbuf, head.framing, head.expect_continue, ctx) {
        Ok(Begun::Ready(body, pump)) => Ok((body, pump)),
        Ok(Begun::Receive(body, pump)) => Box::pin(receive_body(
            reader,
            writer,
            rbuf,
            body,
            pump,
            ctx,
            Wire::Http,
        ))
        .await
        .map(|body| (body, None))
        .map_err(Refused::from),
        Err(refused) => Err(refused),
    };
    let (body, pump) = match taken {
        Ok(taken) => taken,
        Err(refused) => {
            if let Some(status) = refused.status {
                Box::pin(refuse_and_linger(
                    writer,
                    reader,
                    status,
                    &refused.why,
                    peer_shown,
                    ctx,
                ))
                .await;
            }
            return None;
        }
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
        // Not persisting, the connection is shut down or closed at once (below).
        closes_after: true,
    };
    // Built as the argument: no local of its own to copy it from.
    let pending = ctx.handler.handle(Request {
        source: RequestSource::Http(*head),
        peer,
        local,
        listener: ctx.listener.clone(),
        body,
        handoff: ctx.handoff.clone(),
        tls,
    });
    let done = exchange(
        reader, writer, rbuf, out, pump, pending, &framing, peer_shown, ctx,
    )
    .await?;
    let took = finish(
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
    // A handler that waited (a proxied request's upstream) let the other
    // tasks have their turn then, and a yield here would cost every such
    // request a `poll()` of the listeners and a trip through the scheduler
    // for nothing.
    if crate::exchange::held_thread(took, done.waited) >= fair_share() {
        // Its next request may be there already: it would be read and
        // served in this same poll, and the next, while the worker's other
        // connections (and the accept loop) wait. After an exchange that
        // took a while (an app run in place), let them have their turn; a
        // new client waiting in the listen queue first (it would otherwise
        // wait for the whole round: accept_between.rs).
        crate::accept_between::take_waiting();
        tokio::task::yield_now().await;
    }
    Some(done.idle_timeout)
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

#[cfg(test)]
#[path = "conn_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "conn_duplex_tests.rs"]
mod duplex_tests;
