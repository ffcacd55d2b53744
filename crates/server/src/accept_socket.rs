//! The socket side of accepting a connection: `accept4()` on a shared
//! non-blocking listener, the listener options every accepted socket
//! inherits (TCP_NODELAY, TCP_DEFER_ACCEPT), the connection's local
//! address, and the first read made as it is accepted (serve.rs serves
//! what that read brought in place).

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use bytes::BytesMut;
use tokio::io::ReadBuf;

use crate::lazy_socket::LazySocket;
use crate::listener::{ListenAddress, ListenSocket, ListenerInfo};
use crate::worker_conns::Connection;

/// accept4() one connection from the non-blocking listener `fd`, as a
/// non-blocking, close-on-exec socket (not on the event loop yet).
pub(crate) fn accept_connection(
    fd: RawFd,
    unix: bool,
) -> io::Result<(Connection, Option<SocketAddr>)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: accept4 on our listener writes at most `len` bytes of address
    // into the storage socket2 gives it.
    let (conn, addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let fd = libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(fd)
            }
        })
    }?;
    // SAFETY: `conn` is a new descriptor that nothing else owns.
    let sock = LazySocket::new(unsafe { OwnedFd::from_raw_fd(conn) });
    if unix {
        return Ok((Connection::Unix(sock), None));
    }
    let Some(peer) = addr.as_socket() else {
        return Err(io::Error::other(
            "accepted a connection with no peer address",
        ));
    };
    Ok((Connection::Tcp(sock), Some(peer)))
}

/// accept() errors that concern one connection (gone before it was taken),
/// not the listener: try the next one at once, as nginx does.
pub(crate) fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM | libc::EINTR)
    )
}

/// True if a connection waits in the listen queue of `fd`.
pub(crate) fn has_pending_connection(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one descriptor we own, without waiting.
    unsafe { libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & libc::POLLIN != 0 }
}

/// How many connections a TCP listener holds ready for `accept()` (the
/// kernel reports its accept queue's length as `tcpi_unacked` for a
/// listening socket); `None` for a Unix socket or on error.
pub(crate) fn queued_connections(fd: RawFd) -> Option<u32> {
    // SAFETY: an all-zero tcp_info is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &mut len,
        )
    };
    (rc == 0 && info.tcpi_state == 10).then_some(info.tcpi_unacked)
}

/// Seconds a new TCP connection may stay silent in the kernel before it is
/// handed to `accept()` (TCP_DEFER_ACCEPT; uWSGI sets it to its socket
/// timeout, 4 s): a client that connects and sends nothing costs no
/// accept, no task and no descriptor until then.
pub(crate) const DEFER_ACCEPT_SECS: libc::c_int = 4;

/// Per-listener socket options every accepted connection inherits, set
/// once instead of once per connection: TCP_NODELAY (Linux copies it to
/// accepted sockets) and TCP_DEFER_ACCEPT.
pub(crate) fn prepare_listener(socket: &ListenSocket) {
    if let ListenSocket::Tcp(l) = socket {
        let sock = socket2::SockRef::from(l);
        let _ = sock.set_tcp_nodelay(true);
        let secs = DEFER_ACCEPT_SECS;
        // SAFETY: setsockopt on a descriptor we own, with a c_int value.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(l),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&raw const secs).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The local address of a connection accepted on `listener`: the
/// listener's own, unless it is bound to a wildcard address (then the
/// kernel is asked, once per connection).
pub(crate) fn local_address(listener: &ListenerInfo, sock: &LazySocket) -> Option<SocketAddr> {
    match &listener.addr {
        ListenAddress::Tcp(addr) if !addr.ip().is_unspecified() => Some(*addr),
        _ => socket2::SockRef::from(sock)
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket()),
    }
}

/// What a just-accepted connection had to say.
pub(crate) enum FirstRead {
    /// Its first bytes (with TCP_DEFER_ACCEPT, usually the whole request).
    Bytes(BytesMut),
    /// Nothing yet.
    Nothing,
    /// It is closed or broken already.
    Gone,
}

/// Read what a just-accepted connection sent, without waiting.
pub(crate) fn read_first(sock: &LazySocket) -> FirstRead {
    // (The worker's spare read buffer, if one waits: read_spare.rs.)
    let mut buf = crate::read_spare::take()
        .unwrap_or_else(|| BytesMut::with_capacity(crate::conn::READ_BUFFER));
    let mut read = ReadBuf::uninit(buf.spare_capacity_mut());
    match sock.recv(&mut read) {
        Ok(()) => {
            let n = read.filled().len();
            if n == 0 {
                crate::read_spare::give(buf, crate::conn::READ_BUFFER);
                return FirstRead::Gone;
            }
            // SAFETY: recv initialized the first `n` bytes of the spare capacity.
            unsafe { buf.set_len(n) };
            FirstRead::Bytes(buf)
        }
        Err(e) => {
            crate::read_spare::give(buf, crate::conn::READ_BUFFER);
            if e.kind() == io::ErrorKind::WouldBlock {
                FirstRead::Nothing
            } else {
                FirstRead::Gone
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_tcp_listener_reports_how_many_connections_wait_for_accept() {
        let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
            panic!("cannot bind");
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("no address");
        };
        assert_eq!(queued_connections(listener.as_raw_fd()), Some(0));
        let clients: Vec<_> = (0..3)
            .filter_map(|_| std::net::TcpStream::connect(addr).ok())
            .collect();
        assert_eq!(clients.len(), 3);
        assert_eq!(queued_connections(listener.as_raw_fd()), Some(3));
        let Ok(unix) = std::os::unix::net::UnixDatagram::unbound() else {
            panic!("no unix socket");
        };
        assert_eq!(queued_connections(unix.as_raw_fd()), None, "not TCP");
    }
}
