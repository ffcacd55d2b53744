//! Binding listening sockets (in the process that will fork, later the
//! master) and what a connection needs to know about its listener.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of the listening sockets (uWSGI's `--listen`, raised from its 100).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// Facts about a listener that requests need (for SERVER_NAME/PORT, scheme).
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    /// The address actually bound (with the real port when 0 was asked).
    pub addr: SocketAddr,
    /// `http` (later `https`).
    pub scheme: &'static str,
    /// The option that asked for it, for messages (`--http :8000`).
    pub spec: String,
}

/// A bound listening socket, not yet registered with any runtime.
pub struct BoundListener {
    pub socket: TcpListener,
    pub info: ListenerInfo,
}

/// Bind `host:port` (empty host: every IPv4 interface) with SO_REUSEADDR.
pub fn bind(host: &str, port: u16, spec: &str) -> io::Result<BoundListener> {
    bind_with_backlog(host, port, spec, DEFAULT_BACKLOG)
}

/// [`bind`] with an explicit listen queue length.
pub fn bind_with_backlog(
    host: &str,
    port: u16,
    spec: &str,
    backlog: i32,
) -> io::Result<BoundListener> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last_err = io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no address for {host}"),
    );
    for addr in addrs {
        match bind_one(addr, backlog) {
            Ok(socket) => {
                let addr = socket.local_addr()?;
                return Ok(BoundListener {
                    socket,
                    info: ListenerInfo {
                        addr,
                        scheme: "http",
                        spec: spec.to_string(),
                    },
                });
            }
            Err(e) => last_err = io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")),
        }
    }
    Err(last_err)
}

fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

impl BoundListener {
    /// Wrap a listening socket inherited from a previous process image
    /// (graceful reload re-executes the master with its sockets open).
    pub fn inherited(socket: TcpListener, spec: &str) -> io::Result<BoundListener> {
        let addr = socket.local_addr()?;
        Ok(BoundListener {
            socket,
            info: ListenerInfo {
                addr,
                scheme: "http",
                spec: spec.to_string(),
            },
        })
    }

    /// A second handle on the same socket (for a forked worker).
    pub fn try_clone(&self) -> io::Result<BoundListener> {
        Ok(BoundListener {
            socket: self.socket.try_clone()?,
            info: self.info.clone(),
        })
    }
}
