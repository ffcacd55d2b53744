//! The master's signals, read synchronously from a signalfd so the master
//! stays single-threaded and handles each signal in its main loop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The signals the master acts on.
pub(crate) const MASTER_SIGNALS: [libc::c_int; 6] = [
    libc::SIGCHLD,
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
];

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block the master's signals and open a signalfd for them.
pub(crate) fn open_signalfd() -> io::Result<OwnedFd> {
    let set = signal_set(&MASTER_SIGNALS);
    // SAFETY: plain calls with a valid set; the fd is checked and owned.
    unsafe {
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// In a freshly forked worker: unblock everything the master blocked.
pub(crate) fn unblock_all() {
    let set = signal_set(&MASTER_SIGNALS);
    // SAFETY: restores the signal mask of the calling (only) thread.
    unsafe {
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Read every pending signal number from the signalfd.
pub(crate) fn read_pending(fd: &OwnedFd) -> Vec<libc::c_int> {
    let mut out = Vec::new();
    loop {
        // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: the buffer is exactly `size` bytes of our own memory.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        if n != size as isize {
            return out;
        }
        out.push(info.ssi_signo as libc::c_int);
    }
}

/// Send `signal` to `pid`, ignoring a process that is already gone.
pub(crate) fn send(pid: i32, signal: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill has no memory effects.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}
