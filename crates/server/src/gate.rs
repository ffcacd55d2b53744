//! The accept gate of a worker that shares its listeners with sibling
//! processes: the accept loop takes a new connection only while the worker
//! has Python capacity left, so a worker busy in the app leaves new
//! connections in the listen queue for its idle siblings, as uWSGI's
//! workers do.
//!
//! The gate counts Python work, not connections or requests: the requests
//! handed to a Python thread whose response has not started yet (the
//! reply slots of [`Handoff`]). A connection that has not sent a complete
//! head, a static file, a proxied request or one waiting on an upstream
//! holds nothing, so such a worker keeps accepting.
//!
//! A connection just accepted counts as provisional work until its first
//! bytes are there (or [`FIRST_BYTES_WAIT`] passed), so that the loop does
//! not take a second connection before the first one's request is seen: a
//! sibling would have served it at once.
//!
//! So that new clients never starve when every worker is busy (keep-alive
//! traffic keeps the Python threads full), a full worker still takes a
//! connection that has waited in the listen queue across two checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::handoff::Handoff;

/// How often a full worker looks whether a connection has been left
/// waiting in the listen queue (taken at the second look).
pub(crate) const OVERDUE_CHECK: Duration = Duration::from_millis(5);

/// How long a just-accepted connection counts as work while its first bytes
/// are on the way (TCP_DEFER_ACCEPT makes them already there on TCP; a
/// unix-socket client sends them right after connecting). One that stays
/// silent then holds nothing.
pub(crate) const FIRST_BYTES_WAIT: Duration = Duration::from_millis(5);

/// Shared by the accept loops and the connections of one worker (one runtime).
pub(crate) struct Gate {
    capacity: usize,
    work: Arc<Handoff>,
    stopped: AtomicBool,
    stop_notify: Notify,
    /// Connections accepted whose first bytes are not seen yet.
    provisional: AtomicUsize,
    settled: Notify,
}

/// A just-accepted connection, counted until dropped.
pub(crate) struct Provisional(Arc<Gate>);

impl Drop for Provisional {
    fn drop(&mut self) {
        self.0.provisional.fetch_sub(1, Ordering::SeqCst);
        self.0.settled.notify_one();
    }
}

impl Gate {
    /// A gate open while fewer than `capacity` Python requests are in hand.
    pub(crate) fn new(capacity: usize, work: Arc<Handoff>) -> Arc<Gate> {
        Arc::new(Gate {
            capacity: capacity.max(1),
            work,
            stopped: AtomicBool::new(false),
            stop_notify: Notify::new(),
            provisional: AtomicUsize::new(0),
            settled: Notify::new(),
        })
    }

    /// True while the worker can take Python work.
    pub(crate) fn has_room(&self) -> bool {
        self.work.in_flight() + self.provisional.load(Ordering::SeqCst) < self.capacity
    }

    /// Count a just-accepted connection until its first bytes are seen.
    pub(crate) fn provisional(self: &Arc<Self>) -> Provisional {
        self.provisional.fetch_add(1, Ordering::SeqCst);
        Provisional(self.clone())
    }

    /// Wait until no just-accepted connection is provisional any more.
    pub(crate) async fn settled(&self) {
        while self.provisional.load(Ordering::SeqCst) > 0 {
            self.settled.notified().await;
        }
    }

    /// Wait until there is room (true) or the gate is stopped (false).
    /// `pending` says whether a connection waits in the listen queue: one
    /// seen there at two checks `OVERDUE_CHECK` apart is let in anyway.
    pub(crate) async fn wait_for_room(&self, pending: &(dyn Fn() -> bool + Sync)) -> bool {
        let mut seen_waiting = false;
        // One clock for the overdue checks, not reset by the wake-ups of a
        // busy worker (each answer wakes this loop; a timer made anew each
        // time would never fire while answers come faster than it).
        let mut next_check = tokio::time::Instant::now() + OVERDUE_CHECK;
        loop {
            if self.is_stopped() {
                return false;
            }
            if self.has_room() {
                return true;
            }
            tokio::select! {
                _ = self.work.room() => {}
                _ = self.stop_notify.notified() => {}
                _ = tokio::time::sleep_until(next_check) => {
                    next_check = tokio::time::Instant::now() + OVERDUE_CHECK;
                    let waiting = pending();
                    if waiting && seen_waiting {
                        return !self.is_stopped();
                    }
                    seen_waiting = waiting;
                }
            }
        }
    }

    /// No more accepting: wakes a waiting accept loop so it can end.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop_notify.notify_waiters();
    }

    /// True once [`Gate::stop`] was called.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{ReplyFuture, ReplySender};

    /// A gate of one thread, its Python work, and the one request in hand that fills it.
    fn full_gate() -> (Arc<Gate>, Arc<Handoff>, (ReplySender, ReplyFuture)) {
        let work = Handoff::new();
        let gate = Gate::new(1, work.clone());
        let in_hand = work.slot();
        (gate, work, in_hand)
    }

    #[tokio::test]
    async fn gate_is_full_while_python_work_is_in_hand_and_reopens_when_it_answers() {
        let work = Handoff::new();
        let gate = Gate::new(1, work.clone());
        assert!(gate.has_room());
        let (reply, answer) = work.slot();
        assert!(!gate.has_room(), "one request on one thread fills the gate");
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait_for_room(&|| false).await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "a full gate must hold the accept loop"
        );
        reply.send(crate::handler::Response::plain(200, "OK", "ok"));
        assert!(answer.await.is_some());
        assert!(gate.has_room());
        assert!(
            matches!(waiter.await, Ok(true)),
            "room once the app answered"
        );
    }

    #[test]
    fn an_abandoned_request_gives_its_capacity_back() {
        let (gate, _work, (reply, answer)) = full_gate();
        assert!(!gate.has_room());
        drop(answer);
        assert!(gate.has_room(), "a client that went away holds no capacity");
        drop(reply);
    }

    #[tokio::test]
    async fn a_just_accepted_connection_fills_the_gate_until_its_first_bytes() {
        let work = Handoff::new();
        let gate = Gate::new(1, work.clone());
        let fresh = gate.provisional();
        assert!(!gate.has_room());
        drop(fresh);
        gate.settled().await;
        assert!(gate.has_room(), "a silent connection holds nothing");
    }

    #[tokio::test]
    async fn full_gate_lets_a_long_waiting_connection_in() {
        let (gate, _work, _busy) = full_gate();
        assert!(gate.wait_for_room(&|| true).await);
    }

    #[tokio::test]
    async fn a_worker_answering_faster_than_the_check_still_lets_a_waiting_connection_in() {
        // A saturated worker: one answer every millisecond, and always
        // more work queued behind it (the gate never has room), so the
        // waiter is woken far more often than OVERDUE_CHECK.
        let (gate, work, first) = full_gate();
        let busy = tokio::spawn({
            let work = work.clone();
            async move {
                let mut held = first;
                loop {
                    let next = work.slot();
                    // answered (abandoned): the gate's waiter is woken
                    drop(held);
                    held = next;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        assert!(!gate.has_room());
        let waited =
            tokio::time::timeout(Duration::from_secs(1), gate.wait_for_room(&|| true)).await;
        busy.abort();
        assert!(
            matches!(waited, Ok(true)),
            "the overdue check must fire between the answers"
        );
    }

    #[tokio::test]
    async fn stopped_gate_releases_its_waiter_with_false() {
        let (gate, _work, _busy) = full_gate();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait_for_room(&|| false).await }
        });
        tokio::task::yield_now().await;
        gate.stop();
        assert!(matches!(waiter.await, Ok(false)));
        assert!(gate.is_stopped());
    }
}
