//! Binding listening sockets (in the process that will fork, later the
//! master), TCP or unix, and what a connection needs to know about its
//! listener: the wire protocol it speaks and where it is.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use socket2::{Domain, Protocol, Socket, Type};

/// The protocol spoken on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// HTTP/1.1 with keep-alive.
    Http,
    /// uwsgi packets in, a raw HTTP response out, then close (nginx's `uwsgi_pass`).
    Uwsgi,
}

/// Where a listener is: the site model's address type, one enum for both.
pub use portico_config::site::ListenAddr as ListenAddress;

/// Facts about a listener that requests need.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    /// The address actually bound (with the real port when 0 was asked).
    pub addr: ListenAddress,
    /// The protocol spoken on it.
    pub wire: Wire,
    /// `http`, or `https` on a TLS listener.
    pub scheme: &'static str,
    /// The option that asked for it, for messages (`--http :8000`).
    pub spec: String,
    /// Largest uwsgi vars block accepted (`--buffer-size`).
    pub buffer_size: usize,
    /// HTTP/2 beside HTTP/1.1 on an HTTP listener (h2c by prior
    /// knowledge), with its limits; `None`: HTTP/1.x only.
    pub http2: Option<portico_config::Http2Settings>,
    /// TLS on this listener (`listen ... ssl`, `--https`): connections are
    /// handshaken before HTTP is read.
    pub tls: Option<std::sync::Arc<crate::tls::TlsListener>>,
}

impl ListenerInfo {
    /// Serve this listener with TLS (`scheme` becomes `https`).
    pub fn set_tls(&mut self, tls: std::sync::Arc<crate::tls::TlsListener>) {
        self.tls = Some(tls);
        self.scheme = "https";
    }
}

/// A bound socket, TCP or unix.
#[derive(Debug)]
pub enum ListenSocket {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A unix socket listener.
    Unix(UnixListener),
}

impl std::os::fd::AsFd for ListenSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            ListenSocket::Tcp(s) => s.as_fd(),
            ListenSocket::Unix(s) => s.as_fd(),
        }
    }
}

impl From<ListenSocket> for std::os::fd::OwnedFd {
    fn from(socket: ListenSocket) -> Self {
        match socket {
            ListenSocket::Tcp(s) => s.into(),
            ListenSocket::Unix(s) => s.into(),
        }
    }
}

impl ListenSocket {
    /// The listening socket's file descriptor (still owned by `self`).
    pub fn as_raw_fd(&self) -> RawFd {
        match self {
            ListenSocket::Tcp(s) => s.as_raw_fd(),
            ListenSocket::Unix(s) => s.as_raw_fd(),
        }
    }

    fn try_clone(&self) -> io::Result<ListenSocket> {
        Ok(match self {
            ListenSocket::Tcp(s) => ListenSocket::Tcp(s.try_clone()?),
            ListenSocket::Unix(s) => ListenSocket::Unix(s.try_clone()?),
        })
    }
}

/// A bound listening socket, not yet registered with any runtime.
#[derive(Debug)]
pub struct BoundListener {
    /// The bound, listening socket.
    pub socket: ListenSocket,
    /// What requests accepted on it need to know.
    pub info: ListenerInfo,
}

/// How to open a listener.
#[derive(Debug, Clone)]
pub struct ListenerSpec<'a> {
    /// The protocol to speak on it.
    pub wire: Wire,
    /// The option that asked for it (`--socket /run/app.sock`).
    pub spec: &'a str,
    /// The listen(2) backlog (`--listen`).
    pub backlog: i32,
    /// Largest uwsgi vars block accepted (`--buffer-size`).
    pub buffer_size: usize,
    /// HTTP/2 on it, with its limits (see [`ListenerInfo::http2`]).
    pub http2: Option<portico_config::Http2Settings>,
}

impl ListenerSpec<'_> {
    fn info(&self, addr: ListenAddress) -> ListenerInfo {
        ListenerInfo {
            addr,
            wire: self.wire,
            scheme: "http",
            spec: self.spec.to_string(),
            buffer_size: self.buffer_size,
            http2: self.http2,
            tls: None,
        }
    }
}

/// Bind `host:port` (empty host: every IPv4 interface) with SO_REUSEADDR.
pub fn bind_tcp(host: &str, port: u16, spec: &ListenerSpec<'_>) -> io::Result<BoundListener> {
    crate::accept_board::share();
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
        match bind_one(addr, spec.backlog) {
            Ok(socket) => {
                let addr = socket.local_addr()?;
                return Ok(BoundListener {
                    socket: ListenSocket::Tcp(socket),
                    info: spec.info(ListenAddress::Tcp(addr)),
                });
            }
            Err(e) => last_err = io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")),
        }
    }
    Err(last_err)
}

/// Whether `host:port` could be bound now, as [`bind_tcp`] binds it: bind
/// a socket with the same options, without listening, and close it. A
/// reload asks this of the addresses it would add, so that one taken by
/// another process refuses the reload (as nginx's does) instead of failing
/// the new master after the old workers are gone. The error is the
/// bind(2) error of the first address `host` resolves to.
pub fn try_bind_tcp(host: &str, port: u16) -> io::Result<()> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())
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

/// Bind a unix socket at `path`, replacing a stale socket file (as uWSGI does).
pub fn bind_unix(path: &Path, spec: &ListenerSpec<'_>) -> io::Result<BoundListener> {
    crate::accept_board::share();
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        std::fs::remove_file(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot remove stale {}: {e}", path.display()),
            )
        })?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let address = socket2::SockAddr::unix(path)?;
    socket
        .bind(&address)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display())))?;
    socket.listen(spec.backlog)?;
    Ok(BoundListener {
        socket: ListenSocket::Unix(socket.into()),
        info: spec.info(ListenAddress::Unix(path.to_path_buf())),
    })
}

impl BoundListener {
    /// Wrap a listening socket inherited from a previous process image
    /// (graceful reload re-executes the master with its sockets open).
    pub fn inherited(fd: RawFd, spec: &ListenerSpec<'_>) -> io::Result<BoundListener> {
        crate::accept_board::share();
        use std::os::fd::FromRawFd;
        // SAFETY: the caller passes a descriptor left open for this process.
        let socket = unsafe { Socket::from_raw_fd(fd) };
        let local = socket.local_addr()?;
        if let Some(addr) = local.as_socket() {
            return Ok(BoundListener {
                socket: ListenSocket::Tcp(socket.into()),
                info: spec.info(ListenAddress::Tcp(addr)),
            });
        }
        let path = local
            .as_pathname()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(BoundListener {
            socket: ListenSocket::Unix(socket.into()),
            info: spec.info(ListenAddress::Unix(path)),
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
