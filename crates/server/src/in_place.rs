//! An app running in place, on the event loop's own thread (one Python
//! thread per worker: see the WSGI handler), keeps that loop from seeing
//! SIGINT or SIGQUIT until it returns. Those signals mean "stop now", so
//! while such a call runs, their handler ends the process at once, as
//! uWSGI's workers do; otherwise it hands over to the async runtime's own
//! handler, which it wraps. Such a call also tells sibling workers that
//! this one is busy (`accept_board.rs`). Calls may nest (a pulled body
//! closed while the app's call is still being finished).

use std::sync::atomic::{AtomicUsize, Ordering};

/// App calls running on the event loop's thread (nested ones included).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The handlers that were in place before ours, by signal.
static PREVIOUS_INT: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS_QUIT: AtomicUsize = AtomicUsize::new(0);

/// Marks an app call running on the event loop's thread; ends when dropped.
pub struct InPlaceCall(());

impl InPlaceCall {
    /// Mark the start of an app call on the event loop's thread.
    pub fn enter() -> InPlaceCall {
        if RUNNING.fetch_add(1, Ordering::SeqCst) == 0 {
            crate::accept_board::mark_busy();
        }
        InPlaceCall(())
    }
}

impl Drop for InPlaceCall {
    fn drop(&mut self) {
        // The app may have run for long: what follows (the response's
        // send timeout) must not start from a clock read before it.
        crate::clock::refresh();
        if RUNNING.fetch_sub(1, Ordering::SeqCst) == 1 {
            crate::accept_board::mark_done();
        }
    }
}

extern "C" fn on_stop_now(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if RUNNING.load(Ordering::SeqCst) > 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) };
    }
    let previous = match sig {
        libc::SIGINT => PREVIOUS_INT.load(Ordering::SeqCst),
        _ => PREVIOUS_QUIT.load(Ordering::SeqCst),
    };
    if previous > 1 {
        // SAFETY: `previous` is the SA_SIGINFO handler that was installed
        // for this signal before ours (the runtime's), called as the
        // kernel would have called it.
        unsafe {
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(previous);
            handler(sig, info, ctx);
        }
    }
}

/// Wrap the current SIGINT and SIGQUIT handlers (call after the runtime
/// registered its own). Handlers that are not SA_SIGINFO ones are left alone.
pub(crate) fn wrap_stop_signals() {
    for (sig, slot) in [
        (libc::SIGINT, &PREVIOUS_INT),
        (libc::SIGQUIT, &PREVIOUS_QUIT),
    ] {
        // SAFETY: reading and replacing a signal action with zeroed structs
        // filled field by field; the new handler only reads atomics, calls
        // _exit or the previous handler.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                || old.sa_flags & libc::SA_SIGINFO == 0
                || old.sa_sigaction <= 1
            {
                continue;
            }
            slot.store(old.sa_sigaction, Ordering::SeqCst);
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_stop_now as *const () as usize;
            new.sa_flags = old.sa_flags;
            new.sa_mask = old.sa_mask;
            libc::sigaction(sig, &new, std::ptr::null_mut());
        }
    }
}
