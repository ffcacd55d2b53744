//! SIGUSR2 (reopen the logs) in the moments between a worker's fork and
//! the time its runtime listens for it. The master sends SIGUSR2 to every
//! worker for `-s reopen` / SIGUSR1 in nginx mode and for
//! `--touch-logreopen`; a worker still starting up (loading its app,
//! building its site) would otherwise lose it and keep writing to the
//! rotated files, or, in the instant after the fork before any handler, be
//! killed by it (its default action). The supervisor forks with SIGUSR2
//! blocked, calls [`remember_early_reopen`] in the child, then unblocks it;
//! `serve` asks [`take_early_reopen`] once its own handler is in place and
//! reopens then. Not the handler of the running worker: that is the
//! runtime's (`serve.rs`).

use std::sync::atomic::{AtomicBool, Ordering};

/// A SIGUSR2 arrived before the runtime took the signal over.
static EARLY_REOPEN: AtomicBool = AtomicBool::new(false);

extern "C" fn note_reopen(_: libc::c_int) {
    EARLY_REOPEN.store(true, Ordering::SeqCst);
}

/// In a freshly forked worker: remember a SIGUSR2 until the runtime
/// handles it (instead of the default, which ends the process). The
/// runtime's handler, installed later, calls this one after its own (it
/// chains to the handler it finds), so the flag may be set again later:
/// only [`take_early_reopen`]'s first answer means anything.
pub fn remember_early_reopen() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler only stores to an atomic, which is async-signal-safe;
    // `sigaction` is given valid pointers.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = note_reopen as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether a SIGUSR2 came before the runtime's handler was in place (call
/// once, right after installing it).
pub(crate) fn take_early_reopen() -> bool {
    EARLY_REOPEN.swap(false, Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::remember_early_reopen;
    use crate::serve::reopen_on_sigusr2;

    fn raise_sigusr2() {
        // SAFETY: raising a signal this process has a handler for.
        let rc = unsafe { libc::raise(libc::SIGUSR2) };
        assert_eq!(rc, 0, "raise(SIGUSR2)");
    }

    async fn until_count(count: &AtomicUsize, want: usize) {
        let reached = tokio::time::timeout(Duration::from_secs(5), async {
            while count.load(Ordering::SeqCst) < want {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "{} reopens, want {want}",
            count.load(Ordering::SeqCst)
        );
    }

    /// The only test that touches SIGUSR2: the disposition is per process.
    #[test]
    fn a_sigusr2_before_the_runtime_listens_reopens_once_it_does_and_later_ones_once_each() {
        assert!(remember_early_reopen().is_ok());
        raise_sigusr2(); // still alive: remembered, not the default action
        let count = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(runtime) = runtime else {
            panic!("cannot build a runtime");
        };
        runtime.block_on(async {
            let counter = count.clone();
            tokio::spawn(reopen_on_sigusr2(Arc::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })));
            until_count(&count, 1).await;
            raise_sigusr2();
            until_count(&count, 2).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        assert_eq!(count.load(Ordering::SeqCst), 2, "one reopen per signal");
    }
}
