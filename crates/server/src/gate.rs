//! The accept gate of a worker with blocking acceptors: the acceptor takes
//! a new connection only while the worker has room (fewer busy slots than
//! Python threads), so a worker that is stuck in a slow request leaves new
//! connections in the listen queue for its idle siblings, as uWSGI's
//! workers do. A connection holds a slot from accept until its first
//! request is answered; every later request holds one while it runs.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    busy: usize,
    stopped: bool,
    /// Acceptors waiting for room: a freed slot wakes one only if any wait
    /// (a condition variable's notify is a system call even with no waiter).
    waiting: usize,
}

/// Shared between the acceptor threads and the connections of a worker.
pub(crate) struct Gate {
    capacity: usize,
    state: Mutex<State>,
    room: Condvar,
}

/// One busy slot; freed when dropped.
pub(crate) struct Slot {
    gate: Arc<Gate>,
}

impl Gate {
    pub(crate) fn new(capacity: usize) -> Arc<Gate> {
        Arc::new(Gate {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            room: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Block until a slot is free; false once the gate is stopped.
    ///
    /// A full worker still takes a connection that has waited in the listen
    /// queue across two checks `check` apart (`pending` says whether one
    /// waits): when every worker is busy, someone must take it, or new
    /// clients would starve behind busy keep-alive connections.
    pub(crate) fn wait_for_room(
        &self,
        check: std::time::Duration,
        pending: &dyn Fn() -> bool,
    ) -> bool {
        let mut state = self.lock();
        let mut seen_waiting = false;
        while state.busy >= self.capacity && !state.stopped {
            state.waiting += 1;
            let (next, timeout) = self
                .room
                .wait_timeout(state, check)
                .unwrap_or_else(|p| p.into_inner());
            state = next;
            state.waiting -= 1;
            if timeout.timed_out() && state.busy >= self.capacity && !state.stopped {
                drop(state);
                let waiting = pending();
                if waiting && seen_waiting {
                    return true;
                }
                seen_waiting = waiting;
                state = self.lock();
            }
        }
        !state.stopped
    }

    /// Take a slot (never blocks).
    pub(crate) fn enter(self: &Arc<Self>) -> Slot {
        self.lock().busy += 1;
        Slot { gate: self.clone() }
    }

    /// No more accepting: wakes waiting acceptors so they can exit.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.room.notify_all();
    }

    #[cfg(test)]
    fn is_stopped(&self) -> bool {
        self.lock().stopped
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        state.busy = state.busy.saturating_sub(1);
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.gate.room.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn gate_blocks_at_capacity_and_reopens_when_a_slot_is_freed() {
        let gate = Gate::new(1);
        let slot = gate.enter();
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.wait_for_room(Duration::from_millis(10), &|| false))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a full gate must hold the acceptor");
        drop(slot);
        assert!(
            waiter.join().expect("thread"),
            "room after the slot is freed"
        );
    }

    #[test]
    fn full_gate_lets_a_long_waiting_connection_in() {
        let gate = Gate::new(1);
        let _slot = gate.enter();
        assert!(gate.wait_for_room(Duration::from_millis(5), &|| true));
    }

    #[test]
    fn stopped_gate_releases_waiters_with_false() {
        let gate = Gate::new(1);
        let _slot = gate.enter();
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.wait_for_room(Duration::from_millis(10), &|| false))
        };
        gate.stop();
        assert!(!waiter.join().expect("thread"));
        assert!(gate.is_stopped());
    }
}
