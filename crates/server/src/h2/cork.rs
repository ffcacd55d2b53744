//! Write coalescing under `h2`: the bytes `h2` writes are kept in one
//! buffer and go to the socket when the connection's driver has nothing
//! more to do (its future is about to wait) or the buffer is full, so the
//! responses to all the requests read in one go leave in one `writev`
//! (one TLS record run on TLS) instead of one per response.
//!
//! `h2` cannot do this itself: a DATA frame of more than 256 bytes is
//! chained to its write buffer and flushed before the next frame is
//! encoded, and every `accept()` flushes what the previous stream queued,
//! so a connection with ten streams in flight made ten writes of ~4 KiB
//! (nginx corks the socket for the same reason: `tcp_nopush`). The buffer
//! holds at most [`CAP`] bytes; past that `h2`'s writes wait for the
//! socket, which is the back-pressure it had before.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before `h2`'s writes wait for the socket.
pub(super) const CAP: usize = 64 * 1024;

/// Buffer capacity kept once drained (more is given back).
const KEEP: usize = 16 * 1024;

struct Inner<T> {
    io: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    pos: usize,
    /// A failed write, reported at `h2`'s next write or flush.
    failed: Option<io::Error>,
}

impl<T: AsyncWrite + Unpin> Inner<T> {
    /// Write out the buffer; Ready once it is empty (or the write failed).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.pos < self.buf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.buf[self.pos..]) {
                Poll::Ready(Ok(0)) => {
                    self.failed = Some(io::ErrorKind::WriteZero.into());
                    break;
                }
                Poll::Ready(Ok(n)) => self.pos += n,
                Poll::Ready(Err(e)) => {
                    self.failed = Some(e);
                    break;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() > KEEP {
            self.buf.shrink_to(KEEP);
        }
        Poll::Ready(())
    }

    fn take_failure(&mut self) -> io::Result<()> {
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Room for `len` more bytes: drain first if they would not fit.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        self.take_failure()?;
        if self.buf.len() - self.pos + len > CAP {
            if self.poll_drain(cx).is_pending() {
                return Poll::Pending;
            }
            self.take_failure()?;
        }
        Poll::Ready(Ok(()))
    }
}

/// The I/O `h2` is given: reads pass through, writes are buffered.
pub(super) struct Corked<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// The driver's handle: [`Uncork::poll_drain`] when it is about to wait.
pub(super) struct Uncork<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

fn lock<T>(inner: &Mutex<Inner<T>>) -> MutexGuard<'_, Inner<T>> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wrap `io`: the I/O for `h2` and the handle that writes its buffer out.
pub(super) fn cork<T>(io: T) -> (Corked<T>, Uncork<T>) {
    let inner = Arc::new(Mutex::new(Inner {
        io,
        buf: Vec::new(),
        pos: 0,
        failed: None,
    }));
    (
        Corked {
            inner: inner.clone(),
        },
        Uncork { inner },
    )
}

impl<T: AsyncWrite + Unpin> Uncork<T> {
    /// Write out what `h2` wrote; Pending (with the waker registered on
    /// the socket) while the socket takes no more.
    pub(super) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<()> {
        lock(&self.inner).poll_drain(cx)
    }
}

/// How long what is left in the buffer when the driver ends may take to
/// go out (a graceful end has already written it: `h2` shuts the I/O down).
const LAST_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the driver `fut`, writing out the buffer whenever it waits, and
/// what is left of it once the driver ends.
pub(super) async fn uncorking<F, T>(fut: F, uncork: Uncork<T>) -> F::Output
where
    F: std::future::Future,
    T: AsyncWrite + Unpin,
{
    tokio::pin!(fut);
    let out = std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(out),
        Poll::Pending => {
            // Pending here only means the socket is full: the task is
            // woken when it drains, and polls the driver again.
            let _ = uncork.poll_drain(cx);
            Poll::Pending
        }
    })
    .await;
    let _ =
        tokio::time::timeout(LAST_DRAIN, std::future::poll_fn(|cx| uncork.poll_drain(cx))).await;
    out
}

impl<T: AsyncRead + Unpin> AsyncRead for Corked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.inner).io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Corked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut inner = lock(&self.inner);
        std::task::ready!(inner.poll_room(cx, data.len()))?;
        let take = data.len().min(CAP);
        inner.buf.extend_from_slice(&data[..take]);
        Poll::Ready(Ok(take))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut inner = lock(&self.inner);
        std::task::ready!(inner.poll_room(cx, total.min(CAP)))?;
        let mut taken = 0;
        for b in bufs {
            let take = b.len().min(CAP - taken);
            inner.buf.extend_from_slice(&b[..take]);
            taken += take;
            if taken == CAP {
                break;
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Buffered bytes count as flushed: the driver writes them out before
    /// it waits, which is before anything could wait on them.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(lock(&self.inner).take_failure())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = lock(&self.inner);
        std::task::ready!(inner.poll_drain(cx));
        inner.take_failure()?;
        Pin::new(&mut inner.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_in_the_buffer_until_the_driver_drains_it() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let (mut corked, uncork) = cork(near);
        corked.write_all(b"one ").await.ok();
        corked.write_all(b"two").await.ok();
        corked.flush().await.ok();
        let mut got = [0u8; 16];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), far.read(&mut got)).await;
        assert!(
            early.is_err(),
            "nothing reaches the socket before the drain"
        );
        std::future::poll_fn(|cx| uncork.poll_drain(cx)).await;
        let n = far.read(&mut got).await.unwrap_or(0);
        assert_eq!(&got[..n], b"one two");
    }

    #[tokio::test]
    async fn a_full_buffer_is_written_out_before_more_is_taken() {
        let (near, mut far) = tokio::io::duplex(4 * CAP);
        let (mut corked, _uncork) = cork(near);
        let block = vec![7u8; CAP / 2 + 1];
        corked.write_all(&block).await.ok();
        corked.write_all(&block).await.ok();
        let mut got = vec![0u8; CAP];
        let n = far.read(&mut got).await.unwrap_or(0);
        assert_eq!(n, block.len(), "the first block went out to make room");
    }

    #[tokio::test]
    async fn shutdown_writes_out_the_buffer_first() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let (mut corked, _uncork) = cork(near);
        corked.write_all(b"last words").await.ok();
        corked.shutdown().await.ok();
        let mut all = Vec::new();
        far.read_to_end(&mut all).await.ok();
        assert_eq!(all, b"last words");
    }
}
