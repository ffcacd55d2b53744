//! Handing a response from another thread (a Python thread) to the
//! connection that waits for it, without a system call per response.
//!
//! A plain oneshot channel wakes the runtime through its event fd on every
//! send: one `write(2)` per request on a path that is otherwise a `read`
//! and a `send`. Here the sender puts the finished slot on a queue and
//! wakes the runtime only if it is parked; a busy runtime finds the queue
//! in its `on_thread_park` hook before it would park, and a delivery task
//! wakes each waiting connection locally. A reply made on the runtime's own
//! thread (the app run in place) is taken at once, without the queue.
//!
//! The reply slots not yet answered are the worker's Python work in hand:
//! the accept gate (`gate.rs`) reads their count.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::handler::Response;

#[derive(Default)]
struct SlotState {
    value: Option<Response>,
    /// Filled (or the sender dropped): the future may complete.
    done: bool,
    /// The waiting connection's waker.
    waker: Option<Waker>,
    /// The connection stopped waiting (it went away).
    receiver_gone: bool,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The per-runtime delivery queue.
#[derive(Default)]
pub struct Handoff {
    queue: Mutex<Vec<Arc<Slot>>>,
    /// The runtime is (about to be) parked: a sender must wake it.
    parked: AtomicBool,
    /// The delivery task's waker.
    pump: Mutex<Option<Waker>>,
    /// Reply slots whose connection still waits for the response start.
    in_flight: AtomicUsize,
    /// Notified when one of them completes (or is abandoned).
    room: tokio::sync::Notify,
}

impl Handoff {
    pub(crate) fn new() -> Arc<Handoff> {
        Arc::new(Handoff::default())
    }

    /// A new reply slot: the sender goes to the producer, the future to the connection.
    pub fn slot(self: &Arc<Self>) -> (ReplySender, ReplyFuture) {
        let slot = Arc::new(Slot::default());
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        (
            ReplySender {
                slot: Some(slot.clone()),
                handoff: self.clone(),
            },
            ReplyFuture {
                slot,
                handoff: Some(self.clone()),
            },
        )
    }

    /// Requests handed to a producer whose response has not started yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Resolves when a request in hand is answered or abandoned.
    pub(crate) async fn room(&self) {
        self.room.notified().await
    }

    fn answered(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.room.notify_one();
    }

    fn push(&self, slot: Arc<Slot>) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot);
        fence(Ordering::SeqCst);
        if self.parked.swap(false, Ordering::SeqCst) {
            self.wake_pump();
        }
    }

    fn wake_pump(&self) {
        let waker = self.pump.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn has_work(&self) -> bool {
        !self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// The runtime's `on_thread_park` hook: deliver instead of parking when
    /// slots are waiting; otherwise let senders know they must wake us.
    pub(crate) fn before_park(&self) {
        self.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.has_work() {
            self.parked.store(false, Ordering::SeqCst);
            self.wake_pump();
        }
    }

    /// The runtime's `on_thread_unpark` hook.
    pub(crate) fn after_unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    /// The delivery task: completes waiting connections, runs for ever.
    pub(crate) async fn deliver(self: Arc<Self>) {
        std::future::poll_fn(|cx| {
            *self.pump.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            let ready = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
            for slot in ready {
                let waker = {
                    let mut state = slot.lock();
                    state.done = true;
                    state.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            }
            Poll::<()>::Pending
        })
        .await
    }
}

/// The producer's end: `send` the response (dropping it unsent completes
/// the waiting connection with `None`).
pub struct ReplySender {
    slot: Option<Arc<Slot>>,
    handoff: Arc<Handoff>,
}

impl ReplySender {
    /// Deliver the response.
    pub fn send(mut self, response: Response) {
        if let Some(slot) = self.slot.take() {
            slot.lock().value = Some(response);
            self.handoff.push(slot);
        }
    }

    /// Deliver the response from the runtime's own thread (an app run in
    /// place): the waiting connection finds it when it next polls its
    /// future, so the slot skips the delivery queue and the delivery
    /// task's wake-up. Called from any other thread, it would wake the
    /// connection directly (correct, but a cross-thread wake-up: use
    /// [`ReplySender::send`] there).
    pub fn send_here(mut self, response: Response) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut state = slot.lock();
                state.value = Some(response);
                state.done = true;
                state.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// True if the connection no longer waits (the client went away).
    pub fn is_closed(&self) -> bool {
        self.slot.as_ref().is_none_or(|s| s.lock().receiver_gone)
    }
}

impl Drop for ReplySender {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.handoff.push(slot);
        }
    }
}

/// The connection's end: resolves to the response, or `None` if the
/// producer dropped its sender without sending.
pub struct ReplyFuture {
    slot: Arc<Slot>,
    /// Counts this request as work in hand until it resolves.
    handoff: Option<Arc<Handoff>>,
}

impl ReplyFuture {
    fn settle(&mut self) {
        if let Some(handoff) = self.handoff.take() {
            handoff.answered();
        }
    }
}

impl Future for ReplyFuture {
    type Output = Option<Response>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        let mut state = self.slot.lock();
        // A value is complete once set: a reply made on this thread (or one
        // the delivery task has not reached yet) is taken at once.
        if state.done || state.value.is_some() {
            let value = state.value.take();
            drop(state);
            self.settle();
            return Poll::Ready(value);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for ReplyFuture {
    fn drop(&mut self) {
        self.slot.lock().receiver_gone = true;
        self.settle();
    }
}

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod tests;
