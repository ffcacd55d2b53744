//! One HTTP/1.1 connection: read a head, hand the request to the handler,
//! feed it the body on demand, write its response, and repeat while the
//! connection may persist (keep-alive and pipelining).
//!
//! A malformed head gets a 4xx and the connection closed, and no handler
//! ever sees it. A body that cannot be read to its end closes the connection
//! after the response, since the next request's start is then unknown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{BodyFraming, HeadLimits, RequestHead, Version, parse_request_head};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::body::{BodyError, BodyPump};
use crate::handler::{
    Handler, HandlerFuture, Request, RequestSource, ResponseBody, ResponseMeta, StreamItem,
};
use crate::hooks::{RequestRecord, WorkerHooks};
use crate::listener::ListenerInfo;
use crate::listener::Wire;
use crate::log::{AccessLog, LogEntry, LogFields};
use crate::write::{self, BodyWriter, SendFile, encode_error, encode_head, flush};

/// Time allowed for a whole request head once its first byte arrived
/// (hyper's default; a slow-header client is cut after it).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an idle persistent connection is kept (nginx's keepalive_timeout;
/// longer than common load balancers' idle timeouts, unlike gunicorn's 2 s).
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);

/// After a stop signal, how long a connection that has not sent its first
/// request yet may take to send it (it was accepted before the stop).
pub(crate) const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(2);

/// Unread request body that is read and discarded to keep a connection
/// alive; beyond it the connection is closed instead.
pub(crate) const MAX_DRAIN: u64 = 1024 * 1024;

/// Time allowed to drain an unread request body.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    limits: &HeadLimits,
    shutdown: &mut watch::Receiver<bool>,
    fresh: bool,
    idle_timeout: Duration,
) -> HeadRead {
    let mut idle_deadline = tokio::time::Instant::now() + idle_timeout;
    let mut head_deadline = None;
    loop {
        if !rbuf.is_empty() {
            match parse_request_head(rbuf, limits) {
                Ok(Some(head)) => return HeadRead::Head(Box::new(head)),
                Ok(None) => {}
                Err(e) => {
                    return HeadRead::Refused {
                        status: e.status(),
                        reason: e.reason().to_string(),
                    };
                }
            }
            head_deadline.get_or_insert_with(|| tokio::time::Instant::now() + HEAD_TIMEOUT);
        }
        let idle = rbuf.is_empty();
        let stopping = *shutdown.borrow();
        if idle && stopping {
            if !fresh {
                // An idle persistent connection: close it now.
                return HeadRead::Closed;
            }
            // A connection accepted just before the stop: its first request
            // is likely in flight, so give it a moment instead of a reset.
            idle_deadline = idle_deadline.min(tokio::time::Instant::now() + FIRST_REQUEST_GRACE);
        }
        let deadline = head_deadline.unwrap_or(idle_deadline);
        rbuf.reserve(8 * 1024);
        tokio::select! {
            read = reader.read_buf(rbuf) => match read {
                Ok(0) | Err(_) => return HeadRead::Closed,
                Ok(_) => {}
            },
            _ = sleep_until(deadline) => {
                return if idle {
                    HeadRead::Closed
                } else {
                    HeadRead::Refused { status: 408, reason: "request head not received in time".into() }
                };
            }
            _ = shutdown.changed(), if idle && !stopping => {}
        }
    }
}

/// How long an accepted connection keeps its gate slot while its first
/// bytes are on the way; a connection that stays silent gives the slot
/// back, so idle sockets never stop a worker from accepting.
pub(crate) const FIRST_BYTES_SLOT_HOLD: Duration = Duration::from_millis(100);

/// Wait briefly for a fresh connection's first bytes while it holds its
/// slot; drop the slot if none come. `None`: the client went away.
pub(crate) async fn hold_slot_for_first_bytes<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    slot: &mut Option<crate::gate::Slot>,
) -> Option<()> {
    if slot.is_none() || !rbuf.is_empty() {
        return Some(());
    }
    match tokio::time::timeout(FIRST_BYTES_SLOT_HOLD, reader.read_buf(rbuf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => None,
        Ok(Ok(_)) => Some(()),
        Err(_) => {
            *slot = None;
            Some(())
        }
    }
}

/// The client's address as logs show it.
pub(crate) fn peer_text(peer: Option<SocketAddr>) -> String {
    peer.map(|p| p.ip().to_string()).unwrap_or_default()
}

/// The two ends of a connection (`None` on a unix socket) and what its
/// TLS handshake settled (`None`: plain).
pub(crate) struct Ends {
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub tls: Option<Arc<crate::tls::TlsFacts>>,
}

/// Serve requests on one connection until it closes.
pub(crate) async fn serve_connection<R, W>(
    reader: &mut R,
    writer: &mut W,
    ends: Ends,
    ctx: &Arc<ConnContext>,
    mut shutdown: watch::Receiver<bool>,
    mut first_slot: Option<crate::gate::Slot>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + SendFile + Unpin,
{
    let Ends { peer, local, tls } = ends;
    let mut rbuf = BytesMut::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(8 * 1024);
    let peer_shown = peer_text(peer);
    let mut fresh = true;
    let mut served: u64 = 0;
    let mut idle_timeout = KEEPALIVE_TIMEOUT;
    if hold_slot_for_first_bytes(reader, &mut rbuf, &mut first_slot)
        .await
        .is_none()
    {
        return;
    }
    // Prior-knowledge HTTP/2 (h2c) on a plain listener that speaks it; over
    // TLS, ALPN has chosen already (serve.rs).
    if let Some(settings) = ctx.listener.http2.filter(|_| tls.is_none()) {
        match crate::h2::sniff_preface(reader, &mut rbuf, &mut shutdown).await {
            None => return,
            Some(false) => {}
            Some(true) => {
                let io = crate::h2::Joined {
                    prefix: std::mem::take(&mut rbuf),
                    reader,
                    writer,
                };
                let ends = Ends { peer, local, tls };
                crate::h2::serve_h2(io, ends, ctx.clone(), shutdown, first_slot, settings).await;
                return;
            }
        }
    }
    loop {
        let head = match read_head(
            reader,
            &mut rbuf,
            &ctx.limits,
            &mut shutdown,
            fresh,
            idle_timeout,
        )
        .await
        {
            HeadRead::Head(head) => head,
            HeadRead::Closed => return,
            HeadRead::Refused { status, reason } => {
                refuse(
                    writer,
                    &mut out,
                    status,
                    &reason,
                    &peer_shown,
                    ctx.nginx_pages,
                )
                .await;
                linger(reader).await;
                return;
            }
        };
        fresh = false;
        if let Some(why) = over_limit_post(&head.framing, ctx.limit_post) {
            // Before the handler and before any `100 Continue`: the app
            // never sees the request and the client need not send the body.
            refuse(writer, &mut out, 413, &why, &peer_shown, ctx.nginx_pages).await;
            linger(reader).await;
            return;
        }
        // Hold a gate slot while this request is in hand.
        let mut slot = first_slot
            .take()
            .or_else(|| ctx.gate.as_ref().map(|g| g.enter()));
        let started = SystemTime::now();
        let clock = Instant::now();
        let (body, pump) = match BodyPump::start(head.framing, head.expect_continue, &mut rbuf) {
            Ok(started) => started,
            Err(e) => {
                refuse(
                    writer,
                    &mut out,
                    400,
                    &e.to_string(),
                    &peer_shown,
                    ctx.nginx_pages,
                )
                .await;
                linger(reader).await;
                return;
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
            keep_alive_wanted: head.keep_alive && !*shutdown.borrow(),
            served_before: served,
        };
        let request = Request {
            source: RequestSource::Http(*head),
            peer,
            local,
            listener: ctx.listener.clone(),
            body,
            handoff: ctx.handoff.clone(),
            tls: tls.clone(),
        };
        let pending = ctx.handler.handle(request);
        let Some(done) = exchange(
            reader,
            writer,
            &mut rbuf,
            &mut out,
            pump,
            pending,
            &framing,
            &peer_shown,
            GateRelease {
                ctx,
                slot: &mut slot,
            },
        )
        .await
        else {
            return;
        };
        finish(
            ctx,
            &done,
            Logged {
                peer: &peer_shown,
                user: b"",
                started,
                method: &method,
                uri: &uri,
                protocol: framing.protocol.as_ref(),
                fields: &log_fields,
            },
            clock,
        );
        drop(slot);
        if !done.persist {
            let _ = writer.shutdown().await;
            if done.unread_body {
                linger_for(reader, UNREAD_BODY_LINGER_MAX).await;
            }
            return;
        }
        served += 1;
        idle_timeout = done.idle_timeout.unwrap_or(KEEPALIVE_TIMEOUT);
    }
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

/// How the response to one request is framed.
pub(crate) struct ResponseFraming {
    pub wire: Wire,
    pub version: Version,
    /// The status line's protocol: `HTTP/1.0` or `HTTP/1.1`, never copied from input.
    pub protocol: Bytes,
    pub is_head: bool,
    pub keep_alive_wanted: bool,
    /// Requests this connection carried before this one.
    pub served_before: u64,
}

/// The status with which a site asks for the connection to be closed with
/// no answer at all (nginx's non-standard 444).
pub(crate) const CLOSE_WITHOUT_RESPONSE: u16 = 444;

/// The gate slot an exchange frees once the app has answered.
pub(crate) struct GateRelease<'a> {
    pub ctx: &'a ConnContext,
    pub slot: &'a mut Option<crate::gate::Slot>,
}

/// What one request/response exchange did.
pub(crate) struct Exchanged {
    pub status: u16,
    pub meta: ResponseMeta,
    pub header_count: u32,
    pub header_bytes: u64,
    pub body_bytes: u64,
    /// The connection may carry another request.
    pub persist: bool,
    /// How long it may idle before that request (`None`: the default).
    pub idle_timeout: Option<Duration>,
    /// The client may still be sending a request body nobody read: read
    /// and discard it before closing (nginx's lingering close), or the
    /// close turns into a reset that destroys the answer.
    pub unread_body: bool,
}

/// Hand the request to the handler's future, feed its body on demand,
/// write the response. `None` when the connection must close at once
/// (the client vanished, or broke its own body and was answered 400).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn exchange<R, W>(
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    out: &mut Vec<u8>,
    mut pump: Option<BodyPump>,
    mut pending: HandlerFuture,
    framing: &ResponseFraming,
    peer: &str,
    gate: GateRelease<'_>,
) -> Option<Exchanged>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + SendFile + Unpin,
{
    let demand = pump.as_ref().map(|p| p.demand.clone());
    let mut body_error: Option<BodyError> = None;

    // Wait for the status and headers while feeding the body on demand.
    let response = loop {
        let Some(p) = pump.as_mut() else {
            break pending.await;
        };
        let awaiting = p.awaiting_demand;
        let feeding = p.active() && !awaiting;
        tokio::select! {
            biased;
            response = &mut pending => break response,
            _ = wait_demand(&demand), if awaiting => {
                p.awaiting_demand = false;
                if framing.wire == Wire::Http
                    && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
                {
                    return None;
                }
            }
            fed = p.feed(reader, rbuf), if feeding => {
                if let Err(e) = fed {
                    body_error = Some(e);
                }
            }
        }
    };

    // The app is done with this request: free its gate slot, so the worker
    // accepts again while the response is written; if this is the worker's
    // last request, close the gate first.
    let last_request = gate.ctx.hooks.as_ref().is_some_and(|h| h.last_request());
    if last_request && let Some(g) = &gate.ctx.gate {
        g.stop();
    }
    *gate.slot = None;

    if let Some(e) = &body_error {
        // The client broke its own body; whatever the app made of it, answer 400.
        if matches!(e, BodyError::Malformed(_)) {
            refuse(writer, out, 400, &e.to_string(), peer, gate.ctx.nginx_pages).await;
            linger(reader).await;
        }
        return None;
    }

    // nginx's `return 444`: close the connection without a response.
    if gate.ctx.nginx_pages && response.status == CLOSE_WITHOUT_RESPONSE {
        let _ = writer.shutdown().await;
        return None;
    }

    // Say `Connection: close` now if the unread body will not let us go on.
    let body_blocks_reuse = pump
        .as_ref()
        .is_some_and(|p| p.awaiting_demand || p.remaining().is_some_and(|n| n > MAX_DRAIN));
    let (plan, computed_length) = write::plan(
        &response,
        framing.wire,
        framing.version,
        framing.is_head,
        framing.keep_alive_wanted
            && !body_blocks_reuse
            && !last_request
            && keepalive_allows(response.meta.keepalive, framing.served_before),
    );
    let header_count = encode_head(out, &response, &plan, computed_length, framing);
    let header_bytes = out.len() as u64;
    let mut body_writer = BodyWriter::new(plan.framing);
    let meta = response.meta;
    let idle_timeout = meta.keepalive.map(|k| k.timeout);
    let status = response.status;
    let mut clean = true;
    let written: std::io::Result<()> = async {
        match response.body {
            ResponseBody::Empty => {}
            ResponseBody::Full(data) => body_writer.write(writer, out, &data).await?,
            ResponseBody::File { file, offset, len } => {
                body_writer
                    .write_file(writer, out, &file, offset, len)
                    .await?
            }
            ResponseBody::Stream(mut rx) => loop {
                let feeding = pump
                    .as_ref()
                    .is_some_and(|p| p.active() && !p.awaiting_demand);
                let item = tokio::select! {
                    biased;
                    item = rx.next() => item,
                    fed = feed_some(&mut pump, reader, rbuf), if feeding => {
                        if let Err(e) = fed {
                            body_error = Some(e);
                        }
                        continue;
                    }
                };
                match item {
                    Some(StreamItem::Data(data)) => body_writer.write(writer, out, &data).await?,
                    Some(StreamItem::File { file, offset, len }) => {
                        body_writer
                            .write_file(writer, out, &file, offset, len)
                            .await?
                    }
                    Some(StreamItem::End) => break,
                    Some(StreamItem::Abort) | None => {
                        clean = false;
                        break;
                    }
                }
            },
        }
        if clean {
            body_writer.finish(out);
        }
        flush(writer, out).await
    }
    .await;

    let mut persist = plan.keep_alive && clean && written.is_ok() && !body_writer.short();
    if let Some(p) = pump.as_mut() {
        if p.awaiting_demand {
            // We never asked for the body: the client may never send it.
            persist = false;
        } else if persist && p.active() {
            persist = drain(p, reader, rbuf).await;
        }
        persist &= !p.failed();
    }
    persist &= body_error.is_none();
    Some(Exchanged {
        status,
        meta,
        header_count,
        header_bytes,
        body_bytes: body_writer.sent,
        persist,
        idle_timeout,
        unread_body: body_blocks_reuse,
    })
}

/// Whether nginx's keep-alive limits let the connection carry another
/// request after this one (`served_before` requests came before it).
fn keepalive_allows(limits: Option<crate::handler::KeepAlive>, served_before: u64) -> bool {
    limits.is_none_or(|k| !k.timeout.is_zero() && served_before + 1 < k.requests)
}

/// The request's side of a log line.
pub(crate) struct Logged<'a> {
    pub peer: &'a str,
    pub user: &'a [u8],
    pub started: SystemTime,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub protocol: &'a [u8],
    pub fields: &'a LogFields,
}

/// After an exchange: the worker's hooks and the access log.
pub(crate) fn finish(ctx: &ConnContext, done: &Exchanged, req: Logged<'_>, clock: Instant) {
    let elapsed = clock.elapsed();
    if done.meta.log_tag != 0 {
        ctx.handler.done(
            done.meta.log_tag,
            Some(&crate::handler::Sent {
                status: done.status,
                body_bytes: done.body_bytes,
                header_bytes: done.header_bytes,
            }),
        );
    }
    if let Some(hooks) = &ctx.hooks {
        let record = RequestRecord {
            app_id: done.meta.app_id,
            status: done.status,
            body_bytes: done.body_bytes,
            header_bytes: done.header_bytes,
            elapsed,
        };
        if hooks.request_done(&record) {
            // Stop accepting before this request's gate slot is freed.
            if let Some(gate) = &ctx.gate {
                gate.stop();
            }
            ctx.retire.notify_one();
        }
    }
    ctx.log.record(&LogEntry {
        peer: req.peer,
        user: req.user,
        app_id: done.meta.app_id,
        vars: done.meta.vars,
        vars_bytes: done.meta.vars_bytes,
        core: done.meta.core,
        started: req.started,
        method: req.method,
        uri: req.uri,
        body_bytes: done.body_bytes,
        elapsed,
        protocol: req.protocol,
        status: done.status,
        header_count: done.header_count,
        header_bytes: done.header_bytes,
        fields: req.fields,
        total: ctx.hooks.as_ref().and_then(|h| h.instance_requests()),
    });
}

async fn wait_demand(demand: &Option<Arc<tokio::sync::Notify>>) {
    match demand {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

async fn feed_some<R: AsyncRead + Unpin>(
    pump: &mut Option<BodyPump>,
    reader: &mut R,
    rbuf: &mut BytesMut,
) -> Result<u64, BodyError> {
    match pump.as_mut() {
        Some(p) => p.feed(reader, rbuf).await,
        None => std::future::pending().await,
    }
}

/// Read and discard the rest of an unread body; true if the connection can go on.
async fn drain<R: AsyncRead + Unpin>(
    pump: &mut BodyPump,
    reader: &mut R,
    rbuf: &mut BytesMut,
) -> bool {
    pump.discard();
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    let mut drained = 0u64;
    while pump.active() {
        tokio::select! {
            fed = pump.feed(reader, rbuf) => match fed {
                Ok(n) => drained += n,
                Err(_) => return false,
            },
            _ = sleep_until(deadline) => return false,
        }
        if drained > MAX_DRAIN {
            return false;
        }
    }
    true
}

pub(crate) async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
    status: u16,
    why: &str,
    peer: &str,
    nginx_pages: bool,
) {
    crate::logln!("portico: refused request from {peer}: {status} {why}");
    out.clear();
    if nginx_pages {
        let (reason, page) = crate::site::refusal_page(status);
        encode_error(out, status, reason, "text/html", &page);
    } else {
        let reason = reason_phrase(status);
        let text = format!("{status} {reason}\n");
        encode_error(
            out,
            status,
            reason,
            "text/plain; charset=utf-8",
            text.as_bytes(),
        );
    }
    let _ = writer.write_all(out).await;
    let _ = writer.shutdown().await;
}

/// Time a refused connection is read and discarded after the answer, so
/// unread request bytes do not turn the close into a reset that destroys
/// the answer before the client reads it (nginx's lingering close).
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes read and discarded at most while lingering.
const LINGER_MAX: usize = 256 * 1024;

/// Bytes of an unread request body read and discarded at most after the
/// answer, so a client still sending it gets to read the answer.
const UNREAD_BODY_LINGER_MAX: usize = 16 * 1024 * 1024;

pub(crate) async fn linger<R: AsyncRead + Unpin>(reader: &mut R) {
    linger_for(reader, LINGER_MAX).await;
}

async fn linger_for<R: AsyncRead + Unpin>(reader: &mut R, max: usize) {
    let deadline = tokio::time::Instant::now() + LINGER_TIMEOUT;
    let mut scratch = vec![0u8; 16 * 1024];
    let mut total = 0;
    while total < max {
        tokio::select! {
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            },
            _ = sleep_until(deadline) => return,
        }
    }
}
