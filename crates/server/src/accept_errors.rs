//! What an accept loop does when `accept()` fails: pause briefly, then try
//! again, and log once per episode rather than once per failure. An episode
//! starts at the first failure and ends at the next successful accept, which
//! logs how many calls failed and for how long. Out of descriptors (`EMFILE`,
//! `ENFILE`) is the usual cause: the listen socket stays readable, so without
//! the pause the loop spins and without the episode it logs 20 lines a second.
//!
//! Pure bookkeeping with the clock passed in, so the rules are unit-tested;
//! the accept loop (`accept_loop.rs`) calls it.

use std::io;
use std::time::{Duration, Instant};

/// Pause after a failed `accept()` before the next try: long enough that a
/// worker out of descriptors lets its connections finish (nginx pauses its
/// accept events 500 ms), short enough that recovery is not noticed.
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// While an episode lasts, a reminder with the running count is logged this
/// often, so a stuck worker is still visible in the log.
pub(crate) const EPISODE_REMINDER: Duration = Duration::from_secs(60);

/// The failures of one listener's accept loop.
#[derive(Debug, Default)]
pub(crate) struct AcceptTrouble {
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    started: Instant,
    last_logged: Instant,
    failures: u64,
}

impl AcceptTrouble {
    /// Record a failed `accept()` on `listener`; returns the line to log, if
    /// any (the first failure of an episode, or a reminder).
    pub(crate) fn failed(&mut self, listener: &str, e: &io::Error, now: Instant) -> Option<String> {
        match &mut self.episode {
            None => {
                self.episode = Some(Episode {
                    started: now,
                    last_logged: now,
                    failures: 1,
                });
                Some(format!(
                    "portico: accept() on {listener} failed: {e}{}; pausing accepts, \
                     logged once until they work again",
                    hint(e)
                ))
            }
            Some(ep) => {
                ep.failures += 1;
                if now.duration_since(ep.last_logged) < EPISODE_REMINDER {
                    return None;
                }
                ep.last_logged = now;
                Some(format!(
                    "portico: accept() on {listener} still failing: {e} ({} failures in {} s)",
                    ep.failures,
                    now.duration_since(ep.started).as_secs()
                ))
            }
        }
    }

    /// Record a successful `accept()`; returns the line that ends an episode.
    pub(crate) fn succeeded(&mut self, listener: &str, now: Instant) -> Option<String> {
        let ep = self.episode.take()?;
        Some(format!(
            "portico: accepting on {listener} again after {} failed accept() calls in {:.1} s",
            ep.failures,
            now.duration_since(ep.started).as_secs_f64()
        ))
    }
}

/// What to do about the error, for the errors that have a known remedy.
fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE) => " (out of file descriptors: raise `ulimit -n`)",
        Some(libc::ENFILE) => " (the system is out of file descriptors)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn an_episode_logs_its_first_failure_then_its_end_with_the_count() {
        let mut t = AcceptTrouble::default();
        let t0 = Instant::now();
        let first = t
            .failed(":8000", &emfile(), t0)
            .expect("first failure is logged");
        assert!(first.contains("Too many open files"), "{first}");
        assert!(first.contains("raise `ulimit -n`"), "{first}");
        for i in 1..200 {
            let at = t0 + ACCEPT_PAUSE * i;
            assert_eq!(t.failed(":8000", &emfile(), at), None, "failure {i}");
        }
        let end = t
            .succeeded(":8000", t0 + Duration::from_secs(20))
            .expect("the end of an episode is logged");
        assert_eq!(
            end,
            "portico: accepting on :8000 again after 200 failed accept() calls in 20.0 s"
        );
        assert_eq!(t.succeeded(":8000", t0 + Duration::from_secs(21)), None);
        assert!(
            t.failed(":8000", &emfile(), t0 + Duration::from_secs(22))
                .is_some()
        );
    }

    #[test]
    fn a_long_episode_logs_a_reminder_a_minute() {
        let mut t = AcceptTrouble::default();
        let t0 = Instant::now();
        assert!(t.failed("x", &emfile(), t0).is_some());
        assert_eq!(t.failed("x", &emfile(), t0 + Duration::from_secs(59)), None);
        let reminder = t
            .failed("x", &emfile(), t0 + Duration::from_secs(60))
            .expect("reminder");
        assert!(reminder.contains("(3 failures in 60 s)"), "{reminder}");
        assert_eq!(t.failed("x", &emfile(), t0 + Duration::from_secs(61)), None);
    }
}
