//! Tests of accept_rest.rs: when a worker rests and when it listens again
//! (a sibling that keeps up, pauses, the queue, one resting place). They
//! share accept_board_tests.rs's board and helpers.

use super::*;

/// What the rest tests start from: this test as a worker with one accept
/// loop (so it may rest) and a seat, and an idle live sibling (its index).
/// Bound in this order, they are dropped in reverse: the seat first, the
/// board's lock last.
fn resting_pair() -> (
    std::sync::MutexGuard<'static, ()>,
    rest::AcceptLoop,
    &'static Board,
    Turn,
    usize,
) {
    let (alone, board) = test_board();
    let accept_loop = rest::AcceptLoop::enter();
    let Some(me) = Turn::take() else {
        panic!("no seat")
    };
    let i = sibling(board, 0, true);
    (alone, accept_loop, board, me, i)
}

fn pace(idle: bool, since_ago_ns: u64, accepted_ago_ns: u64, open: u64, now: u64) -> rest::Pace {
    let state = if idle {
        State::idle(now - since_ago_ns)
    } else {
        State::busy(now - since_ago_ns)
    };
    rest::Pace {
        state: state.word(),
        accepted_at: now - accepted_ago_ns,
        open,
    }
}

#[test]
fn a_sibling_that_accepts_now_keeps_up_and_one_quiet_busy_or_stopping_does_not() {
    let now = 1_000_000_000_000;
    let ms = 1_000_000;
    let keeps_up = |sibling, other_open| rest::keeps_up(sibling, other_open, now, rest::HOT);
    // Accepting now, idle or briefly busy: the other worker may rest.
    assert!(keeps_up(pace(true, 10, 20_000, 0, now), 0));
    // Light sequential traffic (an accept a millisecond ago): both listen.
    assert!(!keeps_up(pace(true, 10, ms, 0, now), 0));
    assert!(keeps_up(pace(false, 30_000, 30_000, 1, now), 0));
    // Quiet for a while (light traffic): both listen.
    assert!(!keeps_up(pace(true, 10 * ms, 10 * ms, 0, now), 0));
    // Busy for longer (a long app call): its new connections need the other.
    assert!(!keeps_up(pace(false, 2 * ms, 2 * ms, 0, now), 0));
    // Stopping or resting (no state shown).
    let mut stopped = pace(true, 10, 10, 0, now);
    stopped.state = 0;
    assert!(!keeps_up(stopped, 0));
    // Holding OPEN_MARGIN more connections than the other worker: it would
    // leave the next ones to that one (the keep-alive spread).
    assert!(!keeps_up(pace(true, 10, 10, 5, now), 3));
    assert!(keeps_up(pace(true, 10, 10, 4, now), 3));
}

/// True once `me` begins a rest, both it and its sibling (`sibling_accepts`)
/// having just accepted, an empty queue; tried up to 100 times, since the
/// test thread may be preempted past `HOT` between the accepts and the look.
fn begins_to_rest(me: &Turn, sibling_accepts: &dyn Fn()) -> bool {
    (0..100).any(|_| {
        me.accepted();
        me.set_idle(true);
        sibling_accepts();
        me.rest(|| Some(0))
    })
}

#[test]
fn one_worker_rests_at_a_time_and_a_resting_one_shows_no_state() {
    // A sibling (pid 1, alive) that accepted just now, idle.
    let (_alone, _loop, board, me, i) = resting_pair();
    board.seats[i]
        .accepted_at
        .store(monotonic_ns(), Ordering::Relaxed);
    me.set_idle(true);
    // The queue is long: listen.
    assert!(!me.rest(|| Some(rest::REST_QUEUE + 1)));
    assert!(me.mine().state.load(Ordering::Relaxed) != 0);
    // The sibling keeps up and the queue is short: rest, showing no state.
    let accepting_now = || {
        board.seats[i]
            .accepted_at
            .store(monotonic_ns(), Ordering::Relaxed)
    };
    accepting_now();
    // Not while this worker itself has not accepted just now (light
    // traffic, or a race for a connection it lost).
    me.mine().accepted_at.store(1, Ordering::Relaxed);
    assert!(!me.rest(|| Some(0)));
    // "Now" is within HOT (200 µs): a test thread preempted between the
    // accepts and the look tries again rather than failing.
    let rests = |prepare: &dyn Fn()| {
        (0..100).any(|_| {
            prepare();
            me.rest(|| Some(0))
        })
    };
    assert!(rests(&|| {
        me.accepted();
        me.set_idle(true);
        accepting_now();
    }));
    assert_eq!(me.mine().state.load(Ordering::Relaxed), 0);
    assert_eq!(
        board.shared.resting.load(Ordering::Relaxed),
        me.seat as u32 + 1
    );
    // The sibling, seen from its side, cannot rest while this one does.
    let other = Turn {
        seat: i,
        board,
        looks: rest::Looks::default(),
    };
    me.set_idle(true);
    me.mine()
        .accepted_at
        .store(monotonic_ns(), Ordering::Relaxed);
    assert!(!other.rest(|| Some(0)));
    // A burst of keep-alive clients while this one rests: the sibling,
    // holding OPEN_MARGIN more open, leaves the next one to it, and this
    // one stops resting when it looks again.
    board.seats[i].open.store(OPEN_MARGIN, Ordering::Relaxed);
    board.seats[i]
        .state
        .store(State::idle(monotonic_ns()).word(), Ordering::Relaxed);
    assert!(other.should_defer(|| false));
    me.mine().state.store(0, Ordering::Relaxed);
    board.seats[i]
        .accepted_at
        .store(monotonic_ns(), Ordering::Relaxed);
    assert!(!me.rest(|| Some(0)));
    board.seats[i].open.store(0, Ordering::Relaxed);
    // Going on resting keeps the place; a quiet sibling ends it.
    me.mine().state.store(0, Ordering::Relaxed);
    assert!(rests(&accepting_now));
    board.seats[i].accepted_at.store(1, Ordering::Relaxed);
    assert!(!me.rest(|| Some(0)));
    // The sibling took connections meanwhile: this worker comes back level.
    board.seats[i].accepts.store(1_000_000, Ordering::Relaxed);
    me.end_rest();
    assert_eq!(board.shared.resting.load(Ordering::Relaxed), 0);
    assert!(me.mine().accepts.load(Ordering::Relaxed) >= 1_000_000);
    std::mem::forget(other);
    board.seats[i].accepts.store(0, Ordering::Relaxed);
    board.seats[i].pid.store(0, Ordering::Relaxed);
}

#[test]
fn a_rest_goes_on_through_a_pause_of_the_siblings_accepts_only_while_nothing_waits() {
    let (_alone, _loop, board, me, i) = resting_pair();
    let accepted_ago = |ns: u64| {
        board.seats[i]
            .accepted_at
            .store(monotonic_ns() - ns, Ordering::Relaxed)
    };
    let ms = 1_000_000;
    // A sibling that paused for a millisecond (more than HOT) is not
    // rested on: a rest begins only while both accept back to back.
    me.accepted();
    me.set_idle(true);
    accepted_ago(ms);
    assert!(!me.rest(|| Some(0)));
    // Resting (the test thread may be preempted inside HOT: tried again).
    assert!(begins_to_rest(&me, &|| accepted_ago(0)));
    let load = || {
        board.seats[i]
            .accepts
            .fetch_add(rest::HOLD_MIN_ACCEPTS, Ordering::Relaxed)
    };
    // Under load (the sibling took HOLD_MIN_ACCEPTS since the last look)
    // it pauses for a millisecond: the rest goes on while the queue is
    // empty, and ends as soon as one connection waits.
    load();
    accepted_ago(ms);
    assert!(me.rest(|| Some(0)));
    assert_eq!(
        board.shared.resting.load(Ordering::Relaxed),
        me.seat as u32 + 1
    );
    load();
    accepted_ago(ms);
    // One connection waits: the rest goes on for one look (a burst the
    // sibling may drain meanwhile), and ends if it still waits at the next.
    assert!(me.rest(|| Some(1)));
    load();
    accepted_ago(ms);
    assert!(!me.rest(|| Some(1)));
    // Quiet for longer than HOLD (the load ended): it ends, queue or not.
    accepted_ago(0);
    assert!(me.rest(|| Some(0)));
    load();
    accepted_ago(10 * ms);
    assert!(!me.rest(|| Some(0)));
    // Light traffic (fewer accepts than HOLD_MIN_ACCEPTS since the last
    // look): a pause ends the rest, so both workers take turns again.
    accepted_ago(0);
    assert!(me.rest(|| Some(0)));
    board.seats[i].accepts.fetch_add(1, Ordering::Relaxed);
    accepted_ago(ms);
    assert!(!me.rest(|| Some(0)));
    me.end_rest();
    assert_eq!(board.shared.resting.load(Ordering::Relaxed), 0);
    board.seats[i].pid.store(0, Ordering::Relaxed);
}

#[test]
fn a_rest_ends_on_a_queue_that_stays_long_for_two_looks_not_on_a_burst() {
    let (_alone, _loop, board, me, i) = resting_pair();
    // The sibling under load, accepting now (HOLD_MIN_ACCEPTS since the
    // last look: a test thread preempted past HOT still sees it keep up).
    let sibling_accepts = || {
        board.seats[i]
            .accepts
            .fetch_add(rest::HOLD_MIN_ACCEPTS, Ordering::Relaxed);
        board.seats[i]
            .accepted_at
            .store(monotonic_ns(), Ordering::Relaxed);
    };
    assert!(begins_to_rest(&me, &sibling_accepts));
    let long = rest::REST_QUEUE + 1;
    // A burst queued at one look and drained by the next: resting still.
    for queued in [long, 0, long, 0] {
        sibling_accepts();
        assert!(me.rest(|| Some(queued)), "queue {queued}");
    }
    // Long at two looks in a row: the sibling does not keep up.
    sibling_accepts();
    assert!(me.rest(|| Some(long)));
    sibling_accepts();
    assert!(!me.rest(|| Some(long)));
    me.end_rest();
    assert_eq!(board.shared.resting.load(Ordering::Relaxed), 0);
    // A worker that is not resting does not begin on a long queue.
    me.accepted();
    me.set_idle(true);
    sibling_accepts();
    assert!(!me.rest(|| Some(long)));
    board.seats[i].pid.store(0, Ordering::Relaxed);
}
