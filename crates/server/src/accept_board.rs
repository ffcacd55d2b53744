//! Turn-taking between worker processes that accept on the same listeners.
//!
//! Every idle worker's event loop is woken for a new connection (epoll on a
//! shared listener), and the one the scheduler runs first would win every
//! race: with light traffic one worker would take everything. The blocking
//! acceptor threads this replaces got an even spread from the kernel's FIFO
//! of blocked `accept()` callers, at the price of a thread hand-off per
//! connection. This board gives the same order without the thread: each
//! worker publishes, in memory shared by the process tree, whether it is
//! idle (waiting for a connection with room for one), how many
//! connections it has accepted and how many it holds open; a woken worker
//! that holds [`OPEN_MARGIN`] more open connections than an idle live
//! sibling, or about as many and is [`LEAD`] accepts ahead, defers to it
//! (keep-alive clients that connect in a burst spread by what each worker
//! holds). The sibling was woken too
//! and takes the connection; if it has not after [`DEFER_AT_MOST`] (it just
//! got busy), the deferring worker takes it. Under load the busy workers
//! are out of the race (the accept gate) and the counts stay close, so
//! deferring is rare; it is what keeps light, sequential traffic even.
//!
//! The mapping is made once in the process that binds the listeners, before
//! any fork, so every worker forked from it shares it. Reading it costs no
//! system call; a sibling's liveness is checked (`kill(pid, 0)`) only when
//! deferring to it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Workers that can take turns (more share the listeners without turns).
const SEATS: usize = 256;

/// Longest a worker leaves a pending connection to an older sibling (a
/// woken process can take a millisecond or two to run on a busy machine).
pub(crate) const DEFER_AT_MOST: Duration = Duration::from_millis(2);

/// How many accepts ahead of an idle sibling a worker may get before it
/// leaves the next connection to that sibling.
const LEAD: u64 = 2;

/// Connections more than an idle sibling holds open that make a worker
/// leave the next connection to it (keep-alive clients that connect in a
/// burst spread by what each worker holds, not by accepts alone).
const OPEN_MARGIN: u64 = 2;

/// One worker's published state (a cache line of its own: a worker writes
/// its seat on every accept and close, its siblings only read it).
#[derive(Default)]
#[repr(C, align(64))]
struct Seat {
    /// The worker's pid; 0 for a free seat.
    pid: AtomicU32,
    /// Since when the worker waits for a connection with room for one
    /// (CLOCK_MONOTONIC, ns); 0 while it is busy.
    idle_since: AtomicU64,
    /// Connections the worker accepted (a new worker starts level with
    /// the busiest live sibling).
    accepts: AtomicU64,
    /// Connections the worker holds open now (`worker_conns.rs` keeps it).
    open: AtomicU64,
}

struct Board {
    seats: &'static [Seat],
}

static BOARD: OnceLock<Option<Board>> = OnceLock::new();

/// This process's seat, once it took one (`usize::MAX`: none).
static MY_SEAT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// True while this process's accept loop waits for a connection.
static WAITING: AtomicBool = AtomicBool::new(false);

/// This worker is busy (an app call runs on its event loop's thread, which
/// its accept loop cannot see): siblings must not wait for it until
/// [`mark_done`].
pub(crate) fn mark_busy() {
    if let Some(seat) = my_seat() {
        seat.idle_since.store(0, Ordering::Relaxed);
    }
}

/// The app call is over: idle again if the accept loop is waiting.
pub(crate) fn mark_done() {
    if let Some(seat) = my_seat()
        && WAITING.load(Ordering::Relaxed)
    {
        seat.idle_since
            .store(monotonic_ns().max(1), Ordering::Relaxed);
    }
}

fn my_seat() -> Option<&'static Seat> {
    let seat = MY_SEAT.load(Ordering::Relaxed);
    match BOARD.get() {
        Some(Some(board)) => board.seats.get(seat),
        _ => None,
    }
}

/// Make the shared board, if not made yet. Call before forking workers
/// (binding a listener does); without it, workers accept without turns.
pub(crate) fn share() {
    BOARD.get_or_init(map_board);
}

fn map_board() -> Option<Board> {
    let bytes = std::mem::size_of::<Seat>() * SEATS;
    // SAFETY: an anonymous shared mapping of `bytes` zeroed bytes; never unmapped.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: the mapping is zeroed, page-aligned and lives for the process;
    // an all-zero `Seat` is a valid value.
    let seats = unsafe { std::slice::from_raw_parts(ptr.cast::<Seat>(), SEATS) };
    Some(Board { seats })
}

/// This worker's seat on the board; freed when dropped.
pub(crate) struct Turn {
    seat: usize,
    board: &'static Board,
}

impl Turn {
    /// Take a free seat for this process, if there is a board and a seat.
    pub(crate) fn take() -> Option<Turn> {
        let board = BOARD.get()?.as_ref()?;
        let pid = std::process::id();
        for (i, seat) in board.seats.iter().enumerate() {
            let holder = seat.pid.load(Ordering::Relaxed);
            let free = holder == 0 || (holder != pid && !alive(holder));
            if free
                && seat
                    .pid
                    .compare_exchange(holder, pid, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                seat.idle_since.store(0, Ordering::Relaxed);
                let level = board
                    .seats
                    .iter()
                    .filter(|s| s.pid.load(Ordering::Relaxed) != 0)
                    .map(|s| s.accepts.load(Ordering::Relaxed))
                    .max()
                    .unwrap_or(0);
                seat.accepts.store(level, Ordering::Relaxed);
                seat.open.store(0, Ordering::Relaxed);
                MY_SEAT.store(i, Ordering::Relaxed);
                return Some(Turn { seat: i, board });
            }
        }
        None
    }

    fn mine(&self) -> &Seat {
        &self.board.seats[self.seat]
    }

    /// Publish whether this worker waits for a connection with room for
    /// one (the time it started waiting is kept while it stays idle).
    pub(crate) fn set_idle(&self, idle: bool) {
        WAITING.store(idle, Ordering::Relaxed);
        let seat = &self.mine().idle_since;
        if !idle {
            seat.store(0, Ordering::Relaxed);
        } else if seat.load(Ordering::Relaxed) == 0 {
            seat.store(monotonic_ns().max(1), Ordering::Relaxed);
        }
    }

    /// Where this worker publishes how many connections it holds open.
    pub(crate) fn open_counter(&self) -> &'static AtomicU64 {
        &self.board.seats[self.seat].open
    }

    /// Record an accept.
    pub(crate) fn accepted(&self) {
        self.mine().accepts.fetch_add(1, Ordering::Relaxed);
        self.set_idle(false);
    }

    /// True if an idle live sibling holds `OPEN_MARGIN` connections fewer
    /// than this worker or, holding about as many, is `LEAD` accepts
    /// behind. A deferring worker stays idle for the others: were it not,
    /// a sibling would have nobody to leave connections to and would take
    /// a whole burst while this one waits (docs/design-notes.md §2). Two
    /// workers can wait for each other only until a new connection
    /// arrives (the accept loop looks again then) or `DEFER_AT_MOST`.
    pub(crate) fn should_defer(&self) -> bool {
        let me = self.mine();
        let (accepts, open) = (
            me.accepts.load(Ordering::Relaxed),
            me.open.load(Ordering::Relaxed),
        );
        let older = self.board.seats.iter().enumerate().find(|(i, seat)| {
            *i != self.seat
                && seat.pid.load(Ordering::Relaxed) != 0
                && seat.idle_since.load(Ordering::Relaxed) != 0
                && behind(
                    (seat.open.load(Ordering::Relaxed), open),
                    (seat.accepts.load(Ordering::Relaxed), accepts),
                )
        });
        match older {
            None => false,
            Some((_, seat)) => {
                let pid = seat.pid.load(Ordering::Relaxed);
                if alive(pid) {
                    return true;
                }
                // A worker killed in its seat: free the seat.
                let _ = seat
                    .pid
                    .compare_exchange(pid, 0, Ordering::SeqCst, Ordering::Relaxed);
                false
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        MY_SEAT.store(usize::MAX, Ordering::Relaxed);
        let seat = self.mine();
        seat.idle_since.store(0, Ordering::Relaxed);
        let _ =
            seat.pid
                .compare_exchange(std::process::id(), 0, Ordering::SeqCst, Ordering::Relaxed);
    }
}

/// True if a sibling with `(open, accepts)` of `(its, mine)` should get
/// the next connection: it holds `OPEN_MARGIN` fewer open or, within that
/// margin, is `LEAD` accepts behind. Of two workers at most one is behind
/// the other.
fn behind((its_open, my_open): (u64, u64), (its_accepts, my_accepts): (u64, u64)) -> bool {
    its_open + OPEN_MARGIN <= my_open
        || (its_open.abs_diff(my_open) < OPEN_MARGIN && its_accepts + LEAD <= my_accepts)
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec (a vDSO call, no system call).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_board() -> &'static Board {
        share();
        match BOARD.get() {
            Some(Some(board)) => board,
            _ => panic!("no shared board"),
        }
    }

    /// A seat held by another live process (pid 1 always exists).
    fn sibling(board: &Board, accepts: u64, idle: bool) -> usize {
        let Some(i) = board.seats.iter().position(|s| {
            s.pid
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        }) else {
            panic!("no free seat");
        };
        board.seats[i]
            .idle_since
            .store(u64::from(idle), Ordering::Relaxed);
        board.seats[i].accepts.store(accepts, Ordering::Relaxed);
        i
    }

    #[test]
    fn a_worker_ahead_of_an_idle_sibling_defers_to_it_then_takes_its_turn() {
        let board = test_board();
        let Some(me) = Turn::take() else {
            panic!("no seat")
        };
        let base = me.mine().accepts.load(Ordering::Relaxed);
        let other = sibling(board, base, true);
        me.set_idle(true);
        me.accepted();
        assert!(!me.should_defer(), "one ahead: still our turn");
        me.set_idle(true);
        me.accepted();
        me.set_idle(true);
        assert!(me.should_defer(), "two ahead of an idle sibling: its turn");
        assert_ne!(
            me.mine().idle_since.load(Ordering::Relaxed),
            0,
            "a deferring worker stays idle: its sibling may leave connections to it"
        );
        board.seats[other].idle_since.store(0, Ordering::Relaxed);
        assert!(!me.should_defer(), "a busy sibling is not waited for");
        board.seats[other].idle_since.store(1, Ordering::Relaxed);
        board.seats[other]
            .accepts
            .store(base + 2, Ordering::Relaxed);
        assert!(!me.should_defer(), "the sibling caught up: our turn");
        board.seats[other].pid.store(0, Ordering::Relaxed);
    }

    #[test]
    fn a_worker_holding_more_open_connections_defers_whatever_the_accepts() {
        assert!(behind((3, 5), (10, 0)), "two fewer open: its turn");
        assert!(
            !behind((4, 5), (10, 0)),
            "one fewer open, more accepts: ours"
        );
        assert!(!behind((5, 3), (0, 10)), "more open: never its turn");
        assert!(
            behind((4, 5), (0, 2)),
            "as many open, two accepts behind: its"
        );
        assert!(!behind((4, 5), (1, 2)), "one accept behind: ours");
    }

    #[test]
    fn of_two_workers_at_most_one_defers_to_the_other() {
        for a in 0..6u64 {
            for b in 0..6u64 {
                for x in 0..6u64 {
                    for y in 0..6u64 {
                        assert!(
                            !(behind((a, b), (x, y)) && behind((b, a), (y, x))),
                            "open {a}/{b}, accepts {x}/{y}: both would wait"
                        );
                    }
                }
            }
        }
    }
}
