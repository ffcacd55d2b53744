//! Resting: one of two workers stops watching the listeners while its
//! sibling keeps up with the new connections (nginx's accept mutex, turned
//! around: the one that leaves, not the one that takes).
//!
//! With `Connection: close` traffic every new connection woke every idle
//! worker (epoll on a shared listener): two workers each slept and woke
//! per connection or two, where one worker alone took them back to back
//! (docs/design-notes.md §2, fifth and sixth passes). A worker whose
//! sibling is accepting now (an accept less than [`HOT`] ago, not busy for
//! more than [`RESTLESS`], not holding `OPEN_MARGIN` more connections
//! open than this one) and whose listener holds at most [`REST_QUEUE`]
//! connections takes the board's one resting place: it takes its listener
//! out of its epoll set (no wake-up per arrival), shows "not taking
//! connections" on the board (siblings leave none to it), and looks again
//! every [`PEEK`]. It listens again as soon as the sibling is quiet (no
//! accept for `HOT`, or for [`HOLD`] while no connection waits), busy for
//! longer (a long app call: new connections then wait at most about
//! `PEEK + RESTLESS` more), dead or stopping, holds more connections, or
//! the queue stays long for [`CROWDED_LOOKS`] looks in a row (a burst the
//! sibling drains between two looks does not end it). At most one worker rests at a time, so of two workers
//! one always listens; only a worker with one accept loop rests. The
//! listening worker leaves a connection to a resting one that holds
//! `OPEN_MARGIN` fewer open ([`behind_resting`]: a keep-alive burst), which
//! then listens again within a `PEEK`.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::{OPEN_MARGIN, Seat, State, Turn, WAITING, monotonic_ns};

/// How often a resting worker looks at its sibling and the queue.
pub(crate) const PEEK: Duration = Duration::from_millis(1);

/// A sibling that accepted this recently is taking the connections. Short:
/// under load a worker accepts every 30-100 µs; light sequential traffic
/// (a client that connects again after each answer, a millisecond or more
/// apart) must find both workers listening, or the turn by accepts would
/// not spread it (`test_requests_spread_evenly_over_workers`).
pub(super) const HOT: Duration = Duration::from_micros(200);

/// A resting worker goes on resting while its sibling accepted less than
/// this ago, if no connection waits in the queue (none is kept waiting by
/// the rest). Measured (docs/design-notes.md §2, seventh pass): with only
/// `HOT`, 85 % of the rests under `Connection: close` load ended because
/// the sibling had not accepted for 200 µs at the moment of a look (wrk
/// or the sibling preempted by another process), with an empty queue; a
/// rest lasted about 1.4 ms, and the two workers took turns rather than
/// one resting.
const HOLD: Duration = Duration::from_millis(5);

/// The siblings' accepts since the resting worker's last look that show
/// load, for a rest to hold through a pause (`HOLD`). Light sequential
/// traffic (a client that connects again after each answer, a connection
/// a millisecond or more apart) makes fewer: its rest ends at the first
/// pause, so both workers listen and the turn spreads it
/// (`test_requests_spread_evenly_over_workers`); under `Connection: close`
/// load a sibling accepts tens a millisecond.
pub(super) const HOLD_MIN_ACCEPTS: u64 = 4;

/// Consecutive looks that find more connections queued than a rest
/// allows before the rest ends. Behind nginx the connections come in
/// bursts (each nginx worker opens an upstream connection per client
/// request it read in one event-loop round), so the queue holds several at
/// a look even while the listening sibling keeps up, and drains before the
/// next: a queue that stays long for a second look (`PEEK` later) is one
/// the sibling does not keep up with. A burst thus waits at most one more
/// `PEEK` for the second worker.
pub(super) const CROWDED_LOOKS: u32 = 2;

/// A sibling busy longer than this may be in a long app call: do not rest
/// on it (its new connections would wait for it).
const RESTLESS: Duration = Duration::from_millis(1);

/// Connections waiting in the listener's queue above which the resting
/// worker listens again (the sibling is not keeping up).
pub(crate) const REST_QUEUE: u32 = 1;

/// The queue length a resting worker tolerates: [`REST_QUEUE`], or the
/// environment's `PORTICO_REST_QUEUE` (a number, or `off`: never rest), a
/// knob for measuring (`bench/workers_cpu.py`), read once.
fn rest_queue() -> Option<u32> {
    static LIMIT: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| match std::env::var("PORTICO_REST_QUEUE") {
        Ok(v) if v == "off" => None,
        Ok(v) => Some(v.parse().unwrap_or(REST_QUEUE)),
        Err(_) => Some(REST_QUEUE),
    })
}

/// Accept loops with a turn in this process: a worker with several
/// listeners does not rest (the rest is per worker, the queue per listener).
static LOOPS: AtomicUsize = AtomicUsize::new(0);

/// Counts an accept loop while it lives.
pub(crate) struct AcceptLoop;

impl AcceptLoop {
    pub(crate) fn enter() -> AcceptLoop {
        LOOPS.fetch_add(1, Ordering::Relaxed);
        AcceptLoop
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        LOOPS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a resting worker carries from one look to the next.
#[derive(Default)]
pub(crate) struct Looks {
    /// The siblings' accepts at the last look (a rest holds through a
    /// pause only under load: `HOLD_MIN_ACCEPTS`).
    seen_accepts: AtomicU64,
    /// Looks in a row that found the queue longer than the rest allows
    /// (`CROWDED_LOOKS`).
    crowded: AtomicU32,
}

/// What a worker reads of a sibling to decide whether it keeps up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    pub(super) state: u64,
    pub(super) accepted_at: u64,
    pub(super) open: u64,
}

impl Seat {
    fn pace(&self) -> Pace {
        Pace {
            state: self.state.load(Ordering::Relaxed),
            accepted_at: self.accepted_at.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
        }
    }
}

/// True if a sibling showing `its` takes the new connections without this
/// worker (holding `my_open` open), at `now`: it listens (its state is
/// set: not resting, not stopping), accepted less than `window` ago, is idle
/// or busy less than `RESTLESS`, and does not hold `OPEN_MARGIN` more
/// connections open than this worker (it would leave the next ones to
/// this one: the keep-alive spread).
pub(super) fn keeps_up(its: Pace, my_open: u64, now: u64, window: Duration) -> bool {
    if its.state == 0 || now.saturating_sub(its.accepted_at) >= window.as_nanos() as u64 {
        return false;
    }
    let state = State::of(its.state);
    if !state.idle && now.saturating_sub(state.since_ns) >= RESTLESS.as_nanos() as u64 {
        return false;
    }
    my_open + OPEN_MARGIN > its.open
}

/// True if a resting sibling holding `its_open` connections should get the
/// next one rather than a worker holding `my_open`: it holds `OPEN_MARGIN`
/// fewer (it stops resting at its next look, since this worker no longer
/// [`keeps_up`] for it). Without this, a burst of keep-alive clients
/// arriving while one worker rests would all go to the other in the
/// `PEEK` before the resting one looks again.
pub(super) fn behind_resting(its_open: u64, my_open: u64) -> bool {
    its_open + OPEN_MARGIN <= my_open
}

/// True if a worker that last accepted at `accepted_at` did so less than
/// `HOT` before `now`.
pub(super) fn accepting(accepted_at: u64, now: u64) -> bool {
    now.saturating_sub(accepted_at) < HOT.as_nanos() as u64
}

impl Turn {
    fn resting(&self) -> &'static AtomicU32 {
        &self.board.shared.resting
    }

    /// Rest (or go on resting) if a live sibling keeps up and the listener
    /// holds at most `REST_QUEUE` connections (`queued`, asked last: a
    /// system call). True: this worker holds the resting place and shows
    /// no state; the caller stops watching the listener and asks again
    /// after [`PEEK`]. False: listen ([`Turn::end_rest`] if it rested).
    pub(crate) fn rest(&self, queued: impl Fn() -> Option<u32>) -> bool {
        let Some(limit) = rest_queue() else {
            return false;
        };
        if LOOPS.load(Ordering::Relaxed) != 1 {
            return false;
        }
        let me = self.seat as u32 + 1;
        let holder = self.resting().load(Ordering::Relaxed);
        if holder != 0 && holder != me {
            // A worker that died resting leaves its place free.
            let gone = self
                .board
                .seats
                .get(holder as usize - 1)
                .is_none_or(|s| s.pid.load(Ordering::Relaxed) == 0);
            if !gone {
                return false;
            }
        }
        let now = monotonic_ns();
        // To begin a rest this worker must be accepting back to back too
        // (both within HOT: load); one that just lost a race for a
        // connection, or light traffic's turn, must not rest and miss its
        // turn (`test_requests_spread_evenly_over_workers`).
        if holder != me && !accepting(self.mine().accepted_at.load(Ordering::Relaxed), now) {
            return false;
        }
        let my_open = self.mine().open.load(Ordering::Relaxed);
        let sibling_within = |window| {
            self.siblings()
                .any(|(_, seat)| keeps_up(seat.pace(), my_open, now, window) && seat.alive(now))
        };
        // The siblings' accepts since the last look: load, or light traffic.
        let theirs: u64 = self
            .siblings()
            .map(|(_, seat)| seat.accepts.load(Ordering::Relaxed))
            .sum();
        let since_look =
            theirs.saturating_sub(self.looks.seen_accepts.swap(theirs, Ordering::Relaxed));
        // Accepting now: up to `limit` may wait. Going on resting under
        // load, a sibling that paused (up to HOLD) keeps up while nothing
        // waits.
        let allowed = if sibling_within(HOT) {
            limit
        } else if holder == me && since_look >= HOLD_MIN_ACCEPTS && sibling_within(HOLD) {
            0
        } else {
            return false;
        };
        if queued().is_some_and(|n| n > allowed) {
            // A rest that goes on ends on a queue that stays long.
            if holder != me
                || self.looks.crowded.fetch_add(1, Ordering::Relaxed) + 1 >= CROWDED_LOOKS
            {
                return false;
            }
        } else {
            self.looks.crowded.store(0, Ordering::Relaxed);
        }
        if holder != me
            && self
                .resting()
                .compare_exchange(holder, me, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        WAITING.store(false, Ordering::Relaxed);
        self.mine().state.store(0, Ordering::Relaxed);
        true
    }

    /// Give back the resting place, if this worker holds it (the caller
    /// then shows its state again, idle). Its accepts are levelled with
    /// the busiest live sibling's, as a new worker's are: the turn by
    /// accepts (light traffic) would otherwise give it every connection
    /// until it caught up with what its sibling took meanwhile.
    pub(crate) fn end_rest(&self) {
        let me = self.seat as u32 + 1;
        if self
            .resting()
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.looks.crowded.store(0, Ordering::Relaxed);
        self.mine()
            .accepts
            .fetch_max(self.board.busiest_accepts(), Ordering::Relaxed);
    }
}
