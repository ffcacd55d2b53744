//! Opening the listening sockets: bound afresh (TCP or unix, with
//! `--chmod-socket`/`--chown-socket`), or inherited from the previous image
//! of a reloading master.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::Path;

use anyhow::{Context, Result, bail};
use portico_config::{Config, ListenAddr, Listener, Protocol};
use portico_server::{BoundListener, ListenAddress, ListenerSpec, Wire, bind_tcp, bind_unix};

fn spec<'a>(config: &Config, listener: &'a Listener) -> ListenerSpec<'a> {
    ListenerSpec {
        wire: match listener.protocol {
            Protocol::Http => Wire::Http,
            Protocol::Uwsgi => Wire::Uwsgi,
        },
        spec: &listener.spec,
        backlog: config.process.listen as i32,
        buffer_size: config.buffer_size,
    }
}

fn kind(listener: &Listener) -> &'static str {
    match listener.protocol {
        Protocol::Http => "http",
        Protocol::Uwsgi => "uwsgi",
    }
}

/// Bind every listener of the configuration, in order.
pub(crate) fn bind_all(config: &Config) -> Result<Vec<BoundListener>> {
    let mut bound = Vec::new();
    for (n, listener) in config.listeners.iter().enumerate() {
        let spec = spec(config, listener);
        let socket = match &listener.addr {
            ListenAddr::Tcp { host, port } => bind_tcp(host, *port, &spec),
            ListenAddr::Unix(path) => bind_unix(path, &spec),
        }
        .with_context(|| listener.spec.clone())?;
        let family = match &listener.addr {
            ListenAddr::Tcp { .. } => "TCP address",
            ListenAddr::Unix(path) => {
                prepare_unix_socket(config, path).with_context(|| listener.spec.clone())?;
                "UNIX address"
            }
        };
        portico_server::logln!(
            "{} socket {n} bound to {family} {} fd {}",
            kind(listener),
            socket.info.addr,
            socket.socket.as_raw_fd()
        );
        bound.push(socket);
    }
    Ok(bound)
}

/// `--chmod-socket` and `--chown-socket` on a freshly bound unix socket.
fn prepare_unix_socket(config: &Config, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = config.chmod_socket {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {:o} {}", mode, path.display()))?;
    }
    if let Some(owner) = &config.chown_socket {
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner.as_str(), None),
        };
        let uid = lookup_user(user)?;
        let gid = group.map(lookup_group).transpose()?;
        std::os::unix::fs::chown(path, Some(uid), gid)
            .with_context(|| format!("chown {owner} {}", path.display()))?;
    }
    Ok(())
}

fn lookup_user(user: &str) -> Result<u32> {
    if let Ok(n) = user.parse() {
        return Ok(n);
    }
    let name = CString::new(user).context("user name contains a NUL byte")?;
    // SAFETY: getpwnam returns static data or NULL; read at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        bail!("--chown-socket: no such user {user:?}");
    }
    // SAFETY: non-null entry from getpwnam.
    Ok(unsafe { (*entry).pw_uid })
}

fn lookup_group(group: &str) -> Result<u32> {
    if let Ok(n) = group.parse() {
        return Ok(n);
    }
    let name = CString::new(group).context("group name contains a NUL byte")?;
    // SAFETY: getgrnam returns static data or NULL; read at once.
    let entry = unsafe { libc::getgrnam(name.as_ptr()) };
    if entry.is_null() {
        bail!("--chown-socket: no such group {group:?}");
    }
    // SAFETY: non-null entry from getgrnam.
    Ok(unsafe { (*entry).gr_gid })
}

/// Adopt the sockets a reloading master passed down, one per listener.
pub(crate) fn adopt_all(config: &Config, fds: &[RawFd]) -> Result<Vec<BoundListener>> {
    if fds.len() != config.listeners.len() {
        bail!(
            "the reloading master passed {} sockets for {} listeners",
            fds.len(),
            config.listeners.len()
        );
    }
    let mut adopted = Vec::new();
    for (n, (listener, &fd)) in config.listeners.iter().zip(fds).enumerate() {
        let socket = BoundListener::inherited(fd, &spec(config, listener))
            .with_context(|| format!("inherited socket fd {fd} for {}", listener.spec))?;
        let family = match socket.info.addr {
            ListenAddress::Tcp(_) => "TCP address",
            ListenAddress::Unix(_) => "UNIX address",
        };
        portico_server::logln!(
            "{} socket {n} bound to {family} {} fd {fd} (inherited)",
            kind(listener),
            socket.info.addr
        );
        adopted.push(socket);
    }
    Ok(adopted)
}

/// The unix socket paths to remove at exit (`--vacuum`).
pub(crate) fn unix_paths(config: &Config) -> Vec<&Path> {
    config
        .listeners
        .iter()
        .filter_map(|l| match &l.addr {
            ListenAddr::Unix(path) => Some(path.as_path()),
            ListenAddr::Tcp { .. } => None,
        })
        .collect()
}
