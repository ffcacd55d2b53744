//! The request prologue HTTP/1.1, uwsgi and HTTP/2 share: before the
//! handler is called, the request body is received in full (in memory, then
//! a temporary file: [`BodySpool`]) or, when buffering is off or the body is
//! announced over every limit, set up to stream to the handler; with
//! `--limit-post` (413 before reading), `client_body_timeout` between two
//! reads of the body and the spool's largest size (413 once a body grows
//! past it).
//!
//! [`fill`] is the one receiving loop; a [`BodySource`] is where the pieces
//! come from (the socket through a [`BodyPump`], or an HTTP/2 stream's DATA
//! frames). [`take_body`] is the whole step for the byte-stream protocols;
//! the HTTP/2 stream (h2/stream.rs) calls [`fill`] with its own refusals,
//! which are frames rather than bytes.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portico_proto::http1::BodyFraming;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::body::{BodyError, BodyPump, RequestBody};
use crate::body_spool::BodySpool;
use crate::conn::ConnContext;
use crate::listener::Wire;

/// Where a request body's pieces come from.
pub(crate) trait BodySource {
    /// The next piece of the body, `Ok(None)` at its end. Waits for the
    /// client as long as it takes: [`fill`] times each wait.
    fn next_piece(&mut self) -> impl Future<Output = Result<Option<Bytes>, BodyError>>;
}

/// Receive the rest of a body from `source` into `spool`, waiting at most
/// `timeout` for each piece (`client_body_timeout`, "between two successive
/// read operations", on every protocol as nginx does).
pub(crate) async fn fill<S: BodySource>(
    source: &mut S,
    spool: &mut BodySpool,
    timeout: Duration,
) -> Result<(), BodyError> {
    loop {
        match tokio::time::timeout(timeout, source.next_piece()).await {
            Err(_) => return Err(BodyError::TimedOut(timeout)),
            Ok(Ok(Some(data))) => spool.push(&data)?,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// A request refused before its handler was called.
#[derive(Debug)]
pub(crate) struct Refused {
    /// The status to answer; `None`: the client is gone, nothing is said.
    pub status: Option<u16>,
    /// Why, for the log.
    pub why: String,
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

impl From<BodyError> for Refused {
    fn from(e: BodyError) -> Refused {
        Refused {
            status: body_error_status(&e),
            why: e.to_string(),
        }
    }
}

/// Why a request whose body is framed by `framing` is over `--limit-post`
/// (`limit`, 0 for none), if it is. Only a length announced up front is
/// known; a body without one is limited as it arrives.
pub(crate) fn over_limit_post(framing: &BodyFraming, limit: u64) -> Option<String> {
    match *framing {
        BodyFraming::Length(n) if limit > 0 && n > limit => Some(format!(
            "Content-Length {n} is over the limit of {limit} bytes (--limit-post)"
        )),
        _ => None,
    }
}

/// The body step of a byte-stream connection (HTTP/1.1, uwsgi), once the
/// head is read: refuse a length over `--limit-post` before reading
/// anything (and before any `100 Continue`), decode what came with the
/// head, then either receive the rest before the handler is called (the
/// request waits for its client, not for the app: the gate counts no
/// Python work for it meanwhile) or hand back the pump that streams it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn take_body<R, W>(
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    framing: BodyFraming,
    expect_continue: bool,
    ctx: &ConnContext,
    wire: Wire,
) -> Result<(RequestBody, Option<BodyPump>), Refused>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match begin_body(rbuf, framing, expect_continue, ctx)? {
        Begun::Ready(body, pump) => Ok((body, pump)),
        Begun::Receive(body, pump) => {
            let body = receive_body(reader, writer, rbuf, body, pump, ctx, wire).await?;
            Ok((body, None))
        }
    }
}

/// Where [`begin_body`] leaves a request body.
pub(crate) enum Begun {
    /// Nothing to wait for here: no body, all of it came with the head, or
    /// a pump that streams it to the handler.
    Ready(RequestBody, Option<BodyPump>),
    /// To receive whole before the handler ([`receive_body`]).
    Receive(RequestBody, BodyPump),
}

/// [`take_body`]'s part that never waits: the limits, what came with the
/// head, and whether the rest must be received first. A request without a
/// body is done here, with no future to build.
pub(crate) fn begin_body(
    rbuf: &mut BytesMut,
    framing: BodyFraming,
    expect_continue: bool,
    ctx: &ConnContext,
) -> Result<Begun, Refused> {
    if let Some(why) = over_limit_post(&framing, ctx.limit_post) {
        return Err(Refused {
            status: Some(413),
            why,
        });
    }
    let (body, pump) = BodyPump::start(framing, expect_continue, rbuf).map_err(|e| Refused {
        status: Some(400),
        why: e.to_string(),
    })?;
    if ctx.limit_post > 0 && body.buffered_len() > ctx.limit_post {
        // A chunked body that came whole with its head.
        return Err(Refused {
            status: Some(413),
            why: format!(
                "chunked body over the limit of {} bytes (--limit-post)",
                ctx.limit_post
            ),
        });
    }
    Ok(match pump {
        Some(pump) if ctx.spool.receives(pump.remaining()) => Begun::Receive(body, pump),
        Some(mut pump) => {
            pump.set_timeout(ctx.timeouts.body);
            pump.set_limit(ctx.limit_post, body.buffered_len());
            Begun::Ready(body, Some(pump))
        }
        None => Begun::Ready(body, None),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body_spool::SpoolConfig;

    /// Pieces handed out one by one, then (if `stall`) a wait forever.
    struct Scripted {
        pieces: Vec<&'static [u8]>,
        stall: bool,
    }

    impl BodySource for Scripted {
        async fn next_piece(&mut self) -> Result<Option<Bytes>, BodyError> {
            if self.pieces.is_empty() {
                if self.stall {
                    std::future::pending::<()>().await;
                }
                return Ok(None);
            }
            Ok(Some(Bytes::from_static(self.pieces.remove(0))))
        }
    }

    #[tokio::test]
    async fn a_source_is_received_whole_into_the_spool() {
        let mut source = Scripted {
            pieces: vec![b"hello ", b"world"],
            stall: false,
        };
        let mut spool = BodySpool::new(&SpoolConfig::default());
        let filled = fill(&mut source, &mut spool, Duration::from_secs(1)).await;
        assert_eq!(filled, Ok(()));
        assert_eq!(spool.len(), 11);
    }

    #[tokio::test]
    async fn a_source_that_stalls_times_out_after_the_body_timeout() {
        let mut source = Scripted {
            pieces: vec![b"ab"],
            stall: true,
        };
        let mut spool = BodySpool::new(&SpoolConfig::default());
        let started = tokio::time::Instant::now();
        let filled = fill(&mut source, &mut spool, Duration::from_millis(50)).await;
        assert_eq!(filled, Err(BodyError::TimedOut(Duration::from_millis(50))));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(spool.len(), 2);
    }

    #[tokio::test]
    async fn a_source_growing_past_the_spool_maximum_is_too_large() {
        let mut source = Scripted {
            pieces: vec![b"0123456789", b"0123456789"],
            stall: false,
        };
        let config = SpoolConfig {
            max: 15,
            ..SpoolConfig::default()
        };
        let mut spool = BodySpool::new(&config);
        let filled = fill(&mut source, &mut spool, Duration::from_secs(1)).await;
        assert_eq!(filled, Err(BodyError::TooLarge(15)));
    }

    #[test]
    fn only_an_announced_length_over_limit_post_is_refused_up_front() {
        assert!(over_limit_post(&BodyFraming::Length(11), 10).is_some());
        assert!(over_limit_post(&BodyFraming::Length(10), 10).is_none());
        assert!(over_limit_post(&BodyFraming::Chunked, 10).is_none());
        assert!(over_limit_post(&BodyFraming::Length(11), 0).is_none());
    }
}
