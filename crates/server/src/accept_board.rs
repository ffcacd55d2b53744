//! Turn-taking between worker processes that accept on the same listeners.
//!
//! Every idle worker's event loop is woken for a new connection (epoll on a
//! shared listener), and the one the scheduler runs first would win every
//! race: with light traffic one worker would take everything. The blocking
//! acceptor threads this replaces got an even spread from the kernel's FIFO
//! of blocked `accept()` callers, at the price of a thread hand-off per
//! connection. This board gives the same order without the thread: each
//! worker publishes, in memory shared by the process tree, since when it has
//! been idle (waiting for a connection with room for one) and when it last
//! accepted; a woken worker defers to a live sibling that has been idle for
//! at least [`IDLE_FOR`] and accepted longer ago. The sibling was woken too
//! and takes the connection; if it has not after [`DEFER_AT_MOST`] (it just
//! got busy), the deferring worker takes it. Under load no worker stays
//! idle that long, so nobody defers and the busy ones are simply out of the
//! race (the accept gate); turns matter only when traffic is light.
//!
//! The mapping is made once in the process that binds the listeners, before
//! any fork, so every worker forked from it shares it. Reading it costs no
//! system call; a sibling's liveness is checked (`kill(pid, 0)`) only when
//! deferring to it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Workers that can take turns (more share the listeners without turns).
const SEATS: usize = 256;

/// Longest a worker leaves a pending connection to an older sibling.
pub(crate) const DEFER_AT_MOST: Duration = Duration::from_millis(1);

/// A sibling idle this long is parked in the kernel and wakes at once for a
/// new connection: worth deferring to. One idle for less is in a busy
/// period, where waiting for it would only add latency.
const IDLE_FOR: Duration = Duration::from_millis(2);

/// One worker's published state.
#[derive(Default)]
#[repr(C)]
struct Seat {
    /// The worker's pid; 0 for a free seat.
    pid: AtomicU32,
    /// Since when the worker waits for a connection with room for one
    /// (CLOCK_MONOTONIC, ns); 0 while it is busy.
    idle_since: AtomicU64,
    /// When the worker last accepted (a process-wide monotonic count).
    last_accept: AtomicU64,
}

struct Board {
    seats: &'static [Seat],
    /// Orders accepts across the process tree.
    clock: &'static AtomicU64,
}

static BOARD: OnceLock<Option<Board>> = OnceLock::new();

/// Make the shared board, if not made yet. Call before forking workers
/// (binding a listener does); without it, workers accept without turns.
pub(crate) fn share() {
    BOARD.get_or_init(map_board);
}

fn map_board() -> Option<Board> {
    let bytes = std::mem::size_of::<Seat>() * SEATS + std::mem::size_of::<AtomicU64>();
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
    // an all-zero `Seat` and `AtomicU64` are valid values.
    unsafe {
        let seats = std::slice::from_raw_parts(ptr.cast::<Seat>(), SEATS);
        let clock = &*ptr
            .cast::<u8>()
            .add(std::mem::size_of::<Seat>() * SEATS)
            .cast::<AtomicU64>();
        Some(Board { seats, clock })
    }
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
                seat.last_accept.store(0, Ordering::Relaxed);
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
        let seat = &self.mine().idle_since;
        if !idle {
            seat.store(0, Ordering::Relaxed);
        } else if seat.load(Ordering::Relaxed) == 0 {
            seat.store(monotonic_ns().max(1), Ordering::Relaxed);
        }
    }

    /// Record an accept: this worker goes to the back of the line.
    pub(crate) fn accepted(&self) {
        let now = self.board.clock.fetch_add(1, Ordering::Relaxed) + 1;
        self.mine().last_accept.store(now, Ordering::Relaxed);
        self.set_idle(false);
    }

    /// True if a live sibling, idle for a while, has waited longer for its turn.
    pub(crate) fn should_defer(&self) -> bool {
        let mine = self.mine().last_accept.load(Ordering::Relaxed);
        let now = monotonic_ns();
        let idle_for = IDLE_FOR.as_nanos() as u64;
        let older = self.board.seats.iter().enumerate().find(|(i, seat)| {
            let since = seat.idle_since.load(Ordering::Relaxed);
            *i != self.seat
                && seat.pid.load(Ordering::Relaxed) != 0
                && since != 0
                && now.saturating_sub(since) >= idle_for
                && seat.last_accept.load(Ordering::Relaxed) < mine
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
        let seat = self.mine();
        seat.idle_since.store(0, Ordering::Relaxed);
        let _ =
            seat.pid
                .compare_exchange(std::process::id(), 0, Ordering::SeqCst, Ordering::Relaxed);
    }
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
    fn sibling(board: &Board, last_accept: u64, idle_since: u64) -> usize {
        let Some(i) = board.seats.iter().position(|s| {
            s.pid
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        }) else {
            panic!("no free seat");
        };
        board.seats[i]
            .idle_since
            .store(idle_since, Ordering::Relaxed);
        board.seats[i]
            .last_accept
            .store(last_accept, Ordering::Relaxed);
        i
    }

    #[test]
    fn the_worker_that_accepted_last_defers_to_an_idle_sibling_then_takes_its_turn() {
        let board = test_board();
        let Some(me) = Turn::take() else {
            panic!("no seat")
        };
        me.accepted();
        me.set_idle(true);
        let long_idle = monotonic_ns() - 10 * IDLE_FOR.as_nanos() as u64;
        let other = sibling(board, 0, long_idle);
        assert!(me.should_defer(), "an idle sibling accepted longer ago");
        board.seats[other].idle_since.store(0, Ordering::Relaxed);
        assert!(!me.should_defer(), "a busy sibling is not waited for");
        board.seats[other]
            .idle_since
            .store(monotonic_ns(), Ordering::Relaxed);
        assert!(
            !me.should_defer(),
            "a sibling just back from work is not waited for"
        );
        board.seats[other]
            .idle_since
            .store(long_idle, Ordering::Relaxed);
        board.seats[other].last_accept.store(
            board.clock.fetch_add(1, Ordering::Relaxed) + 1,
            Ordering::Relaxed,
        );
        assert!(
            !me.should_defer(),
            "the sibling accepted after us: our turn"
        );
        board.seats[other].pid.store(0, Ordering::Relaxed);
    }
}
