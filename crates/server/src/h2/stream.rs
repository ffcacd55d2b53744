//! One HTTP/2 stream, as its own task: the request made as HTTP/1.1 makes
//! it, its body received whole before the handler is called (the step
//! HTTP/1.1 and uwsgi share, receive.rs; or streamed to the handler by a
//! [`Feeder`], h2/body.rs), the handler called, the response sent, and the
//! exchange logged and reported exactly as `conn.rs` does for HTTP/1.1
//! (`exchange::finish`). A body the client stalls is reset after
//! `client_body_timeout`, one over the limit answered 413, as nginx does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use portico_proto::http1::BodyFraming;

use super::body::{Feeder, alongside};
use super::request::request_head;
use super::response::{self, BodySender, SendError};
use crate::body::{BodyError, RequestBody};
use crate::body_spool::BodySpool;
use crate::conn::ConnContext;
use crate::exchange::{CLOSE_WITHOUT_RESPONSE, Exchanged, Logged, finish};
use crate::handler::{Request, RequestSource, Response, ResponseBody, ResponseMeta, StreamItem};
use crate::receive::over_limit_post;

/// What every stream of a connection shares.
pub(super) struct Shared {
    pub ctx: Arc<ConnContext>,
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub peer_shown: String,
    /// The connection's TLS facts (`None`: h2c).
    pub tls: Option<Arc<crate::tls::TlsFacts>>,
    /// Largest DATA frame payload sent.
    pub chunk_size: usize,
    /// Where streams report being reset by the client.
    pub trip: Arc<super::guard::Trip>,
}

/// The protocol as the access log shows it (nginx's `$server_protocol`).
const PROTOCOL: &[u8] = b"HTTP/2.0";

/// The small answer to a request refused before any handler saw it.
fn refusal(status: u16, nginx_pages: bool) -> Response {
    let (reason, content_type, body) = if nginx_pages {
        let (reason, page) = crate::site::refusal_page(status);
        (reason, "text/html", page)
    } else {
        let reason = crate::conn::reason_phrase(status);
        (
            reason,
            "text/plain; charset=utf-8",
            Bytes::from(format!("{status} {reason}\n")),
        )
    };
    Response {
        status,
        reason: Bytes::from_static(reason.as_bytes()),
        headers: vec![(
            Bytes::from_static(b"content-type"),
            Bytes::from_static(content_type.as_bytes()),
        )],
        body: ResponseBody::Full(body),
        meta: ResponseMeta {
            app_id: -1,
            ..ResponseMeta::default()
        },
    }
}

/// Serve one stream to its end.
pub(super) async fn serve_stream(
    shared: Arc<Shared>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let ctx = &*shared.ctx;
    let (parts, recv) = request.into_parts();
    let end_of_stream = recv.is_end_stream();
    let head = match request_head(&parts, end_of_stream) {
        Ok(head) => head,
        Err(why) => {
            refuse(&shared, &mut respond, 400, why, Feeder::holding(recv)).await;
            return;
        }
    };
    if let Some(why) = over_limit_post(&head.framing, ctx.limit_post) {
        // Before reading any of the body; the client is asked to stop
        // sending it (RST_STREAM NO_ERROR) once the answer is out.
        refuse(&shared, &mut respond, 413, &why, Feeder::holding(recv)).await;
        return;
    }
    let started = SystemTime::now();
    let clock = Instant::now();
    let announced = match head.framing {
        BodyFraming::Length(n) => Some(n),
        _ => None,
    };
    let (body, mut feeder) = if end_of_stream {
        (RequestBody::complete(Bytes::new()), Feeder::default())
    } else if ctx.spool.receives(announced) {
        // Received whole before the handler is called, as HTTP/1.1's: the
        // stream waits for its client, not for the app.
        let mut recv = recv;
        match receive(&mut recv, ctx).await {
            Ok(body) => (body, Feeder::default()),
            Err(e) => {
                answer_body_error(&shared, &mut respond, e, recv).await;
                return;
            }
        }
    } else {
        let (body, tx) = RequestBody::fed();
        let feeder = Feeder::streaming(recv, tx, ctx.timeouts.body, ctx.limit_post);
        (body, feeder)
    };
    let method = head.method.clone();
    let uri = head.target.clone();
    let is_head = method.as_ref() == b"HEAD";
    let log_fields = ctx.log.fields_of(|| RequestSource::Http(head.clone()));
    let request = Request {
        source: RequestSource::Http(head),
        peer: shared.peer,
        local: shared.local,
        listener: ctx.listener.clone(),
        body,
        handoff: ctx.handoff.clone(),
        tls: shared.tls.clone(),
    };
    let pending = alongside(ctx.handler.handle(request), &mut feeder);
    let response = tokio::select! {
        response = pending => response,
        _ = std::future::poll_fn(|cx| respond.poll_reset(cx)) => {
            // The client gave up on the stream: the handler's work is
            // dropped with it, and the reset counts against the connection.
            shared.trip.client_reset();
            return;
        }
    };

    // As exchange.rs: the app is done (the gate counted it until now); if
    // this was the worker's last request, close the gate.
    let last_request = ctx.hooks.as_ref().is_some_and(|h| h.last_request());
    if last_request && let Some(g) = &ctx.gate {
        g.stop();
    }

    if let Some(e) = feeder.failed.take() {
        // The client stalled or overran a streamed body: answer for the
        // body, as a received one is answered, whatever the app made of it.
        let held = feeder.held.take();
        if let Some(recv) = held {
            answer_body_error(&shared, &mut respond, e, recv).await;
        }
        return;
    }
    if ctx.nginx_pages && response.status == CLOSE_WITHOUT_RESPONSE {
        // nginx's `return 444`: no answer at all; the stream is reset.
        respond.send_reset(h2::Reason::CANCEL);
        return;
    }
    let done = send(&shared, &mut respond, response, is_head, &mut feeder).await;
    finish(
        ctx,
        &done,
        Logged {
            peer: &shared.peer_shown,
            user: b"",
            started,
            method: &method,
            uri: &uri,
            protocol: PROTOCOL,
            fields: &log_fields,
        },
        clock,
    );
    // Dropping the feeder now, with the response complete, ends a request
    // body still arriving with RST_STREAM NO_ERROR (RFC 9113 §8.1), as
    // nginx does.
    drop(feeder);
}

/// Receive a stream's whole body before the handler is called: the step
/// HTTP/1.1 and uwsgi share (receive.rs), fed with the stream's DATA frames.
async fn receive(recv: &mut RecvStream, ctx: &ConnContext) -> Result<RequestBody, BodyError> {
    let mut spool = BodySpool::new(&ctx.spool);
    crate::receive::fill(recv, &mut spool, ctx.timeouts.body).await?;
    spool.finish()
}

/// Answer a stream refused before (or instead of) its handler's response,
/// then let `held` go: the client is asked to stop sending the body with
/// RST_STREAM NO_ERROR after the answer (RFC 9113 §8.1), as nginx does.
async fn refuse(
    shared: &Shared,
    respond: &mut SendResponse<Bytes>,
    status: u16,
    why: &str,
    mut held: Feeder,
) {
    crate::logln!(
        "portico: refused HTTP/2 request from {}: {status} {why}",
        shared.peer_shown
    );
    let answer = refusal(status, shared.ctx.nginx_pages);
    let _ = send(shared, respond, answer, false, &mut held).await;
}

/// Answer a body the client broke: a stall past `client_body_timeout`
/// resets the stream with PROTOCOL_ERROR and no answer, as nginx does on
/// HTTP/2 (HTTP/1.1 answers 408); a body over the limit gets 413, a
/// temporary file that failed 500; a client that left gets nothing.
async fn answer_body_error(
    shared: &Shared,
    respond: &mut SendResponse<Bytes>,
    e: BodyError,
    recv: RecvStream,
) {
    if e.is_timeout() {
        crate::logln!(
            "portico: HTTP/2 client {} timed out sending a request body: {e}",
            shared.peer_shown
        );
        respond.send_reset(h2::Reason::PROTOCOL_ERROR);
        return;
    }
    if let Some(status) = crate::receive::body_error_status(&e) {
        refuse(
            shared,
            respond,
            status,
            &e.to_string(),
            Feeder::holding(recv),
        )
        .await;
    }
}

/// Send `response` on the stream; what was sent, for the log.
async fn send(
    shared: &Shared,
    respond: &mut SendResponse<Bytes>,
    response: Response,
    is_head: bool,
    feeder: &mut Feeder,
) -> Exchanged {
    let head = response::head(&response, is_head);
    let mut done = Exchanged {
        status: response.status,
        meta: response.meta,
        header_count: head.header_count,
        header_bytes: head.header_bytes,
        body_bytes: 0,
        persist: true,
        idle_timeout: None,
        unread_body: false,
        waited: false,
    };
    let Ok(stream) = respond.send_response(head.head, head.no_body) else {
        done.persist = false;
        return done;
    };
    if head.no_body {
        return done;
    }
    let mut sender = BodySender::new(stream, shared.chunk_size, head.length);
    let sent: Result<bool, SendError> = async {
        match response.body {
            ResponseBody::Empty => {}
            ResponseBody::Full(data) if sender.fits_one_chunk(data.len() as u64) => {
                sender.whole(data)?
            }
            ResponseBody::Full(data) => alongside(sender.data(data), feeder).await?,
            ResponseBody::File { file, offset, len } if sender.fits_one_chunk(len) => {
                let mut buf = vec![0u8; len as usize];
                let read = std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, offset);
                if read.is_err() {
                    return Err(SendError::File);
                }
                sender.whole(Bytes::from(buf))?
            }
            ResponseBody::File { file, offset, len } => {
                alongside(sender.file(&file, offset, len), feeder).await?
            }
            ResponseBody::Stream(mut rx) => loop {
                match alongside(rx.next(), feeder).await {
                    Some(StreamItem::Data(data)) => alongside(sender.data(data), feeder).await?,
                    Some(StreamItem::File { file, offset, len }) => {
                        alongside(sender.file(&file, offset, len), feeder).await?
                    }
                    Some(StreamItem::End) => break,
                    Some(StreamItem::Abort) | None => return Ok(false),
                }
            },
        }
        Ok(true)
    }
    .await;
    match sent {
        Ok(true) => done.persist = sender.finish(),
        Ok(false) | Err(SendError::Stalled | SendError::File | SendError::Short) => {
            sender.abort();
            done.persist = false;
        }
        Err(SendError::Gone) => {
            shared.trip.client_reset();
            done.persist = false;
        }
    }
    done.body_bytes = sender.sent;
    done
}
