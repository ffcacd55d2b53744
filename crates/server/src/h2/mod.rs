//! HTTP/2 connections, server side, on the `h2` crate: the connection
//! driver ([`serve_h2`]) accepts streams and runs each as its own task
//! (`stream.rs`), which turns the HTTP/2 request into the same [`Request`]
//! an HTTP/1.1 connection makes (`request.rs`), calls the listener's
//! [`Handler`], and sends the [`Response`] within the stream's flow-control
//! window (`response.rs`). Handlers cannot tell the two protocols apart
//! except by [`Version::Http2`].
//!
//! Limits and attack defences are `h2`'s, set from the listener's
//! [`Http2Settings`]: concurrent streams (beyond them: REFUSED_STREAM),
//! the decoded header list size (HPACK bombs, CONTINUATION floods), streams
//! reset before they are accepted and streams the server had to reset
//! (rapid reset, CVE-2023-44487), and a bounded send buffer. A graceful stop
//! sends GOAWAY and lets the streams in flight finish; so does a connection
//! that has carried `keepalive_requests` streams, or idled for
//! `keepalive_timeout` (`client_header_timeout` before its first request),
//! as nginx 1.19.7+ does.
//!
//! [`Request`]: crate::handler::Request
//! [`Handler`]: crate::handler::Handler
//! [`Response`]: crate::handler::Response
//! [`Version::Http2`]: portico_proto::http1::Version::Http2

mod body;
mod cork;
mod guard;
mod io;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portico_config::Http2Settings;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::conn::{ConnContext, Ends};

pub(crate) use io::serve_if_preface;

/// Streams the client may reset before the server accepted them, at once,
/// before the connection is closed with ENHANCE_YOUR_CALM (h2's default;
/// the rapid-reset defence).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// Streams the server may reset for the client's errors before the
/// connection is closed (the other half of the rapid-reset defence).
const MAX_LOCAL_ERROR_RESETS: usize = 256;

/// Bytes queued for sending per stream beyond the peer's window.
const MAX_SEND_BUFFER: usize = 64 * 1024;

/// After GOAWAY, how long the streams in flight may take before the
/// connection is closed anyway (the process's own grace bounds it too).
const STOP_GRACE: Duration = Duration::from_secs(60);

/// After a graceful GOAWAY, with no stream left, how long the client has
/// to answer the PING that lets `h2` send the final GOAWAY and close;
/// then the connection is closed anyway.
const PONG_WAIT: Duration = Duration::from_secs(1);

/// The `h2` server builder for a listener's settings.
fn builder(settings: &Http2Settings) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(settings.max_header_list_size)
        .initial_window_size(settings.recv_window)
        .initial_connection_window_size(
            settings
                .recv_window
                .saturating_mul(4)
                .clamp(65_535, (1 << 31) - 1),
        )
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_concurrent_reset_streams(MAX_PENDING_ACCEPT_RESETS * 2);
    b
}

/// Serve one HTTP/2 connection on `io` (the client preface not yet read)
/// until it closes, the client idles out, or a stop has let its streams finish.
pub(crate) async fn serve_h2<T>(
    io: T,
    ends: Ends,
    ctx: Arc<ConnContext>,
    stop: watch::Receiver<bool>,
    settings: Http2Settings,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let first_deadline = tokio::time::Instant::now() + ctx.timeouts.header;
    serve_h2_by(io, ends, ctx, stop, settings, first_deadline).await;
}

/// [`serve_h2`] for a connection whose first request is due by
/// `first_deadline` (nginx: `client_header_timeout` from the accept, for
/// the preface, SETTINGS and the first HEADERS alike; then
/// `keepalive_timeout` whenever no stream is open).
pub(crate) async fn serve_h2_by<T>(
    io: T,
    ends: Ends,
    ctx: Arc<ConnContext>,
    mut stop: watch::Receiver<bool>,
    settings: Http2Settings,
    first_deadline: tokio::time::Instant,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Ends {
        peer,
        local,
        tls,
        peer_text,
    } = ends;
    let peer_shown = String::from(peer_text);
    let trip = Arc::new(guard::Trip::default());
    let io = guard::Guarded {
        io,
        counter: guard::FrameCounter::new(io::PREFACE.len()),
        trip: trip.clone(),
    };
    // Writes wait in the cork until the driver has nothing more to do.
    let (io, uncork) = cork::cork(io);
    let driver = async move {
        let handshake = builder(&settings).handshake::<_, Bytes>(io);
        let mut conn = match tokio::time::timeout_at(first_deadline, handshake).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                crate::logln!("portico: HTTP/2 handshake with {peer_shown} failed: {e}");
                return;
            }
            Err(_) => return,
        };
        let shared = Arc::new(stream::Shared {
            ctx,
            peer,
            local,
            peer_shown,
            tls,
            chunk_size: settings.chunk_size.clamp(1024, 1 << 20) as usize,
            trip: trip.clone(),
        });
        let mut stop_gone = false;
        let mut streams: JoinSet<()> = JoinSet::new();
        let mut stopping = *stop.borrow();
        if stopping {
            conn.graceful_shutdown();
        }
        // When the last stream answered in place ended; the idle timer is
        // moved on lazily from it.
        let mut last_done: Option<tokio::time::Instant> = None;
        let idle = tokio::time::sleep_until(first_deadline);
        tokio::pin!(idle);
        // Streams accepted; at `keepalive_requests` the connection says GOAWAY
        // and closes once those in flight are done (nginx 1.19.7+).
        let mut accepted_streams: u64 = 0;
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let stop_deadline = tokio::time::sleep_until(far());
        tokio::pin!(stop_deadline);
        // Once going away with no stream left: `h2` closes by itself when the
        // client answers its PING; one that never does is closed at this.
        let drained = tokio::time::sleep_until(if stopping {
            tokio::time::Instant::now() + PONG_WAIT
        } else {
            far()
        });
        tokio::pin!(drained);
        loop {
            tokio::select! {
                accepted = conn.accept() => match accepted {
                    Some(Ok((request, mut respond))) => {
                        trip.accepted();
                        if settings.max_requests.is_some_and(|max| accepted_streams >= max) {
                            // Opened before our GOAWAY reached the client: not
                            // processed, safe to retry elsewhere (RFC 9113 §8.7).
                            respond.send_reset(h2::Reason::REFUSED_STREAM);
                            continue;
                        }
                        accepted_streams += 1;
                        // Polled once here first: a stream answered at once (a
                        // static file, a cached page, a refusal) ends without a
                        // task of its own; only one that waits is spawned.
                        let mut fut = Box::pin(stream::serve_stream(shared.clone(), request, respond));
                        let ready = std::future::poll_fn(|cx| {
                            std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready())
                        })
                        .await;
                        if ready {
                            let now = tokio::time::Instant::now();
                            if last_done.replace(now).is_none() {
                                // Off client_header_timeout's first deadline
                                // once; later answers move it on lazily.
                                idle.as_mut().reset(now + settings.idle_timeout);
                            }
                        } else {
                            streams.spawn(fut);
                        }
                        if !stopping && settings.max_requests.is_some_and(|max| accepted_streams >= max) {
                            stopping = true;
                            conn.graceful_shutdown();
                        }
                    }
                    Some(Err(e)) => {
                        if !e.is_io() && !e.is_go_away() {
                            crate::logln!("portico: HTTP/2 connection from {} closed: {e}", shared.peer_shown);
                        }
                        break;
                    }
                    None => break,
                },
                Some(_) = streams.join_next(), if !streams.is_empty() => {
                    if streams.is_empty() {
                        let now = tokio::time::Instant::now();
                        idle.as_mut().reset(now + settings.idle_timeout);
                        if stopping {
                            drained.as_mut().reset(now + PONG_WAIT);
                        }
                    }
                }
                _ = &mut idle, if streams.is_empty() && !stopping => {
                    let now = tokio::time::Instant::now();
                    if let Some(done) = last_done.filter(|done| *done + settings.idle_timeout > now) {
                        // A stream was answered in place since the timer was set.
                        idle.as_mut().reset(done + settings.idle_timeout);
                        continue;
                    }
                    // keepalive_timeout (client_header_timeout before the first
                    // request): GOAWAY with the last stream processed, and the
                    // close, at once as nginx (no stream is in flight).
                    close_now(&mut conn, h2::Reason::NO_ERROR).await;
                    break;
                }
                _ = &mut drained, if stopping && streams.is_empty() => {
                    close_now(&mut conn, h2::Reason::NO_ERROR).await;
                    break;
                }
                changed = stop.changed(), if !stopping && !stop_gone => {
                    if changed.is_err() {
                        // The runtime is going away with its stop sender.
                        stop_gone = true;
                    } else if *stop.borrow() {
                        stopping = true;
                        conn.graceful_shutdown();
                        let now = tokio::time::Instant::now();
                        stop_deadline.as_mut().reset(now + STOP_GRACE);
                        if streams.is_empty() {
                            drained.as_mut().reset(now + PONG_WAIT);
                        }
                    }
                }
                _ = trip.tripped() => {
                    crate::logln!(
                        "portico: HTTP/2 flood from {} (control frames or reset streams), connection closed",
                        shared.peer_shown
                    );
                    close_now(&mut conn, h2::Reason::ENHANCE_YOUR_CALM).await;
                    break;
                }
                _ = &mut stop_deadline, if stopping => {
                    close_now(&mut conn, h2::Reason::NO_ERROR).await;
                    break;
                }
            }
        }
        // The connection is closed: `h2` ends it only once no stream is in
        // flight, or it failed; nothing is left for the stream tasks to send.
        streams.abort_all();
        while streams.join_next().await.is_some() {}
    };
    cork::uncorking(driver, uncork).await;
}

/// GOAWAY with `reason`, then the close, at once: the frames get a second
/// to leave.
async fn close_now<T, B>(conn: &mut h2::server::Connection<T, B>, reason: h2::Reason)
where
    T: AsyncRead + AsyncWrite + Unpin,
    B: bytes::Buf,
{
    conn.abrupt_shutdown(reason);
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        std::future::poll_fn(|cx| conn.poll_closed(cx)),
    )
    .await;
}
