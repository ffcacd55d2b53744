//! The body of a response begun in place, pulled by the connection: each
//! time the connection wants the next piece it calls the app's iterator
//! once, on its own thread. A Flask response (a Werkzeug `ClosingIterator`)
//! is so finished without a Python thread and the two hand-offs that cost
//! more than the bridge itself, and a generator still streams: a piece is
//! written before the next one is asked for. Between two pieces the body
//! first answers `Pending` once (waking itself at once), so that whatever
//! sits between it and the socket (the compressor, HTTP/2's connection
//! task) sends what it holds before the app is asked again, perhaps for a
//! piece that takes seconds; unless the response's Content-Length is
//! already reached, when nothing more can be sent and the iterator is only
//! asked for its end (a Flask response: one piece, then the end, in one
//! poll).
//!
//! A `next()` that took [`SLOW_NEXT`] or more (a generator that sleeps or
//! waits between pieces) would hold the worker's event loop each time:
//! the rest of such a body goes to the Python thread, which pushes it
//! through a channel the body then reads, as a response begun on that
//! thread would.
//!
//! The app sees one request at a time (`wsgi.multithread` is false): while
//! such a body is unfinished, the worker's [`Lane`] is busy and a request
//! arriving meanwhile waits for it before it runs, in place or on the
//! Python thread. `close()` is called once, when the iterator ends, fails
//! or the connection lets the body go (the client went away).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use portico_server::{BodyStream, PullBody, ResponseBody, StreamItem};
use pyo3::prelude::*;
use pyo3::types::PyIterator;

use crate::respond::{PullStart, close, conclude, consume, report};
use crate::responder::Responder;
use crate::start_response::body_bytes;

/// Whether a pulled body holds the worker's app (requests wait for it).
#[derive(Default)]
pub(crate) struct Lane {
    busy: AtomicBool,
    free: tokio::sync::Notify,
}

impl Lane {
    /// True while a pulled body is unfinished.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Mark the lane busy until the guard is dropped.
    fn take(self: &Arc<Self>) -> LaneGuard {
        self.busy.store(true, Ordering::SeqCst);
        LaneGuard(self.clone())
    }

    /// Resolves once no pulled body is unfinished.
    pub(crate) async fn wait_free(&self) {
        loop {
            let notified = self.free.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_busy() {
                return;
            }
            notified.await;
        }
    }
}

/// Holds the lane busy; frees it (and wakes the waiting requests) when dropped.
pub(crate) struct LaneGuard(Arc<Lane>);

impl Drop for LaneGuard {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::SeqCst);
        self.0.free.notify_waiters();
    }
}

/// A `next()` that took this long hands the rest of the body to the
/// Python thread.
const SLOW_NEXT: Duration = Duration::from_millis(5);

/// Called once when a pulled body is over: the responder back, and
/// whether the app failed (false when the client went away).
pub(crate) type OnEnd = Box<dyn FnOnce(Python<'_>, Responder, bool) + Send>;

/// Gives the rest of a slow body to the Python thread (runs it here if
/// there is none left).
pub(crate) type HandOff = Box<dyn FnOnce(Python<'_>, Rest) + Send>;

/// The rest of a pulled body, to be consumed on the Python thread.
pub(crate) struct Rest {
    iter: Py<PyIterator>,
    result: Py<PyAny>,
    responder: Responder,
    on_end: OnEnd,
    _lane: LaneGuard,
}

impl Rest {
    /// Consume the iterator into the response's channel (waiting for the
    /// connection as needed), close the result, give everything back.
    pub(crate) fn run(self, py: Python<'_>) {
        let Rest {
            iter,
            result,
            responder,
            on_end,
            _lane,
        } = self;
        let start_response = responder.object(py);
        let outcome = consume(py, iter.bind(py).as_any(), start_response);
        let failed = conclude(py, result.bind(py), start_response, outcome);
        drop((iter, result));
        on_end(py, responder, failed);
    }
}

/// What the body still holds while the iterator is open.
struct Open {
    result: Py<PyAny>,
    iter: Option<Py<PyIterator>>,
    responder: Responder,
    on_end: OnEnd,
    hand_off: HandOff,
    _lane: LaneGuard,
}

/// A WSGI response body pulled one `next()` at a time.
struct WsgiPull {
    /// Pieces ready to go (the first one, `write()` data).
    ready: VecDeque<StreamItem>,
    open: Option<Open>,
    /// The response's Content-Length, if it has one.
    length: Option<u64>,
    /// Body bytes handed out so far.
    produced: u64,
    /// A piece went out since the iterator was last asked: let the
    /// layers above send it before asking again.
    yield_first: bool,
    /// The rest, once the Python thread produces it.
    channel: Option<tokio::sync::mpsc::Receiver<StreamItem>>,
}

/// Deliver a response begun in place (`start`) with a pulled body; the
/// lane is busy until the body is over, when `on_end` gets the responder.
pub(crate) fn deliver(
    start: PullStart,
    responder: Responder,
    lane: &Arc<Lane>,
    on_end: OnEnd,
    hand_off: HandOff,
) {
    let PullStart {
        result,
        iter,
        ready,
        reply,
        mut response,
    } = start;
    let length = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"content-length"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse().ok());
    let body = WsgiPull {
        length,
        produced: 0,
        yield_first: false,
        channel: None,
        ready: VecDeque::from(ready),
        open: Some(Open {
            result,
            iter,
            responder,
            on_end,
            hand_off,
            _lane: lane.take(),
        }),
    };
    response.body = ResponseBody::Stream(BodyStream::pull(body));
    // A connection already gone drops the response here, and with it the
    // body, which closes the iterator.
    reply.send_here(response);
}

impl WsgiPull {
    /// Ask the iterator for its next piece (after any `write()` data it
    /// made meanwhile); at its end or on an exception, close it.
    fn pull(&mut self) {
        if self.open.is_none() {
            return;
        }
        let _stop_now = portico_server::InPlaceCall::enter();
        Python::attach(|py| {
            let Some(open) = self.open.as_ref() else {
                return;
            };
            let began = Instant::now();
            let step = match &open.iter {
                Some(iter) => next_piece(py, iter.bind(py)),
                None => Ok(None),
            };
            let slow = began.elapsed() >= SLOW_NEXT;
            let held = open.responder.object(py).borrow_mut().state.take_held();
            self.ready.extend(held);
            let outcome = match step {
                Ok(Some(piece)) => {
                    self.ready.push_back(StreamItem::Data(piece));
                    if slow {
                        self.hand_off(py);
                    }
                    return;
                }
                Ok(None) => Ok(()),
                Err(err) => Err(err),
            };
            if let Some(open) = self.open.take() {
                self.ready.push_back(end(py, open, Some(outcome)));
            }
        });
    }

    /// The iterator is slow: the Python thread takes the rest, and this
    /// body reads it from a channel after the pieces it holds.
    fn hand_off(&mut self, py: Python<'_>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let Open {
            result,
            iter,
            responder,
            on_end,
            hand_off,
            _lane,
        } = open;
        let Some(iter) = iter else {
            // Nothing left to pull (a file): keep it here.
            self.open = Some(Open {
                result,
                iter: None,
                responder,
                on_end,
                hand_off,
                _lane,
            });
            return;
        };
        self.channel = Some(responder.object(py).borrow_mut().state.stream_to_channel());
        hand_off(
            py,
            Rest {
                iter,
                result,
                responder,
                on_end,
                _lane,
            },
        );
    }
}

/// Close the result and give everything back. `outcome`: how the body
/// ended (`None`: the client went away, nothing is reported). Returns
/// `End`, or `Abort` if the iterator or its `close()` raised (logged).
fn end(py: Python<'_>, open: Open, outcome: Option<PyResult<()>>) -> StreamItem {
    let Open {
        result,
        iter,
        responder,
        on_end,
        hand_off: _,
        _lane,
    } = open;
    let client_gone = outcome.is_none();
    if client_gone && let Ok(mut object) = responder.object(py).try_borrow_mut() {
        object.state.client_gone = true;
    }
    let closed = close(py, result.bind(py));
    let failed = match outcome.unwrap_or(Ok(())).and(closed) {
        Ok(()) => false,
        Err(_) if client_gone => false,
        Err(err) => {
            report(py, &err, "the application's response failed");
            true
        }
    };
    drop((iter, result));
    on_end(py, responder, failed);
    if failed {
        StreamItem::Abort
    } else {
        StreamItem::End
    }
}

/// The next non-empty piece, or `None` at the end.
fn next_piece(py: Python<'_>, iter: &Bound<'_, PyIterator>) -> PyResult<Option<bytes::Bytes>> {
    for item in iter {
        let piece = body_bytes(py, &item?)?;
        if !piece.is_empty() {
            return Ok(Some(piece));
        }
    }
    Ok(None)
}

impl PullBody for WsgiPull {
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = &mut *self;
        if this.ready.is_empty() {
            if let Some(channel) = this.channel.as_mut() {
                return channel.poll_recv(cx);
            }
            if std::mem::take(&mut this.yield_first) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.pull();
        }
        let item = this.ready.pop_front();
        let size = match &item {
            Some(StreamItem::Data(data)) => data.len() as u64,
            Some(StreamItem::File { len, .. }) => *len,
            _ => return Poll::Ready(item),
        };
        this.produced += size;
        this.yield_first = this.length.is_none_or(|length| this.produced < length);
        Poll::Ready(item)
    }
}

impl Drop for WsgiPull {
    /// The connection let the body go before its end (the client went
    /// away): close the iterator, unreported, as a finished response would.
    fn drop(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let _stop_now = portico_server::InPlaceCall::enter();
        Python::attach(|py| end(py, open, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => panic!("no runtime: {e}"),
        }
    }

    #[test]
    fn a_free_lane_lets_a_request_through_at_once() {
        let lane = Arc::new(Lane::default());
        runtime().block_on(async {
            let waiting = lane.wait_free();
            tokio::pin!(waiting);
            assert!(futures_poll_once(waiting.as_mut()).await.is_ready());
        });
    }

    #[test]
    fn a_request_waits_until_the_pulled_body_lets_the_lane_go() {
        let lane = Arc::new(Lane::default());
        let guard = lane.take();
        assert!(lane.is_busy());
        runtime().block_on(async {
            let waiting = lane.wait_free();
            tokio::pin!(waiting);
            let early = futures_poll_once(waiting.as_mut()).await;
            assert!(early.is_pending(), "went through a busy lane");
            drop(guard);
            assert!(!lane.is_busy());
            assert!(futures_poll_once(waiting.as_mut()).await.is_ready());
        });
    }

    /// Poll a future once.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut f).poll(cx))).await
    }
}
