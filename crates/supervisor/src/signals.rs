//! The master's signals, read synchronously from a signalfd so the master
//! stays single-threaded and handles each signal in its main loop.

use std::io;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals the master acts on.
pub(crate) const MASTER_SIGNALS: [libc::c_int; 6] = [
    libc::SIGCHLD,
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
];

fn signal_set(signals: &[libc::c_int]) -> SigSet {
    let mut set = SigSet::empty();
    for s in signals.iter().filter_map(|&s| Signal::try_from(s).ok()) {
        set.add(s);
    }
    set
}

/// Block the master's signals and open a signalfd for them.
pub(crate) fn open_signalfd() -> io::Result<SignalFd> {
    let set = signal_set(&MASTER_SIGNALS);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    Ok(SignalFd::with_flags(
        &set,
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )?)
}

/// In a freshly forked worker: unblock everything the master blocked.
pub(crate) fn unblock_all() {
    let set = signal_set(&MASTER_SIGNALS);
    // Cannot fail with a valid `how`; a worker keeps going either way.
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
}

/// Block or unblock SIGUSR2 (a worker's "reopen your logs") in the calling
/// thread. The master blocks it around a fork, so a worker starts with it
/// blocked: one the master sends before the worker can take it stays
/// pending until the worker has its handler (`remember_early_reopen`),
/// instead of killing the worker, which is its default action.
pub(crate) fn block_reopen_signal(block: bool) {
    let how = if block {
        SigmaskHow::SIG_BLOCK
    } else {
        SigmaskHow::SIG_UNBLOCK
    };
    // Cannot fail with a valid `how`.
    let _ = sigprocmask(how, Some(&signal_set(&[libc::SIGUSR2])), None);
}

/// Read every pending signal number from the signalfd.
pub(crate) fn read_pending(fd: &SignalFd) -> Vec<libc::c_int> {
    let mut out = Vec::new();
    while let Ok(Some(info)) = fd.read_signal() {
        out.push(info.ssi_signo as libc::c_int);
    }
    out
}

/// Send `signal` to `pid`, ignoring a process that is already gone.
pub(crate) fn send(pid: i32, signal: libc::c_int) {
    if pid > 0 {
        let signal = Signal::try_from(signal).ok();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}
