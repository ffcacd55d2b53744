//! Opening the listening sockets: bound afresh, or inherited from the
//! previous image of a reloading master.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use anyhow::{Context, Result, bail};
use portico_config::{Config, ListenAddr};
use portico_server::{BoundListener, bind_with_backlog};

fn shown(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    }
}

/// Bind every listener of the configuration, in order.
pub(crate) fn bind_all(config: &Config) -> Result<Vec<BoundListener>> {
    let mut bound = Vec::new();
    for (n, listener) in config.listeners.iter().enumerate() {
        let ListenAddr::Tcp { host, port } = &listener.addr;
        let socket = bind_with_backlog(host, *port, &listener.spec, config.process.listen as i32)
            .with_context(|| listener.spec.clone())?;
        eprintln!(
            "http socket {n} bound to TCP address {} fd {}",
            shown(socket.info.addr),
            socket.socket.as_raw_fd()
        );
        bound.push(socket);
    }
    Ok(bound)
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
        // SAFETY: the descriptor was left open for us by the previous image.
        let socket = unsafe { TcpListener::from_raw_fd(fd) };
        let socket = BoundListener::inherited(socket, &listener.spec)
            .with_context(|| format!("inherited socket fd {fd} for {}", listener.spec))?;
        eprintln!(
            "http socket {n} bound to TCP address {} fd {fd} (inherited)",
            shown(socket.info.addr)
        );
        adopted.push(socket);
    }
    Ok(adopted)
}
