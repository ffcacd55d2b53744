//! Sending a file region on a connection: the [`SendFile`] transports
//! (sendfile(2) on TCP and unix sockets, with MSG_MORE for the bytes before
//! it; a read-and-write copy where there is no socket), and the readiness
//! waits the non-blocking system calls need. The framing around the file is
//! the parent module's.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;

use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};

/// Transports that can send a file region without copying it through user space.
pub(crate) trait SendFile {
    /// Send up to `len` bytes of `file` from `offset`; returns how many were sent
    /// (fewer only if the file ended).
    fn send_file(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = io::Result<u64>>;

    /// Write `data` telling the kernel more follows at once (MSG_MORE).
    fn write_more(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>>;

    /// Whether a connection that ends must be shut down before it is
    /// dropped: a TLS stream sends its close_notify then. A plain socket's
    /// close sends the FIN by itself, so the `shutdown()` system call is
    /// only worth making there before a lingering read.
    fn needs_shutdown(&self) -> bool {
        true
    }
}

impl SendFile for crate::lazy_socket::LazyWrite<'_> {
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        sendfile_loop(self.socket(), file, offset, len).await
    }

    async fn write_more(&mut self, data: &[u8]) -> io::Result<()> {
        send_more(self.socket(), data).await
    }

    fn needs_shutdown(&self) -> bool {
        false
    }
}

impl SendFile for tokio::net::tcp::WriteHalf<'_> {
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        sendfile_loop::<tokio::net::TcpStream>(self.as_ref(), file, offset, len).await
    }

    async fn write_more(&mut self, data: &[u8]) -> io::Result<()> {
        send_more::<tokio::net::TcpStream>(self.as_ref(), data).await
    }
}

impl SendFile for tokio::net::unix::WriteHalf<'_> {
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        sendfile_loop::<tokio::net::UnixStream>(self.as_ref(), file, offset, len).await
    }

    async fn write_more(&mut self, data: &[u8]) -> io::Result<()> {
        send_more::<tokio::net::UnixStream>(self.as_ref(), data).await
    }
}

/// An in-memory stream (`tokio::io::duplex`: connection tests, in-process
/// callers) has no socket to sendfile(2) into: the region is read and written.
impl SendFile for tokio::io::WriteHalf<tokio::io::DuplexStream> {
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        copy_file_region(self, file, offset, len).await
    }

    async fn write_more(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data).await
    }
}

/// The sendfile fallback: `len` bytes of `file` from `offset` through a
/// buffer; fewer only if the file ended.
async fn copy_file_region<W: AsyncWrite + Unpin>(
    writer: &mut W,
    file: &File,
    offset: u64,
    len: u64,
) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len.min(64 * 1024) as usize];
    let mut sent = 0u64;
    while sent < len {
        let want = (len - sent).min(buf.len() as u64) as usize;
        let Some(chunk) = buf.get_mut(..want) else {
            break;
        };
        let n = file.read_at(chunk, offset + sent)?;
        if n == 0 {
            break;
        }
        writer.write_all(chunk.get(..n).unwrap_or_default()).await?;
        sent += n as u64;
    }
    Ok(sent)
}

/// send(2) with MSG_MORE until all of `data` is written.
async fn send_more<S: ReadySocket>(stream: &S, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        let result = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: the pointer and length describe `data`, alive for the call.
            let n = unsafe {
                libc::send(
                    stream.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match result {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The readiness calls sendfile needs; TCP and unix streams both have them.
pub(crate) trait ReadySocket: AsRawFd {
    fn writable(&self) -> impl Future<Output = io::Result<()>>;
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

impl ReadySocket for tokio::net::TcpStream {
    fn writable(&self) -> impl Future<Output = io::Result<()>> {
        tokio::net::TcpStream::writable(self)
    }
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        tokio::net::TcpStream::try_io(self, interest, f)
    }
}

impl ReadySocket for tokio::net::UnixStream {
    fn writable(&self) -> impl Future<Output = io::Result<()>> {
        tokio::net::UnixStream::writable(self)
    }
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        tokio::net::UnixStream::try_io(self, interest, f)
    }
}

/// sendfile(2) until `len` bytes went out or the file ended, waiting for
/// writability in between (the socket is non-blocking).
async fn sendfile_loop<S: ReadySocket>(
    stream: &S,
    file: &File,
    offset: u64,
    len: u64,
) -> io::Result<u64> {
    let mut off = offset as libc::off_t;
    let end = offset + len;
    while (off as u64) < end {
        stream.writable().await?;
        let want = ((end - off as u64).min(1 << 30)) as usize;
        let result = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call;
            // sendfile updates `off` and touches no other memory of ours.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match result {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(off as u64 - offset)
}
