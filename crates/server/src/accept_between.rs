//! A new connection taken between two long requests of a busy worker.
//!
//! The accept loop is a task like any other: under keep-alive load it sees
//! the listener's readiness only when the runtime polls its I/O driver,
//! which it does once the run queue is empty, and it then runs behind
//! every connection woken at that poll. With Flask (some 100-200 µs a
//! request, run in place) and 32 always-ready keep-alive connections per
//! worker, that is a whole round of requests (3-6 ms of CPU, several times
//! that on a shared machine) before a new client is even accepted, and a
//! deferral to a sibling (`accept_board.rs`) waited for the sibling's round
//! as well (docs/design-notes.md §16, "A new connection during keep-alive
//! load").
//!
//! So a connection whose exchange took long enough to yield (`conn.rs`,
//! `FAIR_SHARE`) first looks at this worker's listeners (one `poll()`
//! without waiting, about 1 % of such a request) and, if a connection
//! waits there and the accept board does not leave it to a sibling, takes
//! it at once and serves its first request in place, exactly as the accept
//! loop would (`serve::spawn_connection`). A connection left to a sibling
//! is taken anyway once it has been seen waiting for `DEFER_AT_MOST` (the
//! first sighting is shared with the accept loop), so that bound now holds
//! between two requests, not only at the end of a round.
//!
//! The listeners are registered per thread (a worker's runtime is one
//! thread: every accept loop and connection of a worker runs on it) by
//! their accept loops, for as long as those run; nothing is registered
//! where no accept loop runs (unit tests driving a connection directly).
//! One connection is taken per look, and a connection served in place from
//! here does not look again (no nesting).

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::accept_board::{DEFER_AT_MOST, Turn};
use crate::accept_socket::{accept_connection, has_pending_connection, queued_connections};
use crate::conn::ConnContext;

/// One listener of this worker, as its accept loop registered it.
pub(crate) struct Door {
    fd: RawFd,
    unix: bool,
    ctx: Arc<ConnContext>,
    turn: Option<Arc<Turn>>,
    /// When a connection waiting here was first left to a sibling (by the
    /// accept loop or between requests); cleared once one is taken or the
    /// queue is seen empty. (Only this worker's thread uses it: the lock
    /// is never contended; it makes the accept loop's future `Send`.)
    left_since: Mutex<Option<Instant>>,
    /// False once the accept loop ended (its descriptor may be closed).
    open: AtomicBool,
}

impl Door {
    /// When the connection waiting now was first left to a sibling (now,
    /// if it was not).
    pub(crate) fn left_since(&self, now: Instant) -> Instant {
        *self
            .left_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(now)
    }

    /// A connection was taken here, or none waits: the next one starts a
    /// fresh deferral.
    pub(crate) fn clear_left(&self) {
        *self.left_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// True if the connection waiting here may still be left to a sibling
    /// (the board says so and it has been left for less than `DEFER_AT_MOST`).
    fn leave_to_sibling(&self, now: Instant) -> bool {
        let Some(turn) = &self.turn else {
            return false;
        };
        let fd = self.fd;
        turn.should_defer(|| queued_connections(fd).is_some_and(|n| n > 1))
            && now.duration_since(self.left_since(now)) < DEFER_AT_MOST
    }
}

thread_local! {
    /// This thread's (worker's) listeners.
    static DOORS: RefCell<Vec<Arc<Door>>> = const { RefCell::new(Vec::new()) };
    /// True while a connection taken here is served in place.
    static TAKING: Cell<bool> = const { Cell::new(false) };
}

/// A listener registered for as long as its accept loop holds this.
pub(crate) struct Registered(Arc<Door>);

impl Registered {
    /// Register a listener (`fd`, open for as long as this is held).
    pub(crate) fn new(
        fd: RawFd,
        unix: bool,
        ctx: Arc<ConnContext>,
        turn: Option<Arc<Turn>>,
    ) -> Registered {
        let door = Arc::new(Door {
            fd,
            unix,
            ctx,
            turn,
            left_since: Mutex::new(None),
            open: AtomicBool::new(true),
        });
        DOORS.with(|d| d.borrow_mut().push(door.clone()));
        Registered(door)
    }

    /// The listener's shared state (the accept loop's view).
    pub(crate) fn door(&self) -> &Door {
        &self.0
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.open.store(false, Ordering::Relaxed);
        DOORS.with(|d| d.borrow_mut().retain(|door| !Arc::ptr_eq(door, &self.0)));
    }
}

/// Clears [`TAKING`] when dropped (a panic in the connection included).
struct Taking;

impl Drop for Taking {
    fn drop(&mut self) {
        TAKING.with(|t| t.set(false));
    }
}

/// Take one connection waiting on one of this worker's listeners, if any
/// and if it is this worker's to take, and serve it in place (or as a task
/// of its own if it has to wait). Call between two requests of a busy
/// connection.
pub(crate) fn take_waiting() {
    if TAKING.with(Cell::get) {
        return;
    }
    let count = DOORS.with(|d| d.borrow().len());
    for i in 0..count {
        let Some(door) = DOORS.with(|d| d.borrow().get(i).cloned()) else {
            return;
        };
        if take_from(&door) {
            return;
        }
    }
}

/// True if a connection was taken from `door`.
fn take_from(door: &Door) -> bool {
    let ctx = &door.ctx;
    if !door.open.load(Ordering::Relaxed)
        || *ctx.shutdown.borrow()
        || ctx.gate.as_ref().is_some_and(|g| !g.has_room())
    {
        return false;
    }
    if !has_pending_connection(door.fd) {
        door.clear_left();
        return false;
    }
    if door.leave_to_sibling(Instant::now()) {
        return false;
    }
    // Any failure (a sibling took it first, out of descriptors) is left to
    // the accept loop, which reports and paces them.
    let Ok((conn, peer)) = accept_connection(door.fd, door.unix) else {
        return false;
    };
    door.clear_left();
    if let Some(t) = &door.turn {
        t.count_accept();
    }
    if let Some(held) = ctx.open.admit(conn, &ctx.listener) {
        TAKING.with(|t| t.set(true));
        let _taking = Taking;
        crate::serve::spawn_connection(held, peer, ctx);
    }
    true
}
