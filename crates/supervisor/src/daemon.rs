//! The daemon duties of the master: detaching, redirecting the log,
//! pidfiles, dropping privileges, resource limits.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{Gid, Group, Uid, User};

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
    nix::unistd::dup2_stdout(&file)?;
    nix::unistd::dup2_stderr(&file)?;
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
        if nix::unistd::fork()?.is_parent() {
            libc::_exit(0);
        }
    }
    nix::unistd::setsid()?;
    if let Ok(devnull) = std::fs::File::open("/dev/null") {
        nix::unistd::dup2_stdin(&devnull)?;
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
        Ok(()) => portico_log::logln!("VACUUM: {} removed.", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => portico_log::logln!("VACUUM: cannot remove {}: {e}", path.display()),
    }
}

/// A group name or number as a gid (the reentrant `getgrnam_r`).
pub fn resolve_gid(group: &str) -> io::Result<libc::gid_t> {
    if let Ok(n) = group.parse() {
        return Ok(n);
    }
    match Group::from_name(group)? {
        Some(g) => Ok(g.gid.as_raw()),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such group: {group}"),
        )),
    }
}

/// A user name or number as (uid, primary gid; `gid_t::MAX` for a number),
/// through the reentrant `getpwnam_r`.
pub fn resolve_uid(user: &str) -> io::Result<(libc::uid_t, libc::gid_t)> {
    if let Ok(n) = user.parse() {
        return Ok((n, libc::gid_t::MAX));
    }
    match User::from_name(user)? {
        Some(u) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such user: {user}"),
        )),
    }
}

/// Drop to `gid` then `uid` (names or numbers), as uWSGI does after binding.
pub fn drop_privileges(uid: Option<&str>, gid: Option<&str>) -> io::Result<()> {
    let user = uid.map(resolve_uid).transpose()?;
    let group = gid.map(resolve_gid).transpose()?;
    if let Some(g) = group {
        let g = Gid::from_raw(g);
        if Uid::current().is_root() {
            nix::unistd::setgroups(&[g])?;
        }
        nix::unistd::setgid(g)
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("setgid({g}): {e}")))?;
        portico_log::logln!("setgid() to {g}");
    }
    if let Some((u, _)) = user {
        let u = Uid::from_raw(u);
        nix::unistd::setuid(u)
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("setuid({u}): {e}")))?;
        portico_log::logln!("setuid() to {u}");
    }
    Ok(())
}

/// Limit the address space of this process (and its children) to `bytes`.
pub fn limit_address_space(bytes: u64) -> io::Result<()> {
    setrlimit(Resource::RLIMIT_AS, bytes, bytes)?;
    Ok(())
}
