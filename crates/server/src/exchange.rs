//! One request/response exchange on a connection (HTTP or uwsgi): hand the
//! request to the handler's future, feed it a streamed body on demand,
//! write the response, drain what the client still sends; then the log
//! line and the worker's hooks ([`finish`]). Also the refusals a connection
//! answers itself ([`refuse`]) and the lingering close after them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use portico_proto::http1::Version;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::sleep_until;

use crate::body::{BodyError, BodyPump};
use crate::conn::{ConnContext, read_some, reason_phrase};
use crate::handler::{HandlerFuture, ResponseBody, ResponseMeta, StreamItem};
use crate::hooks::RequestRecord;
use crate::listener::Wire;
use crate::log::{LogEntry, LogFields};
use crate::receive::body_error_status;
use crate::write::{self, BodyWriter, SendFile, encode_error, encode_head, flush};

/// Unread request body that is read and discarded to keep a connection
/// alive; beyond it the connection is closed instead.
pub(crate) const MAX_DRAIN: u64 = 1024 * 1024;

/// Time allowed to drain an unread request body.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The connection is shut down or closed as soon as a response that
    /// does not persist is written (both callers): see [`holds_for_fin`].
    pub closes_after: bool,
}

/// Whether the last write of a response goes out with the connection's FIN:
/// sent with MSG_MORE, the bytes wait in the socket for the `close()` that
/// follows at once, which sends them and the FIN as one segment (one
/// segment and one ACK fewer per connection, for both ends: measured in
/// docs/design-notes.md §2). Only when the request was read in full with
/// nothing after it: a close with unread bytes resets the connection and
/// drops what is still queued, where an answer already sent has a chance.
fn holds_for_fin(framing: &ResponseFraming, keep_alive: bool, pump: bool, rbuf: &BytesMut) -> bool {
    framing.closes_after && !keep_alive && !pump && rbuf.is_empty()
}

/// The status with which a site asks for the connection to be closed with
/// no answer at all (nginx's non-standard 444).
pub(crate) const CLOSE_WITHOUT_RESPONSE: u16 = 444;

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
    /// The handler's future had to wait (for an upstream, a Python
    /// thread) at least once: the worker's other tasks ran meanwhile, and
    /// what it did after is writing the answer (`conn.rs`, `FAIR_SHARE`).
    pub waited: bool,
}

/// How long an exchange that took `took` has held the worker's thread in
/// one stretch, for the fair-share rule: all of it if the handler never
/// waited (an app run in place), none if it did. (Timing the stretch since
/// the handler resumed, as this did before, counts the answer's system
/// calls and any preemption on the wall clock: on a slow VM that passed
/// 50 µs for half of the proxied requests, each then paying a `poll()` of
/// the listeners and a yield for nothing: docs/design-notes.md §15.)
pub(crate) fn held_thread(took: Duration, waited: bool) -> Duration {
    if waited { Duration::ZERO } else { took }
}

/// The handler's future, noting whether it ever returned `Pending`.
struct Watched {
    fut: HandlerFuture,
    waited: bool,
}

impl std::future::Future for Watched {
    type Output = crate::handler::Response;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.fut).poll(cx);
        this.waited |= polled.is_pending();
        polled
    }
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
    pending: HandlerFuture,
    framing: &ResponseFraming,
    peer: &str,
    ctx: &ConnContext,
) -> Option<Exchanged>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + SendFile + Unpin,
{
    let demand = pump.as_ref().map(|p| p.demand.clone());
    let mut body_error: Option<BodyError> = None;
    let mut pending = Watched {
        fut: pending,
        waited: false,
    };

    // Wait for the status and headers while feeding the body on demand.
    let response = loop {
        let Some(p) = pump.as_mut() else {
            break (&mut pending).await;
        };
        let awaiting = p.awaiting_demand;
        let feeding = p.active() && !awaiting;
        tokio::select! {
            biased;
            response = &mut pending => break response,
            _ = wait_demand(&demand), if awaiting => {
                p.awaiting_demand = false;
                if framing.wire == Wire::Http
                    && write::flush(writer, &mut b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())
                        .await
                        .is_err()
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

    // The app is done with this request (the gate counted it until now);
    // if this is the worker's last request, close the gate.
    let last_request = ctx.hooks.as_ref().is_some_and(|h| h.last_request());
    if last_request && let Some(g) = &ctx.gate {
        g.stop();
    }

    if let Some(e) = &body_error {
        // The client broke or stalled its own body; whatever the app made
        // of it, answer for the body (400, 408) and close.
        if let Some(status) = body_error_status(e) {
            refuse(writer, out, status, &e.to_string(), peer, ctx.nginx_pages).await;
            linger(reader).await;
        }
        return None;
    }

    // nginx's `return 444`: close the connection without a response.
    if ctx.nginx_pages && response.status == CLOSE_WITHOUT_RESPONSE {
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
    let for_fin = holds_for_fin(framing, plan.keep_alive, pump.is_some(), rbuf);
    let written: std::io::Result<()> = async {
        match response.body {
            ResponseBody::Empty => {}
            // Left in `out` for the last write.
            ResponseBody::Full(data) if for_fin && data.len() <= write::COALESCE_LIMIT => {
                body_writer.push(out, &data)
            }
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
        if for_fin && clean && !out.is_empty() {
            writer.write_more(out).await?;
            out.clear();
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
        waited: pending.waited,
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

/// After an exchange: the worker's hooks and the access log. Returns how
/// long the exchange took.
pub(crate) fn finish(
    ctx: &ConnContext,
    done: &Exchanged,
    req: Logged<'_>,
    clock: Instant,
) -> Duration {
    // The request's one real clock read: its time, for the log and the
    // fair-share rule, and the cache's refresh for what follows.
    let elapsed = crate::clock::refresh().saturating_duration_since(clock);
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
            // Stop accepting before the accept loop looks at the gate again.
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
    elapsed
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
pub(crate) const UNREAD_BODY_LINGER_MAX: usize = 16 * 1024 * 1024;

pub(crate) async fn linger<R: AsyncRead + Unpin>(reader: &mut R) {
    linger_for(reader, LINGER_MAX).await;
}

pub(crate) async fn linger_for<R: AsyncRead + Unpin>(reader: &mut R, max: usize) {
    let deadline = tokio::time::Instant::now() + LINGER_TIMEOUT;
    let mut scratch = BytesMut::new();
    let mut total = 0;
    while total < max {
        scratch.clear();
        tokio::select! {
            read = read_some(reader, &mut scratch) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            },
            _ = sleep_until(deadline) => return,
        }
    }
}

#[cfg(test)]
mod watched_tests {
    use super::*;
    use crate::handler::Response;

    #[test]
    fn only_a_handler_that_never_waited_held_the_thread() {
        let took = Duration::from_micros(900);
        assert_eq!(held_thread(took, false), took, "never waited");
        assert_eq!(held_thread(took, true), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_handler_ready_at_once_never_waited_and_a_waiting_one_did() {
        let ready: HandlerFuture =
            HandlerFuture::new(move || async { Response::plain(200, "OK", "ok") });
        let mut at_once = Watched {
            fut: ready,
            waited: false,
        };
        let _ = (&mut at_once).await;
        assert!(!at_once.waited);

        let waiting: HandlerFuture = HandlerFuture::new(move || async {
            tokio::task::yield_now().await;
            Response::plain(200, "OK", "ok")
        });
        let mut later = Watched {
            fut: waiting,
            waited: false,
        };
        let _ = (&mut later).await;
        assert!(later.waited);
    }
}
