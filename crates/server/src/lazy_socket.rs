//! An accepted plain (TCP or unix) connection that is registered with the
//! event loop only when it first has to wait.
//!
//! Most connections of one-request traffic (nginx's `uwsgi_pass`, HTTP
//! `Connection: close`) never wait: with TCP_DEFER_ACCEPT the request is
//! there when `accept()` returns, the app runs in place and the answer fits
//! the socket buffer. Registering such a socket with epoll and taking it
//! out again costs two `epoll_ctl` calls, an `epoll_wait` round trip and
//! an allocation per connection for nothing. So reads and writes go to the
//! socket directly, and only one that would block registers it
//! ([`AsyncFd`], edge-triggered: the registration reports a readiness that
//! came in between) and waits as any tokio socket does. A connection that
//! was never registered is closed without an `epoll_ctl` at all.
//!
//! The two halves borrow the socket, as tokio's `TcpStream::split` does;
//! the socket's own methods take `&self`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A connected, non-blocking socket, registered on first need.
pub(crate) struct LazySocket {
    /// The registration (`None` inside: it failed). Declared before `fd` so
    /// that it is dropped (deregistered) before the descriptor is closed.
    reg: OnceLock<Option<AsyncFd<Fd>>>,
    fd: OwnedFd,
}

/// The descriptor as the registration sees it; `LazySocket::fd` owns it.
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl AsRawFd for LazySocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for LazySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The read half of a [`LazySocket`].
pub(crate) struct LazyRead<'a>(&'a LazySocket);

/// The write half of a [`LazySocket`].
pub(crate) struct LazyWrite<'a>(&'a LazySocket);

impl LazySocket {
    /// Take a connected socket that is already non-blocking.
    pub(crate) fn new(fd: OwnedFd) -> LazySocket {
        LazySocket {
            reg: OnceLock::new(),
            fd,
        }
    }

    /// Its two halves.
    pub(crate) fn split(&self) -> (LazyRead<'_>, LazyWrite<'_>) {
        (LazyRead(self), LazyWrite(self))
    }

    /// The descriptor, taken off the event loop if it was on it (for a
    /// caller that hands it to another kind of stream).
    pub(crate) fn into_fd(self) -> OwnedFd {
        let LazySocket { reg, fd } = self;
        drop(reg);
        fd
    }

    /// Wait until bytes can be read (registering the socket).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.registered()?.readable().await.map(|_| ())
    }

    /// True once the socket had to wait (and so is on the event loop).
    #[cfg(test)]
    pub(crate) fn is_registered(&self) -> bool {
        self.reg.get().is_some()
    }

    /// The registration, made on first call.
    fn registered(&self) -> io::Result<&AsyncFd<Fd>> {
        let mut failed = None;
        let reg = self.reg.get_or_init(|| {
            let interest = Interest::READABLE | Interest::WRITABLE;
            // SAFETY: `fd` owns the descriptor and outlives the
            // registration (dropped first: see the field order).
            let made =
                unsafe { AsyncFd::register_with_interest(Fd(self.fd.as_raw_fd()), interest) };
            match made {
                Ok(reg) => Some(reg),
                Err(e) => {
                    failed = Some(io::Error::other(format!(
                        "cannot watch the connection: {e}"
                    )));
                    None
                }
            }
        });
        match reg {
            Some(reg) => Ok(reg),
            None => Err(failed.unwrap_or_else(|| {
                io::Error::other("the connection could not be watched by the event loop")
            })),
        }
    }

    /// One `recv` into the unfilled part of `buf`.
    pub(crate) fn recv(&self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        // SAFETY: recv writes at most `unfilled.len()` bytes into memory we
        // own; exactly the `n` it reports are then marked initialized.
        unsafe {
            let unfilled = buf.unfilled_mut();
            let n = retry_eintr(|| {
                libc::recv(
                    self.fd.as_raw_fd(),
                    unfilled.as_mut_ptr().cast(),
                    unfilled.len(),
                    0,
                )
            })?;
            buf.assume_init(n);
            buf.advance(n);
        }
        Ok(())
    }

    fn send(&self, data: &[u8]) -> io::Result<usize> {
        // SAFETY: the pointer and length describe `data`, alive for the call.
        retry_eintr(|| unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        })
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.reg.get().is_none() {
            match self.recv(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
        let reg = self.registered()?;
        loop {
            let mut guard = ready!(reg.poll_read_ready(cx))?;
            let room = buf.remaining();
            if let Ok(done) = guard.try_io(|_| self.recv(buf)) {
                // A short read drained the socket (edge-triggered: new data
                // raises a new event), as tokio's own streams and nginx take
                // it: the next read waits for that event instead of a `recv`
                // that fails with EAGAIN (one a keep-alive request).
                if done.is_ok() && (1..room).contains(&(room - buf.remaining())) {
                    guard.clear_ready();
                }
                return Poll::Ready(done);
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.reg.get().is_none() {
            match self.send(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
        let reg = self.registered()?;
        loop {
            let mut guard = ready!(reg.poll_write_ready(cx))?;
            if let Ok(done) = guard.try_io(|_| self.send(data)) {
                // A short write filled the socket buffer: wait for room.
                if matches!(done, Ok(n) if n > 0 && n < data.len()) {
                    guard.clear_ready();
                }
                return Poll::Ready(done);
            }
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        // SAFETY: shutdown on a descriptor we own.
        if unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_WR) } < 0 {
            let e = io::Error::last_os_error();
            // The peer is gone already: nothing left to end.
            if e.raw_os_error() != Some(libc::ENOTCONN) {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Call a system call returning a count (or -1) again while it is interrupted.
fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl AsyncRead for LazyRead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read(cx, buf)
    }
}

impl AsyncWrite for LazyWrite<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown_write())
    }
}

impl<'a> LazyWrite<'a> {
    /// The socket both halves borrow.
    pub(crate) fn socket(&self) -> &'a LazySocket {
        self.0
    }
}

/// What sendfile needs of the socket (write.rs): a socket that has not had
/// to wait is taken as writable, and one whose call would block is
/// registered then, so that the next wait is the event loop's.
impl crate::write::ReadySocket for LazySocket {
    async fn writable(&self) -> io::Result<()> {
        if self.reg.get().is_none() {
            return Ok(());
        }
        self.registered()?.writable().await.map(|_| ())
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        if self.reg.get().is_none() {
            let done = f();
            if matches!(&done, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                self.registered()?;
            }
            return done;
        }
        self.registered()?.try_io(interest, |_| f())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (LazySocket, UnixStream) {
        let Ok((ours, theirs)) = UnixStream::pair() else {
            panic!("socketpair");
        };
        assert!(ours.set_nonblocking(true).is_ok());
        (LazySocket::new(OwnedFd::from(ours)), theirs)
    }

    #[tokio::test]
    async fn bytes_already_there_are_read_without_registering() {
        let (sock, mut peer) = pair();
        assert!(peer.write_all(b"request").is_ok());
        let (mut r, mut w) = sock.split();
        let mut buf = [0u8; 16];
        let n = r.read(&mut buf).await.unwrap_or(0);
        assert_eq!(&buf[..n], b"request");
        assert!(w.write_all(b"answer").await.is_ok());
        assert!(
            !sock.is_registered(),
            "nothing waited: no epoll registration"
        );
        drop(sock);
        let mut got = Vec::new();
        assert!(peer.read_to_end(&mut got).is_ok());
        assert_eq!(got, b"answer");
    }

    #[tokio::test]
    async fn a_read_that_would_block_registers_and_wakes_when_bytes_come() {
        let (sock, mut peer) = pair();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(peer.write_all(b"late").is_ok());
            peer
        });
        let (mut r, _w) = sock.split();
        let mut buf = [0u8; 16];
        let n = r.read(&mut buf).await.unwrap_or(0);
        assert_eq!(&buf[..n], b"late");
        assert!(sock.is_registered());
        let Ok(_peer) = writer.join() else {
            panic!("writer thread");
        };
    }

    #[tokio::test]
    async fn a_write_into_a_full_socket_waits_for_the_reader() {
        let (sock, mut peer) = pair();
        let big = vec![7u8; 4 << 20];
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let _ = peer.read_to_end(&mut got);
            got.len()
        });
        {
            let (_r, mut w) = sock.split();
            assert!(w.write_all(&big).await.is_ok());
            assert!(w.shutdown().await.is_ok());
        }
        assert!(sock.is_registered(), "a full buffer had to be waited on");
        drop(sock);
        assert!(matches!(reader.join(), Ok(n) if n == big.len()));
    }

    #[tokio::test]
    async fn end_of_stream_reads_zero() {
        let (sock, peer) = pair();
        drop(peer);
        let (mut r, _w) = sock.split();
        let mut buf = [0u8; 16];
        assert!(matches!(r.read(&mut buf).await, Ok(0)));
    }
}
