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

use bytes::BytesMut;
use portico_proto::http1::{HeadLimits, RequestHead, parse_request_head};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::body::{BodyError, BodyPump};
use crate::handler::{Handler, Request, ResponseBody, StreamItem};
use crate::hooks::{RequestRecord, WorkerHooks};
use crate::listener::ListenerInfo;
use crate::log::{AccessLog, LogEntry};
use crate::write::{self, BodyWriter, SendFile, encode_error, encode_head, flush};

/// Time allowed for a whole request head once its first byte arrived
/// (hyper's default; a slow-header client is cut after it).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an idle persistent connection is kept (nginx's keepalive_timeout;
/// longer than common load balancers' idle timeouts, unlike gunicorn's 2 s).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);

/// Unread request body that is read and discarded to keep a connection
/// alive; beyond it the connection is closed instead.
pub const MAX_DRAIN: u64 = 1024 * 1024;

/// Time allowed to drain an unread request body.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What every connection of a listener shares.
pub(crate) struct ConnContext {
    pub handler: Arc<dyn Handler>,
    pub log: Arc<AccessLog>,
    pub listener: Arc<ListenerInfo>,
    pub limits: HeadLimits,
    pub hooks: Option<Arc<dyn WorkerHooks>>,
    /// Notified when the hooks ask the worker to retire.
    pub retire: Arc<tokio::sync::Notify>,
    pub handoff: Arc<crate::handoff::Handoff>,
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
) -> HeadRead {
    let idle_deadline = tokio::time::Instant::now() + KEEPALIVE_TIMEOUT;
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
        let deadline = head_deadline.unwrap_or(idle_deadline);
        let idle = rbuf.is_empty();
        if idle && *shutdown.borrow() {
            return HeadRead::Closed;
        }
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
            _ = shutdown.changed(), if idle => return HeadRead::Closed,
        }
    }
}

/// Serve requests on one connection until it closes.
pub(crate) async fn serve_connection<R, W>(
    reader: &mut R,
    writer: &mut W,
    peer: SocketAddr,
    local: SocketAddr,
    ctx: &ConnContext,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + SendFile + Unpin,
{
    let mut rbuf = BytesMut::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        let head = match read_head(reader, &mut rbuf, &ctx.limits, &mut shutdown).await {
            HeadRead::Head(head) => head,
            HeadRead::Closed => return,
            HeadRead::Refused { status, reason } => {
                refuse(writer, &mut out, status, &reason, peer).await;
                linger(reader).await;
                return;
            }
        };
        let started = SystemTime::now();
        let clock = Instant::now();
        let (body, mut pump) = match BodyPump::start(head.framing, head.expect_continue, &mut rbuf)
        {
            Ok(started) => started,
            Err(e) => {
                refuse(writer, &mut out, 400, &e.to_string(), peer).await;
                linger(reader).await;
                return;
            }
        };
        let method = head.method.clone();
        let uri = head.target.clone();
        let version = head.version;
        let is_head = head.method.as_ref() == b"HEAD";
        let keep_alive_wanted = head.keep_alive;
        let request = Request {
            head: *head,
            peer,
            local,
            listener: ctx.listener.clone(),
            body,
            handoff: ctx.handoff.clone(),
        };
        let mut pending = ctx.handler.handle(request);
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
                    if writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                        return;
                    }
                }
                fed = p.feed(reader, &mut rbuf), if feeding => {
                    if let Err(e) = fed {
                        body_error = Some(e);
                    }
                }
            }
        };

        if let Some(e) = &body_error {
            // The client broke its own body; whatever the app made of it, answer 400.
            if matches!(e, BodyError::Malformed(_)) {
                refuse(writer, &mut out, 400, &e.to_string(), peer).await;
                linger(reader).await;
            }
            return;
        }

        let shutting_down = *shutdown.borrow();
        // Say `Connection: close` now if the unread body will not let us go on.
        let body_blocks_reuse = pump
            .as_ref()
            .is_some_and(|p| p.awaiting_demand || p.remaining().is_some_and(|n| n > MAX_DRAIN));
        let (plan, computed_length) = write::plan(
            &response,
            version,
            is_head,
            keep_alive_wanted && !shutting_down && !body_blocks_reuse,
        );
        let header_count = encode_head(&mut out, &response, &plan, computed_length, version);
        let header_bytes = out.len() as u64;
        let mut body_writer = BodyWriter::new(plan.framing);
        let meta = response.meta;
        let status = response.status;
        let mut clean = true;
        let written: std::io::Result<()> = async {
            match response.body {
                ResponseBody::Empty => {}
                ResponseBody::Full(data) => body_writer.write(writer, &mut out, &data).await?,
                ResponseBody::Stream(mut rx) => loop {
                    let feeding = pump
                        .as_ref()
                        .is_some_and(|p| p.active() && !p.awaiting_demand);
                    let item = tokio::select! {
                        biased;
                        item = rx.recv() => item,
                        fed = feed_some(&mut pump, reader, &mut rbuf), if feeding => {
                            if let Err(e) = fed {
                                body_error = Some(e);
                            }
                            continue;
                        }
                    };
                    match item {
                        Some(StreamItem::Data(data)) => {
                            body_writer.write(writer, &mut out, &data).await?
                        }
                        Some(StreamItem::File { file, offset, len }) => {
                            body_writer
                                .write_file(writer, &mut out, &file, offset, len)
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
                body_writer.finish(&mut out);
            }
            flush(writer, &mut out).await
        }
        .await;

        let mut persist = plan.keep_alive && clean && written.is_ok() && !body_writer.short();
        if let Some(p) = pump.as_mut() {
            if p.awaiting_demand {
                // We never asked for the body: the client may never send it.
                persist = false;
            } else if persist && p.active() {
                persist = drain(p, reader, &mut rbuf).await;
            }
            persist &= !p.failed();
        }
        persist &= body_error.is_none();

        let elapsed = clock.elapsed();
        if let Some(hooks) = &ctx.hooks {
            let record = RequestRecord {
                status,
                body_bytes: body_writer.sent,
                header_bytes,
                elapsed,
            };
            if hooks.request_done(&record) {
                ctx.retire.notify_one();
            }
        }
        ctx.log.record(&LogEntry {
            peer,
            app_id: meta.app_id,
            vars: meta.vars,
            vars_bytes: meta.vars_bytes,
            started,
            method: &method,
            uri: &uri,
            body_bytes: body_writer.sent,
            elapsed,
            protocol: version.as_bytes(),
            status,
            header_count,
            header_bytes,
        });
        if !persist {
            let _ = writer.shutdown().await;
            return;
        }
    }
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

async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
    status: u16,
    why: &str,
    peer: SocketAddr,
) {
    eprintln!("portico: refused request from {peer}: {status} {why}");
    out.clear();
    encode_error(
        out,
        status,
        reason_phrase(status),
        &format!("{} {}\n", status, reason_phrase(status)),
    );
    let _ = writer.write_all(out).await;
    let _ = writer.shutdown().await;
}

/// Time a refused connection is read and discarded after the answer, so
/// unread request bytes do not turn the close into a reset that destroys
/// the answer before the client reads it (nginx's lingering close).
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes read and discarded at most while lingering.
const LINGER_MAX: usize = 256 * 1024;

async fn linger<R: AsyncRead + Unpin>(reader: &mut R) {
    let deadline = tokio::time::Instant::now() + LINGER_TIMEOUT;
    let mut scratch = vec![0u8; 16 * 1024];
    let mut total = 0;
    while total < LINGER_MAX {
        tokio::select! {
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            },
            _ = sleep_until(deadline) => return,
        }
    }
}
