//! One upstream peer's address, resolved once at construction (nginx
//! resolves `uwsgi_pass host:port` names at load time), and connecting to it
//! within a timeout, with nginx's error wording.
//!
//! Not a balancer: a `Group` (an `upstream {}` block) is the job of the
//! balancer that will live next to this file.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use portico_config::site::UpstreamTarget;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::error::{ErrorKind, Level, Phase, ProxyError};
use crate::io::within;

/// A resolved peer address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Why a target could not be made into a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// An `upstream {}` group name: needs a balancer, not a single peer.
    Group(String),
    /// The host name did not resolve.
    Resolve {
        host: String,
        port: u16,
        why: String,
    },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Group(name) => write!(
                f,
                "upstream group \"{name}\" needs a balancer; a single-peer client cannot use it"
            ),
            TargetError::Resolve { host, port, why } => {
                write!(f, "host not found in upstream \"{host}:{port}\": {why}")
            }
        }
    }
}

impl std::error::Error for TargetError {}

impl PeerAddr {
    /// Resolve a configured target. A name with several addresses keeps the
    /// first (nginx makes each a peer of an implicit group: balancer work).
    pub fn resolve(target: &UpstreamTarget) -> Result<PeerAddr, TargetError> {
        match target {
            UpstreamTarget::Unix(path) => Ok(PeerAddr::Unix(path.clone())),
            UpstreamTarget::Group(name) => Err(TargetError::Group(name.clone())),
            UpstreamTarget::Tcp { host, port } => {
                let resolve_err = |why: String| TargetError::Resolve {
                    host: host.clone(),
                    port: *port,
                    why,
                };
                let host_only = host.trim_start_matches('[').trim_end_matches(']');
                let mut addrs = (host_only, *port)
                    .to_socket_addrs()
                    .map_err(|e| resolve_err(e.to_string()))?;
                addrs
                    .next()
                    .map(PeerAddr::Tcp)
                    .ok_or_else(|| resolve_err("no address".to_string()))
            }
        }
    }

    /// Connect within `timeout`. TCP gets TCP_NODELAY, as nginx sets it.
    pub async fn connect(&self, timeout: Duration) -> Result<PeerStream, ProxyError> {
        let phase = Phase::Connecting;
        match self {
            PeerAddr::Tcp(addr) => {
                let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                    .await
                    .map_err(|_| ProxyError::timeout(phase))?
                    .map_err(|e| ProxyError::io(ErrorKind::Connect, phase, "connect()", e))?;
                // Not fatal: nginx only logs a failed setsockopt.
                let _ = stream.set_nodelay(true);
                Ok(PeerStream::Tcp(stream))
            }
            PeerAddr::Unix(path) => {
                let stream = tokio::time::timeout(timeout, UnixStream::connect(path))
                    .await
                    .map_err(|_| ProxyError::timeout(phase))?
                    .map_err(|e| {
                        // A unix connect() fails at once, and nginx words it
                        // `connect() to unix:/path failed`, at `crit` unless
                        // it is one of the "peer busy/gone" errors.
                        let level = match e.raw_os_error() {
                            Some(
                                libc_errno::ECONNREFUSED
                                | libc_errno::EAGAIN
                                | libc_errno::ECONNRESET
                                | libc_errno::ENETDOWN
                                | libc_errno::ENETUNREACH
                                | libc_errno::EHOSTDOWN
                                | libc_errno::EHOSTUNREACH,
                            ) => Level::Error,
                            _ => Level::Crit,
                        };
                        let call = format!("connect() to {self}");
                        ProxyError::io(ErrorKind::Connect, phase, &call, e).with_level(level)
                    })?;
                Ok(PeerStream::Unix(stream))
            }
        }
    }

    /// Connect within `timeout` and write `first` (the request, when it is
    /// one write) as soon as the socket takes it: a TCP connect() to a
    /// nearby peer is usually complete by the time it returns EINPROGRESS
    /// (loopback: always), so the bytes go right after it, with no wait for
    /// writability, no `SO_ERROR` read and no trip through the event loop;
    /// only when the socket is still connecting (`EAGAIN`) is writability
    /// awaited as [`PeerAddr::connect`] does. Returns the stream and how many
    /// bytes of `first` went (the caller writes the rest). A send that fails
    /// at once reports the failed connection (`ECONNREFUSED`...: the error
    /// `SO_ERROR` would have given, which the send consumes), worded as
    /// connect()'s, as nginx words it.
    ///
    /// No TCP_NODELAY here (nginx sets none on upstream connections): a
    /// request sent in one write is never held by Nagle; the caller sets it
    /// before a request whose body follows its head (see `http/mod.rs`).
    /// Unix sockets connect at once: `first` is left to the caller.
    pub async fn connect_sending(
        &self,
        timeout: Duration,
        first: &[u8],
    ) -> Result<(PeerStream, usize), ProxyError> {
        let PeerAddr::Tcp(addr) = self else {
            return Ok((self.connect(timeout).await?, 0));
        };
        let phase = Phase::Connecting;
        let failed = |e| ProxyError::io(ErrorKind::Connect, phase, "connect()", e);
        let socket = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )
        .map_err(failed)?;
        match socket.connect(&SockAddr::from(*addr)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc_errno::EINPROGRESS) => {}
            Err(e) => return Err(failed(e)),
        }
        let sent = match first {
            [] => 0,
            bytes => match socket.send_with_flags(bytes, libc_errno::MSG_NOSIGNAL) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(failed(e)),
            },
        };
        let stream = TcpStream::from_std(std::net::TcpStream::from(socket)).map_err(failed)?;
        if sent == 0 {
            // Maybe still connecting: wait as tokio's `connect` does.
            within(timeout, stream.writable())
                .await
                .map_err(|_| ProxyError::timeout(phase))?
                .map_err(failed)?;
            if let Some(e) = stream.take_error().map_err(failed)? {
                return Err(failed(e));
            }
        }
        Ok((PeerStream::Tcp(stream), sent))
    }
}

/// Linux errno values nginx tests in `ngx_event_connect_peer` (no libc dependency).
mod libc_errno {
    pub(super) const EAGAIN: i32 = 11;
    pub(super) const ENETDOWN: i32 = 100;
    pub(super) const ENETUNREACH: i32 = 101;
    pub(super) const ECONNRESET: i32 = 104;
    pub(super) const ECONNREFUSED: i32 = 111;
    pub(super) const EHOSTDOWN: i32 = 112;
    pub(super) const EHOSTUNREACH: i32 = 113;
    pub(super) const EINPROGRESS: i32 = 115;
    /// `send()` flag: an error, not SIGPIPE, on a broken connection.
    pub(super) const MSG_NOSIGNAL: i32 = 0x4000;
}

impl fmt::Display for PeerAddr {
    /// nginx's peer name: `127.0.0.1:9000`, `[::1]:9000`, `unix:/run/app.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(addr) => write!(f, "{addr}"),
            PeerAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A connected peer, TCP or unix.
#[derive(Debug)]
pub enum PeerStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl PeerStream {
    /// Whether an idle connection is still usable: not closed by the peer
    /// and with nothing unread on it (nginx's `MSG_PEEK` check on a cached
    /// connection). Never waits; a byte read here means the connection is
    /// broken anyway.
    pub fn looks_idle(&self) -> bool {
        let mut byte = [0u8; 1];
        let read = match self {
            PeerStream::Tcp(s) => s.try_read(&mut byte),
            PeerStream::Unix(s) => s.try_read(&mut byte),
        };
        matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// TCP_NODELAY on a TCP connection (not fatal: nginx only logs a failed
    /// setsockopt).
    pub fn set_nodelay(&self) {
        if let PeerStream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            PeerStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            PeerStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            PeerStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            PeerStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_request_goes_with_the_connect_and_the_stream_works_after() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let peer = PeerAddr::Tcp(listener.local_addr().expect("addr"));
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let Ok((mut stream, sent)) = peer.connect_sending(Duration::from_secs(5), request).await
        else {
            panic!("connect failed");
        };
        assert_eq!(
            sent,
            request.len(),
            "loopback: connected when connect() returns"
        );
        let (mut theirs, _) = listener.accept().await.expect("accept");
        let mut got = vec![0u8; request.len()];
        theirs.read_exact(&mut got).await.expect("read");
        assert_eq!(&got[..], &request[..]);
        theirs.write_all(b"answer").await.expect("write");
        let mut answer = [0u8; 6];
        stream.read_exact(&mut answer).await.expect("read answer");
        assert_eq!(&answer, b"answer");
        // Nothing to send: the connect alone, writable after.
        let Ok((_, sent)) = peer.connect_sending(Duration::from_secs(5), b"").await else {
            panic!("connect failed");
        };
        assert_eq!(sent, 0);
    }

    #[tokio::test]
    async fn a_refused_connect_reads_as_nginx_words_it_with_or_without_bytes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer = PeerAddr::Tcp(listener.local_addr().expect("addr"));
        drop(listener);
        for first in [&b"GET / HTTP/1.0\r\n\r\n"[..], b""] {
            let Err(e) = peer.connect_sending(Duration::from_secs(5), first).await else {
                panic!("connected to a closed port");
            };
            assert_eq!(
                e.to_string(),
                "connect() failed (111: Connection refused) while connecting to upstream"
            );
            assert_eq!(e.kind(), ErrorKind::Connect);
        }
    }

    #[test]
    fn group_targets_are_refused() {
        let err = PeerAddr::resolve(&UpstreamTarget::Group("app".into()));
        assert_eq!(err, Err(TargetError::Group("app".into())));
    }

    #[test]
    fn peers_print_as_nginx_names_them() {
        let tcp = PeerAddr::resolve(&UpstreamTarget::Tcp {
            host: "127.0.0.1".into(),
            port: 9000,
        });
        assert_eq!(tcp.map(|p| p.to_string()), Ok("127.0.0.1:9000".into()));
        let v6 = PeerAddr::resolve(&UpstreamTarget::Tcp {
            host: "[::1]".into(),
            port: 9000,
        });
        assert_eq!(v6.map(|p| p.to_string()), Ok("[::1]:9000".into()));
        let unix = PeerAddr::Unix("/run/app.sock".into());
        assert_eq!(unix.to_string(), "unix:/run/app.sock");
    }
}
