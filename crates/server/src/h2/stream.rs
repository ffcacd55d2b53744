//! One HTTP/2 stream, as its own task: the request made as HTTP/1.1 makes
//! it, the handler called, its body fed from the stream's DATA frames
//! (window released as the handler takes them, so at most the window plus
//! a few pieces wait in memory), the response sent, and the exchange logged
//! and reported exactly as `conn.rs` does for HTTP/1.1 (`conn::finish`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use tokio::sync::mpsc;

use super::request::request_head;
use super::response::{self, BodySender, SendError};
use crate::body::{BodyError, Piece, RequestBody};
use crate::conn::{ConnContext, over_limit_post};
use crate::exchange::{CLOSE_WITHOUT_RESPONSE, Exchanged, Logged, finish};
use crate::handler::{Request, RequestSource, Response, ResponseBody, ResponseMeta, StreamItem};

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

/// Moves the request body from the stream to the handler; polled beside
/// whatever the stream task waits on.
#[derive(Default)]
struct Feeder {
    fut: Option<Pin<Box<dyn Future<Output = Option<RecvStream>> + Send>>>,
    /// The receiving half kept after the feeding ended early, so that it is
    /// dropped only after the response (see [`feed`]).
    held: Option<RecvStream>,
}

/// Request body read and discarded after the handler dropped it, while
/// its response is on the way (the client is not stalled meanwhile).
const MAX_DISCARD: u64 = 1024 * 1024;

/// Move the request body from the stream to the handler's channel,
/// releasing window as each piece is handed on. Once the handler dropped
/// the body, the rest is read and discarded up to [`MAX_DISCARD`]; past
/// that the receiving half is handed back to be held until the response
/// is done: dropped before, `h2` would reset the stream with CANCEL ahead
/// of the answer; after, with NO_ERROR (RFC 9113 §8.1), and the client
/// keeps the answer.
async fn feed(mut recv: RecvStream, tx: mpsc::Sender<Piece>) -> Option<RecvStream> {
    let mut discarded = 0u64;
    loop {
        let permit = tx.reserve().await.ok();
        if permit.is_none() && discarded > MAX_DISCARD {
            return Some(recv);
        }
        match recv.data().await {
            Some(Ok(data)) => {
                let _ = recv.flow_control().release_capacity(data.len());
                match permit {
                    Some(permit) if !data.is_empty() => permit.send(Ok(data)),
                    Some(_) => {}
                    None => discarded += data.len() as u64,
                }
            }
            Some(Err(e)) => {
                let error = if e.is_reset() || e.is_io() || e.is_go_away() {
                    BodyError::Incomplete
                } else {
                    BodyError::Io(e.to_string())
                };
                if let Some(permit) = permit {
                    permit.send(Err(error));
                }
                return None;
            }
            // The end: dropping the sender ends the body.
            None => return None,
        }
    }
}

/// Await `fut` while the request body keeps flowing to the handler.
async fn alongside<F: Future>(fut: F, feeder: &mut Feeder) -> F::Output {
    tokio::pin!(fut);
    loop {
        match &mut feeder.fut {
            None => return fut.await,
            Some(f) => tokio::select! {
                biased;
                out = &mut fut => return out,
                held = f.as_mut() => {
                    feeder.held = held;
                    feeder.fut = None;
                }
            },
        }
    }
}

/// The small answer to a request refused before any handler saw it.
fn refusal(status: u16, nginx_pages: bool) -> Response {
    let (reason, content_type, body) = if nginx_pages {
        let (reason, page) = crate::site::refusal_page(status);
        (reason, "text/html", page)
    } else {
        let reason = match status {
            413 => "Content Too Large",
            _ => "Bad Request",
        };
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
            crate::logln!(
                "portico: refused HTTP/2 request from {}: 400 {why}",
                shared.peer_shown
            );
            let _ = send(
                &shared,
                &mut respond,
                refusal(400, ctx.nginx_pages),
                false,
                &mut Feeder::default(),
            )
            .await;
            return;
        }
    };
    if let Some(why) = over_limit_post(&head.framing, ctx.limit_post) {
        crate::logln!(
            "portico: refused HTTP/2 request from {}: 413 {why}",
            shared.peer_shown
        );
        let _ = send(
            &shared,
            &mut respond,
            refusal(413, ctx.nginx_pages),
            false,
            &mut Feeder::default(),
        )
        .await;
        return;
    }
    let started = SystemTime::now();
    let clock = Instant::now();
    let (body, mut feeder) = if end_of_stream {
        (RequestBody::complete(Bytes::new()), Feeder::default())
    } else {
        let (body, tx) = RequestBody::fed();
        let feeder = Feeder {
            fut: Some(Box::pin(feed(recv, tx))),
            held: None,
        };
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
