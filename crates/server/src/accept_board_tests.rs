//! Tests of accept_board.rs: who leaves a connection to whom (idle or
//! busy siblings, by open connections and accepts), the state word, and
//! reading whether a thread is runnable. The rest's tests are in
//! accept_rest_tests.rs.

use super::*;

/// The tests that hold seats share the process's one board and its statics
/// (`MY_SEAT`, the resting place, `AcceptLoop`'s count): they run one at a
/// time, each on a board emptied of what the last one left.
static BOARD_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The shared board, emptied, held for this test alone until the guard drops.
fn test_board() -> (std::sync::MutexGuard<'static, ()>, &'static Board) {
    let guard = BOARD_TESTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    share();
    let Some(Some(board)) = BOARD.get() else {
        panic!("no shared board")
    };
    for seat in board.seats {
        for word in [
            &seat.state,
            &seat.accepts,
            &seat.open,
            &seat.awake,
            &seat.accepted_at,
        ] {
            word.store(0, Ordering::Relaxed);
        }
        seat.pid.store(0, Ordering::Relaxed);
        seat.tid.store(0, Ordering::Relaxed);
    }
    board.shared.resting.store(0, Ordering::Relaxed);
    MY_SEAT.store(usize::MAX, Ordering::Relaxed);
    (guard, board)
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
    let state = if idle {
        State::idle(monotonic_ns())
    } else {
        State::busy(monotonic_ns())
    };
    board.seats[i].state.store(state.word(), Ordering::Relaxed);
    board.seats[i].accepts.store(accepts, Ordering::Relaxed);
    board.seats[i].awake.store(0, Ordering::Relaxed);
    i
}

#[test]
fn a_worker_ahead_of_an_idle_sibling_defers_to_it_then_takes_its_turn() {
    let (_alone, board) = test_board();
    let Some(me) = Turn::take() else {
        panic!("no seat")
    };
    let base = me.mine().accepts.load(Ordering::Relaxed);
    let other = sibling(board, base, true);
    me.set_idle(true);
    me.accepted();
    assert!(!me.should_defer(|| false), "one ahead: still our turn");
    me.set_idle(true);
    me.accepted();
    me.set_idle(true);
    assert!(
        me.should_defer(|| false),
        "two ahead of an idle sibling: its turn"
    );
    assert!(
        !me.should_defer(|| true),
        "two ahead, but more than one connection queued: the sibling takes the next one"
    );
    assert!(
        State::of(me.mine().state.load(Ordering::Relaxed)).idle,
        "a deferring worker stays idle: its sibling may leave connections to it"
    );
    board.seats[other]
        .state
        .store(State::busy(monotonic_ns()).word(), Ordering::Relaxed);
    assert!(
        !me.should_defer(|| false),
        "a busy sibling is not waited for by accepts"
    );
    board.seats[other]
        .state
        .store(State::idle(monotonic_ns()).word(), Ordering::Relaxed);
    board.seats[other]
        .accepts
        .store(base + 2, Ordering::Relaxed);
    assert!(
        !me.should_defer(|| false),
        "the sibling caught up: our turn"
    );
    board.seats[other].pid.store(0, Ordering::Relaxed);
}

const MS: u64 = 1_000_000;

fn view(open: u64, accepts: u64, state: State) -> View {
    View {
        open,
        accepts,
        state: state.word(),
        awake: 0,
    }
}

#[test]
fn a_sibling_preempted_just_after_an_accept_still_gets_the_burst_it_is_behind_in() {
    let now = 1_000 * MS;
    let mine = view(20, 20, State::idle(now - 5 * MS));
    let at = |open, busy_ms| leave_to(view(open, open, State::busy(now - busy_ms * MS)), mine, now);
    assert_eq!(
        at(17, 1),
        Leave::Yes,
        "busy for 1 ms, 3 fewer open: it will be back at once, leave it the connection"
    );
    assert_eq!(
        at(17, 5),
        Leave::IfRunnable,
        "busy for BRIEFLY_BUSY: waited for only if it waits for a core"
    );
    assert_eq!(at(17, 99), Leave::IfRunnable, "99 ms: still, if runnable");
    assert_eq!(
        at(17, 100),
        Leave::No,
        "busy for RUNNABLE_AT_MOST: in a long app call, not waited for"
    );
    assert_eq!(
        at(19, 1),
        Leave::No,
        "one fewer open: not behind enough to wait"
    );
}

#[test]
fn a_busy_sibling_is_waited_for_by_open_connections_only() {
    let now = 1_000 * MS;
    let mine = view(5, 10, State::idle(now));
    assert_eq!(
        leave_to(view(5, 8, State::idle(now)), mine, now),
        Leave::IfQuiet,
        "idle, as many open, two accepts behind: its turn, unless more are queued"
    );
    assert_eq!(
        leave_to(view(3, 8, State::idle(now)), mine, now),
        Leave::Yes,
        "idle with two fewer open: its turn, however many are queued"
    );
    assert_eq!(
        leave_to(view(5, 8, State::busy(now - MS)), mine, now),
        Leave::No,
        "busy, as many open: light traffic goes to whoever is free"
    );
    let never_said = View {
        state: 0,
        ..view(0, 0, State::idle(now))
    };
    assert_eq!(
        leave_to(never_said, mine, now),
        Leave::No,
        "a worker that never said is not waited for"
    );
}

#[test]
fn the_state_of_a_proc_stat_line_is_read_after_the_command() {
    assert_eq!(state_of(b"123 (portico) R 1 2 3"), Some(b'R'));
    assert_eq!(state_of(b"123 (a) b) (c) S 1 2"), Some(b'S'));
    assert_eq!(state_of(b"123 portico"), None, "no command: no state");
    assert_eq!(state_of(b"123 (portico)"), None);
}

#[test]
fn this_thread_reads_as_runnable_and_a_sleeping_one_does_not() {
    let (_alone, _board) = test_board();
    let Some(me) = Turn::take() else {
        panic!("no seat")
    };
    assert!(me.mine().runnable(), "a thread reading its own state runs");
    let (tx, rx) = std::sync::mpsc::channel();
    let sleeper = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let _ = tx.send(unsafe { libc::gettid() });
        std::thread::sleep(Duration::from_millis(300));
    });
    let Ok(tid) = rx.recv() else { panic!("no tid") };
    std::thread::sleep(Duration::from_millis(50));
    let seat = Seat::default();
    seat.pid.store(std::process::id(), Ordering::Relaxed);
    seat.tid
        .store(u32::try_from(tid).unwrap_or(0), Ordering::Relaxed);
    assert!(!seat.runnable(), "a sleeping thread is blocked");
    seat.tid.store(0, Ordering::Relaxed);
    assert!(!seat.runnable(), "no such thread: not runnable");
    let _ = sleeper.join();
}

#[test]
fn a_state_word_keeps_idleness_and_time_and_is_never_zero() {
    for state in [
        State::idle(0),
        State::busy(0),
        State::idle(123_456_789),
        State::busy(u64::MAX >> 1),
    ] {
        assert_ne!(state.word(), 0, "{state:?}");
        let back = State::of(state.word());
        assert_eq!(back.idle, state.idle, "{state:?}");
        assert_eq!(back.since_ns, state.since_ns.max(1), "{state:?}");
    }
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
                    for (s, t) in [(true, true), (true, false), (false, true), (false, false)] {
                        let now = 100 * MS;
                        let at = |idle| {
                            if idle {
                                State::idle(now - MS)
                            } else {
                                State::busy(now - MS)
                            }
                        };
                        let (one, two) = (view(a, x, at(s)), view(b, y, at(t)));
                        assert!(
                            !(leave_to(one, two, now) != Leave::No
                                && leave_to(two, one, now) != Leave::No),
                            "open {a}/{b}, accepts {x}/{y}, idle {s}/{t}: both would wait"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_withdrawn_worker_stays_out_of_the_turns_until_it_is_idle_again() {
    let seat = Seat::default();
    seat.become_busy();
    assert_eq!(
        seat.state.load(Ordering::Relaxed),
        0,
        "never said: stays so"
    );
    seat.become_idle();
    assert!(State::of(seat.state.load(Ordering::Relaxed)).idle);
    seat.become_busy();
    let busy = seat.state.load(Ordering::Relaxed);
    assert!(!State::of(busy).idle);
    seat.become_busy();
    assert_eq!(
        seat.state.load(Ordering::Relaxed),
        busy,
        "a busy stretch keeps its start"
    );
    seat.state.store(0, Ordering::Relaxed);
    seat.become_busy();
    assert_eq!(
        leave_to(
            seat.view(),
            View {
                open: 9,
                accepts: 9,
                state: 0,
                awake: 0,
            },
            monotonic_ns()
        ),
        Leave::No,
        "an app call after withdrawing does not bring it back"
    );
}

#[test]
fn a_sibling_that_published_just_now_is_alive_without_asking_the_kernel() {
    let (_alone, board) = test_board();
    let other = sibling(board, 0, true);
    let seat = &board.seats[other];
    // a pid no process has: only the freshness of its state keeps it alive
    seat.pid.store(u32::MAX >> 1, Ordering::Relaxed);
    let now = monotonic_ns();
    assert!(seat.alive(now), "changed its state just now");
    assert!(
        !seat.alive(now + 2 * FRESH_NS),
        "quiet for longer than FRESH: the kernel is asked, and it is gone"
    );
    assert_eq!(seat.pid.load(Ordering::Relaxed), 0, "its seat is freed");
}

#[test]
fn the_turn_by_accepts_waits_only_for_a_sibling_that_is_parked_or_just_woke() {
    let now = 1_000 * MS;
    let mine = view(5, 8, State::idle(now));
    let behind = |awake| {
        leave_to(
            View {
                awake,
                ..view(5, 6, State::idle(now))
            },
            mine,
            now,
        )
    };
    assert_eq!(behind(0), Leave::IfQuiet, "parked: it was woken too");
    assert_eq!(
        behind(now - JUST_WOKEN_NS / 2),
        Leave::IfQuiet,
        "just woke: it is about to look at the listener"
    );
    assert_eq!(
        behind(now - 20 * MS),
        Leave::No,
        "awake for 20 ms without parking: in a round of keep-alive requests"
    );
    assert_eq!(
        leave_to(
            View {
                awake: now - 20 * MS,
                ..view(3, 6, State::idle(now))
            },
            mine,
            now
        ),
        Leave::Yes,
        "the turn by open connections (bursts) is kept whatever it does"
    );
}

#[path = "accept_rest_tests.rs"]
mod rest_tests;
