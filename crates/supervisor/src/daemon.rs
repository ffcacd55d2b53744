//! The daemon duties of the master: detaching, redirecting the log,
//! pidfiles, dropping privileges, resource limits.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Point stdout and stderr at `path` (appending, created 0640), as uWSGI's `--logto`.
pub fn redirect_output(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| with_path(e, "cannot open log file", path))?;
    // SAFETY: dup2 onto the standard descriptors; `file` stays open until after.
    unsafe {
        if libc::dup2(file.as_raw_fd(), 1) < 0 || libc::dup2(file.as_raw_fd(), 2) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Detach from the terminal: fork (the parent exits 0), start a new session,
/// stdin from /dev/null, stdout and stderr to `logfile`.
pub fn daemonize(logfile: &Path) -> io::Result<()> {
    // Open the log first so a bad path is reported on the terminal.
    redirect_check(logfile)?;
    // SAFETY: called while the process is single-threaded; the parent leaves
    // with _exit so nothing of its state runs twice.
    unsafe {
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::close(devnull);
        }
    }
    redirect_output(logfile)
}

fn redirect_check(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map(drop)
        .map_err(|e| with_path(e, "cannot open log file", path))
}

/// Write `pid` and a newline to `path`.
pub fn write_pidfile(path: &Path, pid: u32) -> io::Result<()> {
    std::fs::write(path, format!("{pid}\n")).map_err(|e| with_path(e, "cannot write pidfile", path))
}

/// Remove a file, saying so unless it is already gone.
pub fn remove_file_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => portico_server::logln!("VACUUM: {} removed.", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => portico_server::logln!("VACUUM: cannot remove {}: {e}", path.display()),
    }
}

fn resolve_gid(group: &str) -> io::Result<libc::gid_t> {
    if let Ok(n) = group.parse() {
        return Ok(n);
    }
    let name =
        CString::new(group).map_err(|_| io::Error::other("group name contains a NUL byte"))?;
    // SAFETY: getgrnam returns a pointer to static data or NULL; read at once.
    let entry = unsafe { libc::getgrnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such group: {group}"),
        ));
    }
    // SAFETY: non-null entry from getgrnam.
    Ok(unsafe { (*entry).gr_gid })
}

/// A user name or number as (uid, primary gid; `gid_t::MAX` for a number).
pub fn resolve_uid(user: &str) -> io::Result<(libc::uid_t, libc::gid_t)> {
    if let Ok(n) = user.parse() {
        return Ok((n, libc::gid_t::MAX));
    }
    let name = CString::new(user).map_err(|_| io::Error::other("user name contains a NUL byte"))?;
    // SAFETY: getpwnam returns a pointer to static data or NULL; read at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such user: {user}"),
        ));
    }
    // SAFETY: non-null entry from getpwnam.
    Ok(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

/// Drop to `gid` then `uid` (names or numbers), as uWSGI does after binding.
pub fn drop_privileges(uid: Option<&str>, gid: Option<&str>) -> io::Result<()> {
    let user = uid.map(resolve_uid).transpose()?;
    let group = gid.map(resolve_gid).transpose()?;
    // SAFETY: plain credential syscalls; results checked.
    unsafe {
        if let Some(g) = group {
            let groups = [g];
            if libc::getuid() == 0 && libc::setgroups(1, groups.as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setgid(g) != 0 {
                return Err(io::Error::new(
                    io::Error::last_os_error().kind(),
                    format!("setgid({g}): {}", io::Error::last_os_error()),
                ));
            }
            portico_server::logln!("setgid() to {g}");
        }
        if let Some((u, _)) = user {
            if libc::setuid(u) != 0 {
                return Err(io::Error::new(
                    io::Error::last_os_error().kind(),
                    format!("setuid({u}): {}", io::Error::last_os_error()),
                ));
            }
            portico_server::logln!("setuid() to {u}");
        }
    }
    Ok(())
}

/// Limit the address space of this process (and its children) to `bytes`.
pub fn limit_address_space(bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
