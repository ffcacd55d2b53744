//! An HTTP/2 stream's request body: its DATA frames as a [`BodySource`], so
//! that the body is received before the handler is called by the same step
//! as HTTP/1.1's and uwsgi's (receive.rs: memory, then a temporary file,
//! `client_body_timeout` between two DATA frames, the spool's largest
//! size); or, when the body streams to the handler (`--post-buffering 0`,
//! a length over every limit), the [`Feeder`] that moves it there with the
//! same timeout and `--limit-post`.
//!
//! Window is released as each piece is taken (spooled or handed on), so at
//! most the stream's window plus a few pieces wait in memory.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use tokio::sync::mpsc;

use crate::body::{BodyError, Piece};
use crate::receive::BodySource;

/// The error a stream's receiving half reports, as a body error.
fn body_error(e: &h2::Error) -> BodyError {
    if e.is_reset() || e.is_io() || e.is_go_away() {
        BodyError::Incomplete
    } else {
        BodyError::Io(e.to_string())
    }
}

impl BodySource for RecvStream {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            match self.data().await {
                Some(Ok(data)) => {
                    let _ = self.flow_control().release_capacity(data.len());
                    if !data.is_empty() {
                        return Ok(Some(data));
                    }
                }
                Some(Err(e)) => return Err(body_error(&e)),
                None => return Ok(None),
            }
        }
    }
}

/// How the feeding of a streamed body ended.
pub(super) struct Fed {
    /// The receiving half, when the body did not end: held until the
    /// response is done (see [`feed`]).
    pub held: Option<RecvStream>,
    /// The client's failure that ended it (timed out, too large), which
    /// the stream answers instead of the handler's response.
    pub failed: Option<BodyError>,
}

/// Moves the request body from the stream to the handler; polled beside
/// whatever the stream task waits on.
#[derive(Default)]
pub(super) struct Feeder {
    pub fut: Option<Pin<Box<dyn Future<Output = Fed> + Send>>>,
    /// The receiving half kept after the feeding ended early, so that it is
    /// dropped only after the response (see [`feed`]).
    pub held: Option<RecvStream>,
    /// Why the client's body failed, once the feeding ended on it.
    pub failed: Option<BodyError>,
}

impl Feeder {
    /// A feeder that only holds the receiving half until the response is
    /// done (a body refused without being read).
    pub(super) fn holding(recv: RecvStream) -> Feeder {
        Feeder {
            fut: None,
            held: Some(recv),
            failed: None,
        }
    }

    /// A feeder moving `recv` to the handler's channel `tx`.
    pub(super) fn streaming(
        recv: RecvStream,
        tx: mpsc::Sender<Piece>,
        timeout: Duration,
        limit: u64,
    ) -> Feeder {
        Feeder {
            fut: Some(Box::pin(feed(recv, tx, timeout, limit))),
            held: None,
            failed: None,
        }
    }
}

/// Request body read and discarded after the handler dropped it, while
/// its response is on the way (the client is not stalled meanwhile).
const MAX_DISCARD: u64 = 1024 * 1024;

/// Move the request body from the stream to the handler's channel,
/// releasing window as each piece is handed on; each wait for the client
/// lasts at most `timeout` (`client_body_timeout`), and a body growing past
/// `limit` (0: none; `--limit-post`) fails with `TooLarge`. Once the handler
/// dropped the body, the rest is read and discarded up to [`MAX_DISCARD`];
/// past that the receiving half is handed back to be held until the
/// response is done: dropped before, `h2` would reset the stream with
/// CANCEL ahead of the answer; after, with NO_ERROR (RFC 9113 §8.1), and the
/// client keeps the answer.
async fn feed(mut recv: RecvStream, tx: mpsc::Sender<Piece>, timeout: Duration, limit: u64) -> Fed {
    let mut discarded = 0u64;
    let mut seen = 0u64;
    loop {
        let permit = tx.reserve().await.ok();
        if permit.is_none() && discarded > MAX_DISCARD {
            return Fed {
                held: Some(recv),
                failed: None,
            };
        }
        let next = match tokio::time::timeout(timeout, recv.next_piece()).await {
            Ok(next) => next,
            Err(_) => Err(BodyError::TimedOut(timeout)),
        };
        let next = match next {
            Ok(Some(data)) => {
                seen += data.len() as u64;
                if limit > 0 && seen > limit {
                    Err(BodyError::TooLarge(limit))
                } else {
                    Ok(Some(data))
                }
            }
            other => other,
        };
        match next {
            Ok(Some(data)) => match permit {
                Some(permit) => permit.send(Ok(data)),
                None => discarded += data.len() as u64,
            },
            // The end: dropping the sender ends the body.
            Ok(None) => {
                return Fed {
                    held: None,
                    failed: None,
                };
            }
            Err(e) => {
                if let Some(permit) = permit {
                    permit.send(Err(e.clone()));
                }
                let client_gone = e == BodyError::Incomplete;
                return Fed {
                    held: (!client_gone).then_some(recv),
                    failed: (!client_gone).then_some(e),
                };
            }
        }
    }
}

/// Await `fut` while the request body keeps flowing to the handler.
pub(super) async fn alongside<F: Future>(fut: F, feeder: &mut Feeder) -> F::Output {
    tokio::pin!(fut);
    loop {
        match &mut feeder.fut {
            None => return fut.await,
            Some(f) => tokio::select! {
                biased;
                out = &mut fut => return out,
                fed = f.as_mut() => {
                    feeder.held = fed.held;
                    feeder.failed = fed.failed;
                    feeder.fut = None;
                }
            },
        }
    }
}
