//! Graceful reload by re-executing the master, as uWSGI does: the listening
//! sockets stay open across `execve` (their numbers passed in the
//! environment), so connections wait in the listen queue and none is
//! refused while the new image loads the app afresh.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;

/// Environment variable carrying the inherited listening descriptors.
const INHERITED_FDS_VAR: &str = "PORTICO_INHERITED_FDS";

/// Take (and remove from the environment) the descriptors a reloading
/// master left open for us, in listener order. None on a fresh start.
pub fn take_inherited_fds() -> Option<Vec<RawFd>> {
    let value = std::env::var(INHERITED_FDS_VAR).ok()?;
    // SAFETY: called at start-up while the process is single-threaded.
    unsafe { std::env::remove_var(INHERITED_FDS_VAR) };
    value.split(',').map(|fd| fd.parse().ok()).collect()
}

/// Replace this process with a fresh copy of the binary, same argv and pid,
/// keeping `fds` open. Returns only on failure.
pub fn exec_self(fds: &[RawFd]) -> io::Error {
    for &fd in fds {
        // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
    }
    let list: Vec<String> = fds.iter().map(|fd| fd.to_string()).collect();
    // SAFETY: the master is single-threaded here.
    unsafe { std::env::set_var(INHERITED_FDS_VAR, list.join(",")) };
    let args: Vec<CString> = std::env::args_os()
        .map(|a: OsString| CString::new(a.into_vec()).unwrap_or_default())
        .collect();
    match nix::unistd::execv(c"/proc/self/exe", &args) {
        Err(e) => e.into(),
    }
}
