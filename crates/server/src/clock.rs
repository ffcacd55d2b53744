//! The worker's cached monotonic clock, as nginx's `ngx_current_msec`:
//! read once each time the event loop wakes (the runtime's
//! `on_thread_unpark` hook, `serve.rs`) and where a request ends or an app
//! call in place returns ([`refresh`]), and otherwise taken from the cache
//! ([`now`]) by whatever needs a coarse "now": timeouts' deadlines, the
//! idle queue's tickets, the balancer's `fail_timeout`, the pool's ages,
//! `$upstream_response_time` (nginx also reads these from its cached time,
//! updated once per `epoll_wait`). A thread that never refreshed (a Python
//! thread, a test's runtime) reads the real clock every time.
//!
//! Unit tests read tokio's clock instead, uncached, so tests that pause
//! and advance time see it move. [`monotonic_ns`] is the same clock as
//! plain nanoseconds, read every time: what workers publish to each other
//! (the accept board) must be comparable across processes.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

thread_local! {
    static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

#[cfg(not(test))]
fn read() -> Instant {
    Instant::now()
}

#[cfg(test)]
fn read() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Read the clock and cache it for this thread's [`now`]s.
pub fn refresh() -> Instant {
    let t = read();
    if cfg!(not(test)) {
        NOW.with(|c| c.set(Some(t)));
    }
    t
}

/// The time of this thread's last [`refresh`] (the real clock if it never
/// refreshed). At most one event-loop turn old on the worker's thread.
pub fn now() -> Instant {
    NOW.with(Cell::get).unwrap_or_else(read)
}

thread_local! {
    static WALL: Cell<Option<(Instant, SystemTime)>> = const { Cell::new(None) };
}

/// The wall-clock time, read at most once per [`now`]: the same cached
/// instant gives the same wall time (a comparison, no clock read).
pub fn wall() -> SystemTime {
    let at = now();
    WALL.with(|c| match c.get() {
        Some((mono, wall)) if mono == at => wall,
        _ => {
            let wall = SystemTime::now();
            c.set(Some((at, wall)));
            wall
        }
    })
}

/// [`now`] as tokio's `Instant`, for timers' deadlines.
pub fn tokio_now() -> tokio::time::Instant {
    tokio::time::Instant::from_std(now())
}

/// Time since `t` by the cached clock (zero if `t` is after it).
pub fn since(t: Instant) -> Duration {
    now().saturating_duration_since(t)
}

/// CLOCK_MONOTONIC in nanoseconds, read now (not cached): the same clock
/// in every process, for times written where sibling workers read them
/// (the accept board's shared seats); `Instant` is the same clock, opaque.
pub(crate) fn monotonic_ns() -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_is_the_system_time_within_a_second() {
        let before = SystemTime::now();
        let wall = wall();
        let after = SystemTime::now();
        assert!(wall >= before && wall <= after);
    }

    #[tokio::test(start_paused = true)]
    async fn now_follows_the_clock_in_tests() {
        let a = now();
        tokio::time::advance(Duration::from_millis(5)).await;
        assert!(since(a) >= Duration::from_millis(5));
        assert!(refresh() >= a + Duration::from_millis(5));
    }

    #[test]
    fn a_thread_that_never_refreshed_reads_the_real_clock() {
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            std::thread::spawn(now)
                .join()
                .is_ok_and(|t| t >= before + Duration::from_millis(2))
        );
    }
}
