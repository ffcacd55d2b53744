//! Handing an HTTP/1.1 connection over to HTTP/2: telling the client
//! preface from a request line by its first bytes, and one I/O object made
//! of the connection's two halves that replays the bytes already read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::conn::FIRST_REQUEST_GRACE;

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `first` (a connection's first bytes) opens with the HTTP/2
/// preface: `Some(true)` it does, `Some(false)` it cannot, `None` too few
/// bytes to tell.
pub(crate) fn preface_state(first: &[u8]) -> Option<bool> {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Some(false)
    } else if n == PREFACE.len() {
        Some(true)
    } else {
        None
    }
}

/// On a listener that speaks HTTP/2 too: read until the first bytes tell
/// the HTTP/2 preface (prior-knowledge h2c) from an HTTP/1.x request.
/// `None`: the client went away, stayed silent, or the server stopped
/// before its first bytes came.
pub(crate) async fn sniff_preface<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    shutdown: &mut watch::Receiver<bool>,
    header_timeout: std::time::Duration,
) -> Option<bool> {
    let now = tokio::time::Instant::now();
    let mut deadline = now
        // (nginx: a new connection's first byte is due within
        // client_header_timeout, and so is the whole head)
        + header_timeout;
    let mut stopping = *shutdown.borrow();
    if stopping {
        deadline = deadline.min(now + FIRST_REQUEST_GRACE);
    }
    loop {
        if let Some(h2) = preface_state(rbuf) {
            return Some(h2);
        }
        rbuf.reserve(1024);
        tokio::select! {
            read = reader.read_buf(rbuf) => match read {
                Ok(n) if n > 0 => {}
                _ => return None,
            },
            _ = sleep_until(deadline) => return None,
            _ = shutdown.changed(), if !stopping => {
                stopping = true;
                deadline = deadline.min(tokio::time::Instant::now() + FIRST_REQUEST_GRACE);
            }
        }
    }
}

/// On a plain listener that speaks h2c: serve the connection as HTTP/2
/// if it opens with the client preface. `Some(false)`: it is HTTP/1.x, go
/// on with the bytes read so far in `rbuf`; `Some(true)`: it was served as
/// HTTP/2; `None`: the client left or idled out.
pub(crate) async fn serve_if_preface<R, W>(
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    ends: crate::conn::Ends,
    ctx: std::sync::Arc<crate::conn::ConnContext>,
    mut shutdown: watch::Receiver<bool>,
    settings: portico_config::Http2Settings,
) -> Option<bool>
where
    R: AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    // One client_header_timeout from the first byte awaited to the first
    // request, the preface included.
    let first_deadline = tokio::time::Instant::now() + ctx.timeouts.header;
    if !sniff_preface(reader, rbuf, &mut shutdown, ctx.timeouts.header).await? {
        return Some(false);
    }
    let io = Joined {
        prefix: std::mem::take(rbuf),
        reader,
        writer,
    };
    super::serve_h2_by(io, ends, ctx, shutdown, settings, first_deadline).await;
    Some(true)
}

/// A connection's read and write halves as one I/O object; reads return
/// `prefix` (bytes read before the hand-over) first.
pub(crate) struct Joined<'a, R, W> {
    pub prefix: BytesMut,
    pub reader: &'a mut R,
    pub writer: &'a mut W,
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for Joined<'_, R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut *this.reader).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Joined<'_, R, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().writer).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.writer.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().writer).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_preface_is_told_from_a_request_line_by_its_first_bytes() {
        assert_eq!(
            preface_state(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Some(true)
        );
        assert_eq!(preface_state(b"PRI * HTTP/2"), None);
        assert_eq!(preface_state(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(preface_state(b"PRI / HTTP/1.1\r\n"), Some(false));
        assert_eq!(preface_state(b""), None);
    }

    #[tokio::test]
    async fn a_joined_connection_replays_the_bytes_read_before_it() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut r, mut w) = tokio::io::split(server);
        let mut joined = Joined {
            prefix: BytesMut::from(&b"abc"[..]),
            reader: &mut r,
            writer: &mut w,
        };
        assert!(client.write_all(b"def").await.is_ok());
        let mut got = [0u8; 6];
        assert!(joined.read_exact(&mut got).await.is_ok());
        assert_eq!(&got, b"abcdef");
        assert!(joined.write_all(b"out").await.is_ok());
        let mut back = [0u8; 3];
        assert!(client.read_exact(&mut back).await.is_ok());
        assert_eq!(&back, b"out");
    }
}
