//! Turn-taking between worker processes that accept on the same listeners.
//!
//! Every idle worker's event loop is woken for a new connection (epoll on a
//! shared listener), and the one the scheduler runs first would win every
//! race: with light traffic one worker would take everything. The blocking
//! acceptor threads this replaces got an even spread from the kernel's FIFO
//! of blocked `accept()` callers, at the price of a thread hand-off per
//! connection. This board gives the same order without the thread: each
//! worker publishes, in memory shared by the process tree, whether it is
//! idle (waiting for a connection with room for one) or busy and since
//! when, how many connections it has accepted and how many it holds open.
//! A woken worker leaves the connection to a live sibling that is behind
//! ([`leave_to`]): one idle that holds [`OPEN_MARGIN`] fewer connections
//! open, or about as many and [`LEAD`] accepts fewer while its runtime is
//! parked or [`JUST_WOKEN`] (light sequential traffic spreads evenly; one
//! running a round of keep-alive requests is not waited for); or one busy that holds `OPEN_MARGIN` fewer
//! open, while it has been busy only [`BRIEFLY_BUSY`], or up to
//! [`RUNNABLE_AT_MOST`] if the kernel says its event-loop thread is not
//! blocked (it was preempted between an accept and its next wait: on a
//! loaded machine that lasts tens of milliseconds, long enough for the
//! other worker to take a whole burst of keep-alive clients). Each wait is
//! at most [`DEFER_AT_MOST`] per connection: a sibling that does not come
//! back in time (it got busy in a long app call) costs a new connection
//! that much. Under load the busy workers are out of the race (the accept
//! gate) and the counts stay close, so deferring is rare; it is what keeps
//! light, sequential traffic and bursts of keep-alive clients even
//! (docs/design-notes.md §2).
//!
//! The mapping is made once in the process that binds the listeners, before
//! any fork, so every worker forked from it shares it. Reading it costs no
//! system call; a sibling's liveness is checked (`kill(pid, 0)`) only when
//! deferring to one whose state is older than [`FRESH`], and whether it
//! is blocked (`/proc/PID/task/TID/stat`) only when deferring to one busy
//! for more than `BRIEFLY_BUSY`. The turn by accepts alone is not kept
//! while the listener holds more than one connection (one `TCP_INFO`
//! read, only then): the sibling is woken by those arrivals too.
//! One of two workers rests while the other keeps up (`accept_rest.rs`).

#[path = "accept_rest.rs"]
pub(crate) mod rest;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub(crate) use crate::clock::monotonic_ns;

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

/// How long a busy sibling counts as about to take connections again (by
/// the connections it holds open, not by accepts): a worker is busy from an
/// accept until its loop waits again, which is short, unless the scheduler
/// preempts it in between.
const BRIEFLY_BUSY: Duration = Duration::from_millis(5);

/// How long a busy sibling still counts as about to take connections while
/// it is runnable (preempted, or working in the app without blocking): on
/// a loaded machine a worker waits for a core for tens of milliseconds,
/// and the other would take a whole burst of keep-alive clients meanwhile.
/// One that blocks (an app call waiting on I/O or a sleep) or is still busy
/// after this is in a long app call: it is not waited for.
const RUNNABLE_AT_MOST: Duration = Duration::from_millis(100);

/// How long after its runtime woke an idle sibling still counts as about to
/// look at the listener (it was woken by the same connection). One awake
/// for longer, without having parked since, is running a round of ready
/// connections (keep-alive load: the runtime then never parks): it would
/// see the connection only after its round, or between two long requests
/// (accept_between.rs), so the turn by accepts does not wait for it.
const JUST_WOKEN: Duration = Duration::from_millis(1);
const JUST_WOKEN_NS: u64 = JUST_WOKEN.as_nanos() as u64;

/// How recently a sibling must have changed its state to be taken as
/// alive without a `kill(pid, 0)`: a worker killed just after it published
/// is deferred to for at most this long (each wait still ends at
/// `DEFER_AT_MOST`), and the master replaces it meanwhile.
const FRESH: Duration = Duration::from_millis(10);
const FRESH_NS: u64 = FRESH.as_nanos() as u64;

/// One worker's published state (a cache line of its own: a worker writes
/// its seat on every accept and close, its siblings only read it).
#[derive(Default)]
#[repr(C, align(64))]
struct Seat {
    /// The worker's pid; 0 for a free seat.
    pid: AtomicU32,
    /// The thread that runs its event loop (and app calls in place).
    tid: AtomicU32,
    /// Whether the worker waits for a connection with room for one (low
    /// bit set: idle) or is busy (low bit clear), and since when (the rest:
    /// CLOCK_MONOTONIC in ns); 0 for a worker that never said.
    state: AtomicU64,
    /// Connections the worker accepted (a new worker starts level with
    /// the busiest live sibling).
    accepts: AtomicU64,
    /// Connections the worker holds open now (`worker_conns.rs` keeps it).
    open: AtomicU64,
    /// 0 while the worker's runtime is parked (blocked waiting for events)
    /// or never said; else when it last woke (CLOCK_MONOTONIC in ns).
    awake: AtomicU64,
    /// When the worker last accepted (CLOCK_MONOTONIC, ns): a sibling that
    /// accepted just now is taking the connections (`accept_rest.rs`).
    accepted_at: AtomicU64,
}

/// The board's words that belong to no seat (a cache line before them).
#[derive(Default)]
#[repr(C, align(64))]
struct Shared {
    /// The seat (index + 1) of the worker resting (`accept_rest.rs`); 0: none.
    resting: AtomicU32,
}

struct Board {
    shared: &'static Shared,
    seats: &'static [Seat],
}

impl Board {
    /// The most connections any live seat has accepted: where a worker
    /// joining the turns (new, or back from a rest) starts.
    fn busiest_accepts(&self) -> u64 {
        self.taken_seats()
            .map(|(_, s)| s.accepts.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// The seats a worker holds (a pid set), with their index.
    fn taken_seats(&self) -> impl Iterator<Item = (usize, &'static Seat)> + use<> {
        self.seats
            .iter()
            .enumerate()
            .filter(|(_, seat)| seat.pid.load(Ordering::Relaxed) != 0)
    }
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
        seat.become_busy();
    }
}

/// This worker's runtime is about to block waiting for events.
pub(crate) fn runtime_parks() {
    if let Some(seat) = my_seat() {
        seat.awake.store(0, Ordering::Relaxed);
    }
}

/// This worker's runtime woke from a wait for events.
pub(crate) fn runtime_wakes() {
    if let Some(seat) = my_seat() {
        seat.awake.store(monotonic_ns().max(1), Ordering::Relaxed);
    }
}

/// The app call is over: idle again if the accept loop is waiting.
pub(crate) fn mark_done() {
    if let Some(seat) = my_seat()
        && WAITING.load(Ordering::Relaxed)
    {
        seat.become_idle();
    }
}

impl Seat {
    /// Busy from now, if idle (a busy stretch keeps its start; a worker
    /// that never said, or withdrew, stays so until it is idle).
    fn become_busy(&self) {
        let state = self.state.load(Ordering::Relaxed);
        if state != 0 && State::of(state).idle {
            self.state
                .store(State::busy(monotonic_ns()).word(), Ordering::Relaxed);
        }
    }

    /// Idle from now, unless idle already.
    fn become_idle(&self) {
        let state = self.state.load(Ordering::Relaxed);
        if state == 0 || !State::of(state).idle {
            self.state
                .store(State::idle(monotonic_ns()).word(), Ordering::Relaxed);
        }
    }

    /// True if the seat's worker lives (at `now`); a worker killed in its
    /// seat has its seat freed. One that changed its state less than
    /// [`FRESH`] ago is taken as alive without asking the kernel: under
    /// steady traffic that is every deferral, and the `kill(pid, 0)` was a
    /// system call for every other connection (docs/design-notes.md §2).
    fn alive(&self, now: u64) -> bool {
        let since = State::of(self.state.load(Ordering::Relaxed)).since_ns;
        if now.saturating_sub(since) < FRESH_NS {
            return true;
        }
        let pid = self.pid.load(Ordering::Relaxed);
        if alive(pid) {
            return true;
        }
        let _ = self
            .pid
            .compare_exchange(pid, 0, Ordering::SeqCst, Ordering::Relaxed);
        false
    }

    /// True if the seat's event-loop thread is running or waits for a core
    /// (not blocked), as the kernel reports it.
    fn runnable(&self) -> bool {
        let (pid, tid) = (
            self.pid.load(Ordering::Relaxed),
            self.tid.load(Ordering::Relaxed),
        );
        match std::fs::read(format!("/proc/{pid}/task/{tid}/stat")) {
            Ok(stat) => state_of(&stat) == Some(b'R'),
            Err(_) => false,
        }
    }

    fn view(&self) -> View {
        View {
            open: self.open.load(Ordering::Relaxed),
            accepts: self.accepts.load(Ordering::Relaxed),
            state: self.state.load(Ordering::Relaxed),
            awake: self.awake.load(Ordering::Relaxed),
        }
    }
}

/// A worker's state word: idle or busy, since when (ns).
#[derive(Clone, Copy, Debug, PartialEq)]
struct State {
    idle: bool,
    since_ns: u64,
}

impl State {
    fn idle(since_ns: u64) -> State {
        State {
            idle: true,
            since_ns,
        }
    }

    fn busy(since_ns: u64) -> State {
        State {
            idle: false,
            since_ns,
        }
    }

    fn of(word: u64) -> State {
        State {
            idle: word & 1 == 1,
            since_ns: word >> 1,
        }
    }

    /// Never 0 (that is "never said"): a busy state at time 0 reads as 1 ns.
    fn word(self) -> u64 {
        ((self.since_ns.max(1) & (u64::MAX >> 1)) << 1) | u64::from(self.idle)
    }
}

/// What a worker reads of a seat to decide whether to leave a connection to it.
#[derive(Clone, Copy, Debug)]
struct View {
    open: u64,
    accepts: u64,
    state: u64,
    /// When its runtime woke (0: parked).
    awake: u64,
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
    let bytes = std::mem::size_of::<Shared>() + std::mem::size_of::<Seat>() * SEATS;
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
    // an all-zero `Shared` and `Seat` are valid values, and the seats start
    // 64 bytes in (`Shared`'s size and alignment: one cache line).
    let (shared, seats) = unsafe {
        (
            &*ptr.cast::<Shared>(),
            std::slice::from_raw_parts(ptr.cast::<Shared>().add(1).cast::<Seat>(), SEATS),
        )
    };
    Some(Board { shared, seats })
}

/// This worker's seat on the board; freed when dropped.
pub(crate) struct Turn {
    seat: usize,
    board: &'static Board,
    /// What this worker saw at its last look while resting (accept_rest.rs).
    pub(super) looks: rest::Looks,
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
                seat.state.store(0, Ordering::Relaxed);
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                seat.tid
                    .store(u32::try_from(tid).unwrap_or(0), Ordering::Relaxed);
                seat.accepts
                    .store(board.busiest_accepts(), Ordering::Relaxed);
                seat.open.store(0, Ordering::Relaxed);
                seat.awake.store(0, Ordering::Relaxed);
                seat.accepted_at.store(0, Ordering::Relaxed);
                MY_SEAT.store(i, Ordering::Relaxed);
                return Some(Turn {
                    seat: i,
                    board,
                    looks: rest::Looks::default(),
                });
            }
        }
        None
    }

    fn mine(&self) -> &Seat {
        &self.board.seats[self.seat]
    }

    /// The other workers' seats (taken, not this one's), with their index.
    fn siblings(&self) -> impl Iterator<Item = (usize, &'static Seat)> + use<> {
        let me = self.seat;
        self.board.taken_seats().filter(move |(i, _)| *i != me)
    }

    /// Publish whether this worker waits for a connection with room for
    /// one (the time it started waiting is kept while it stays idle).
    pub(crate) fn set_idle(&self, idle: bool) {
        WAITING.store(idle, Ordering::Relaxed);
        if idle {
            self.mine().become_idle();
        } else {
            self.mine().become_busy();
        }
    }

    /// This worker accepts no more (it stops): siblings no longer wait for
    /// it, idle or busy, while it finishes what it holds.
    pub(crate) fn withdraw(&self) {
        self.end_rest();
        WAITING.store(false, Ordering::Relaxed);
        self.mine().state.store(0, Ordering::Relaxed);
    }

    /// Where this worker publishes how many connections it holds open.
    pub(crate) fn open_counter(&self) -> &'static AtomicU64 {
        &self.board.seats[self.seat].open
    }

    /// Record an accept made between two requests (accept_between.rs):
    /// the accept loop still waits, so the idle state is left as it is.
    pub(crate) fn count_accept(&self) {
        self.mine().accepts.fetch_add(1, Ordering::Relaxed);
    }

    /// Record an accept.
    pub(crate) fn accepted(&self) {
        let seat = self.mine();
        seat.accepts.fetch_add(1, Ordering::Relaxed);
        seat.accepted_at.store(monotonic_ns(), Ordering::Relaxed);
        self.set_idle(false);
    }

    /// True if a live sibling should get the next connection rather than
    /// this worker ([`leave_to`]: it holds `OPEN_MARGIN` connections fewer,
    /// idle or only briefly busy, or it is idle, holds about as many and
    /// is `LEAD` accepts behind). A deferring worker stays idle for the
    /// others: were it not, a sibling would have nobody to leave
    /// connections to and would take a whole burst while this one waits
    /// (docs/design-notes.md §2). Two workers can wait for each other only
    /// until a new connection arrives (the accept loop looks again then)
    /// or `DEFER_AT_MOST`.
    /// `crowded` says whether the listener holds more than one connection;
    /// it is asked only when the turn is by accepts alone ([`Leave::IfQuiet`]).
    pub(crate) fn should_defer(&self, crowded: impl Fn() -> bool) -> bool {
        let mine = self.mine().view();
        let now = monotonic_ns();
        let resting = self.board.shared.resting.load(Ordering::Relaxed) as usize;
        self.siblings()
            .any(|(i, seat)| match leave_to(seat.view(), mine, now) {
                // A resting sibling that holds OPEN_MARGIN fewer open (a
                // burst of keep-alive clients): it listens again at its
                // next look (accept_rest.rs), within a PEEK.
                Leave::No if resting == i + 1 => {
                    rest::behind_resting(seat.open.load(Ordering::Relaxed), mine.open)
                        && seat.alive(now)
                }
                Leave::No => false,
                Leave::Yes => seat.alive(now),
                Leave::IfRunnable => seat.alive(now) && seat.runnable(),
                Leave::IfQuiet => !crowded() && seat.alive(now),
            })
    }
}

/// Withdraws its worker from the board when dropped: held by an accept
/// loop, which ends when the worker stops accepting.
pub(crate) struct Withdraw(pub(crate) Option<std::sync::Arc<Turn>>);

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(turn) = &self.0 {
            turn.withdraw();
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.end_rest();
        MY_SEAT.store(usize::MAX, Ordering::Relaxed);
        let seat = self.mine();
        seat.state.store(0, Ordering::Relaxed);
        let _ =
            seat.pid
                .compare_exchange(std::process::id(), 0, Ordering::SeqCst, Ordering::Relaxed);
    }
}

/// Whether a sibling showing `its` should get the next connection rather
/// than a worker showing `mine`, at `now`: if it is idle and [`behind`]
/// (by open connections, or by accepts while it is parked or
/// [`JUST_WOKEN`]); if it is busy and holds
/// `OPEN_MARGIN` fewer connections open, while it has been busy for less
/// than `BRIEFLY_BUSY`, or less than `RUNNABLE_AT_MOST` if it is not
/// blocked (preempted between an accept and its next wait: it will be back
/// as soon as it gets a core). A sibling that never said whether it is idle
/// is not waited for.
fn leave_to(its: View, mine: View, now: u64) -> Leave {
    if its.state == 0 {
        return Leave::No;
    }
    let state = State::of(its.state);
    if state.idle {
        return if its.open + OPEN_MARGIN <= mine.open {
            Leave::Yes
        } else if behind((its.open, mine.open), (its.accepts, mine.accepts))
            && (its.awake == 0 || now.saturating_sub(its.awake) < JUST_WOKEN_NS)
        {
            Leave::IfQuiet
        } else {
            Leave::No
        };
    }
    if its.open + OPEN_MARGIN > mine.open {
        return Leave::No;
    }
    let busy_for = Duration::from_nanos(now.saturating_sub(state.since_ns));
    if busy_for < BRIEFLY_BUSY {
        Leave::Yes
    } else if busy_for < RUNNABLE_AT_MOST {
        Leave::IfRunnable
    } else {
        Leave::No
    }
}

/// Whether to leave the next connection to a sibling.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Leave {
    No,
    /// If it is alive.
    Yes,
    /// If it is alive and its event loop's thread is not blocked.
    IfRunnable,
    /// If it is alive and the listener holds at most one connection (the
    /// turn by accepts, for light traffic: with more queued, the sibling
    /// woken by the same arrivals takes the next one, and leaving this one
    /// would only put this worker to sleep and wake it again).
    IfQuiet,
}

/// The state letter of a `/proc/…/stat` line (after the command's
/// closing parenthesis: the command may hold spaces and parentheses).
fn state_of(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 1..)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

/// True if a sibling with `(open, accepts)` of `(its, mine)` should get
/// the next connection: it holds `OPEN_MARGIN` fewer open or, within that
/// margin, is `LEAD` accepts behind. Of two workers at most one is behind
/// the other.
fn behind((its_open, my_open): (u64, u64), (its_accepts, my_accepts): (u64, u64)) -> bool {
    its_open + OPEN_MARGIN <= my_open
        || (its_open.abs_diff(my_open) < OPEN_MARGIN && its_accepts + LEAD <= my_accepts)
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[cfg(test)]
#[path = "accept_board_tests.rs"]
mod tests;
