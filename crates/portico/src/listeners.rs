//! Opening the listening sockets: bound afresh (TCP or unix, with
//! `--chmod-socket`/`--chown-socket`), or inherited from the previous image
//! of a reloading master.

use std::os::fd::RawFd;
use std::path::Path;

use anyhow::{Context, Result, bail};
use portico_config::site::{ListenAddr as SiteAddr, Site};
use portico_config::{Config, ListenAddr, Listener, ListenerTls, Protocol};
use portico_server::tls::{SiteTls, tls_for_settings};
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
        http2: listener.http2,
    }
}

fn kind(listener: &Listener) -> &'static str {
    match listener.protocol {
        Protocol::Http if listener.tls.is_some() => "https",
        Protocol::Http => "http",
        Protocol::Uwsgi => "uwsgi",
    }
}

/// Bind every listener of the configuration, in order.
pub(crate) fn bind_all(config: &Config) -> Result<Vec<BoundListener>> {
    bind_all_of(config, &config.listeners, 0)
}

/// Bind `listeners`, numbering them from `first` in the log lines.
fn bind_all_of(
    config: &Config,
    listeners: &[Listener],
    first: usize,
) -> Result<Vec<BoundListener>> {
    let mut bound = Vec::new();
    for (n, listener) in listeners.iter().enumerate() {
        let n = n + first;
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

/// Load the certificates and keys of the TLS listeners (`bound`, one per
/// `config.listeners` entry, in order) and serve them with TLS. A file
/// that cannot be used stops start-up, named.
pub(crate) fn attach_tls(
    config: &Config,
    site: Option<&Site>,
    bound: &mut [BoundListener],
) -> Result<()> {
    let mut site_tls: Option<SiteTls> = None;
    for (listener, socket) in config.listeners.iter().zip(bound.iter_mut()) {
        let tls = match &listener.tls {
            None => continue,
            Some(ListenerTls::Own(settings)) => {
                tls_for_settings(settings).with_context(|| listener.spec.clone())?
            }
            Some(ListenerTls::Site) => {
                let Some(site) = site else {
                    bail!("{}: TLS without a site", listener.spec);
                };
                if site_tls.is_none() {
                    site_tls = Some(SiteTls::build(site)?);
                }
                let addr = match &socket.info.addr {
                    ListenAddress::Tcp(a) => SiteAddr::Tcp(*a),
                    ListenAddress::Unix(p) => SiteAddr::Unix(p.clone()),
                };
                site_tls
                    .as_ref()
                    .and_then(|t| t.listener(&addr))
                    .with_context(|| {
                        format!(
                            "{}: no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
                            listener.spec
                        )
                    })?
            }
        };
        socket.info.set_tls(tls);
    }
    Ok(())
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
    portico_supervisor::resolve_uid(user)
        .map(|(uid, _)| uid)
        .with_context(|| format!("--chown-socket: user {user:?}"))
}

fn lookup_group(group: &str) -> Result<u32> {
    portico_supervisor::resolve_gid(group)
        .with_context(|| format!("--chown-socket: group {group:?}"))
}

/// Adopt the sockets a reloading master passed down: each listener takes
/// the inherited socket bound to its address (by position first, so a port
/// 0 listener keeps the port it got); listeners new to this configuration
/// are bound afresh, and inherited sockets no listener wants are closed
/// (a reload that drops a `listen` closes it, as nginx does).
pub(crate) fn adopt_all(config: &Config, fds: &[RawFd]) -> Result<Vec<BoundListener>> {
    let mut inherited: Vec<Option<BoundListener>> = Vec::new();
    for &fd in fds {
        let placeholder = ListenerSpec {
            wire: Wire::Http,
            spec: "",
            backlog: 0,
            buffer_size: 0,
            http2: None,
        };
        let socket = BoundListener::inherited(fd, &placeholder)
            .with_context(|| format!("inherited socket fd {fd}"))?;
        inherited.push(Some(socket));
    }
    let mut adopted = Vec::new();
    for (n, listener) in config.listeners.iter().enumerate() {
        let wanted = |s: &Option<BoundListener>| {
            s.as_ref()
                .is_some_and(|s| same_address(&listener.addr, &s.info.addr))
        };
        let index = inherited
            .get(n)
            .filter(|s| wanted(s))
            .map(|_| n)
            .or_else(|| inherited.iter().position(wanted));
        let Some(socket) = index.and_then(|i| inherited.get_mut(i)?.take()) else {
            adopted.extend(bind_all_of(config, std::slice::from_ref(listener), n)?);
            continue;
        };
        let fd = socket.socket.as_raw_fd();
        let spec = spec(config, listener);
        let socket = BoundListener {
            info: portico_server::ListenerInfo {
                wire: spec.wire,
                spec: listener.spec.clone(),
                buffer_size: spec.buffer_size,
                http2: spec.http2,
                ..socket.info
            },
            socket: socket.socket,
        };
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
    for socket in inherited.into_iter().flatten() {
        portico_server::logln!(
            "closing listening socket {} (no longer configured)",
            socket.info.addr
        );
    }
    Ok(adopted)
}

/// Whether an inherited socket bound to `bound` serves the listener address `addr`.
fn same_address(addr: &ListenAddr, bound: &ListenAddress) -> bool {
    use std::net::ToSocketAddrs;
    match (addr, bound) {
        (ListenAddr::Unix(path), ListenAddress::Unix(bound)) => path == bound,
        (ListenAddr::Tcp { host, port }, ListenAddress::Tcp(bound)) => {
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            (host, *port).to_socket_addrs().is_ok_and(|mut all| {
                all.any(|a| a.ip() == bound.ip() && (*port == 0 || a.port() == bound.port()))
            })
        }
        _ => false,
    }
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
