//! The time limits of a client connection, with nginx's names and defaults
//! ([`Timeouts`]), and [`SendTimeout`], the writer that enforces
//! `send_timeout` between two successful writes.
//!
//! uWSGI's options map onto them (docs/compat.md): `--http-timeout` sets the
//! head, body and send limits of HTTP listeners, `--socket-timeout` (4 s,
//! uWSGI's default) those of uwsgi listeners.

use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::{Sleep, sleep};

use crate::write::SendFile;

/// nginx's `client_header_timeout` default: one deadline for a whole request
/// head, from its first byte (and for a new connection's first byte).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's `send_timeout` default: longest wait between two writes.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's `keepalive_timeout` default: how long an idle persistent
/// connection is kept (longer than common load balancers' idle timeouts,
/// unlike gunicorn's 2 s).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// uWSGI's `--socket-timeout` default, used on uwsgi listeners: the front
/// server sends a whole packet at once, so a peer 4 s silent is gone.
pub const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(4);

/// The time limits of one listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `client_header_timeout`: a request head must be complete this long
    /// after its first byte; a new connection must send its first byte
    /// within it too.
    pub header: Duration,
    /// `client_body_timeout`: longest wait for the next request body byte.
    pub body: Duration,
    /// `send_timeout`: longest wait for the client to take more of the response.
    pub send: Duration,
    /// `keepalive_timeout`: how long an idle persistent connection is kept
    /// (a location's own `keepalive_timeout` wins for the next request).
    pub keepalive: Duration,
}

impl Timeouts {
    /// nginx's defaults, used on HTTP listeners.
    pub const HTTP: Timeouts = Timeouts {
        header: DEFAULT_HEADER_TIMEOUT,
        body: crate::body::DEFAULT_BODY_TIMEOUT,
        send: DEFAULT_SEND_TIMEOUT,
        keepalive: DEFAULT_KEEPALIVE_TIMEOUT,
    };

    /// uWSGI's `--socket-timeout` default for every limit, used on uwsgi listeners.
    pub const UWSGI: Timeouts = Timeouts {
        header: DEFAULT_SOCKET_TIMEOUT,
        body: DEFAULT_SOCKET_TIMEOUT,
        send: DEFAULT_SOCKET_TIMEOUT,
        keepalive: DEFAULT_SOCKET_TIMEOUT,
    };

    /// These limits with head, body and send set to `t` (uWSGI's
    /// `--http-timeout` and `--socket-timeout`).
    pub fn all_io(self, t: Duration) -> Timeouts {
        Timeouts {
            header: t,
            body: t,
            send: t,
            ..self
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::HTTP
    }
}

/// Largest file region sent in one go under `send_timeout`: the client must
/// take this much within the timeout (about 4 KiB/s at 60 s).
const SENDFILE_STEP: u64 = 256 * 1024;

/// A writer that fails with `TimedOut` when the client takes nothing for
/// `limit` (nginx's `send_timeout`, counted between two successful writes).
/// The timer is allocated only while a write waits.
pub(crate) struct SendTimeout<'a, W> {
    inner: &'a mut W,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<'a, W> SendTimeout<'a, W> {
    pub(crate) fn new(inner: &'a mut W, limit: Duration) -> SendTimeout<'a, W> {
        SendTimeout {
            inner,
            limit,
            timer: None,
        }
    }

    /// On `Pending`, arm the timer (or see it expire); on progress, drop it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self.timer.get_or_insert_with(|| Box::pin(sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.timer = None;
                        Poll::Ready(Err(timed_out(limit)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

fn timed_out(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "client took nothing for {} s (send_timeout)",
            limit.as_secs_f64()
        ),
    )
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SendTimeout<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut *self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut *self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut *self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<W: SendFile> SendFile for SendTimeout<'_, W> {
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        let mut sent = 0;
        while sent < len {
            let step = (len - sent).min(SENDFILE_STEP);
            let n =
                tokio::time::timeout(self.limit, self.inner.send_file(file, offset + sent, step))
                    .await
                    .map_err(|_| timed_out(self.limit))??;
            sent += n;
            if n < step {
                break;
            }
        }
        Ok(sent)
    }

    async fn write_more(&mut self, data: &[u8]) -> io::Result<()> {
        let limit = self.limit;
        let mut write = std::pin::pin!(self.inner.write_more(data));
        // Most such writes (a small answer, the last of a connection) are
        // taken at once: no timer is made for them.
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        if let Poll::Ready(done) = first {
            return done;
        }
        tokio::time::timeout(limit, write)
            .await
            .map_err(|_| timed_out(limit))?
    }

    fn needs_shutdown(&self) -> bool {
        self.inner.needs_shutdown()
    }
}

/// A writer that never takes anything (tests).
#[cfg(test)]
struct Stuck;

#[cfg(test)]
impl AsyncWrite for Stuck {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Pending
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
impl SendFile for Stuck {
    async fn send_file(&mut self, _: &File, _: u64, _: u64) -> io::Result<u64> {
        std::future::pending().await
    }
    async fn write_more(&mut self, _: &[u8]) -> io::Result<()> {
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// The send timeout of the tests that write to a [`Stuck`] client.
    const STUCK_SEND: Duration = Duration::from_millis(50);

    /// Asserts that `write`, to a [`Stuck`] client through a `SendTimeout` of
    /// [`STUCK_SEND`], fails with `TimedOut`, and not before that timeout.
    async fn assert_times_out(write: impl Future<Output = io::Result<()>>) {
        let started = tokio::time::Instant::now();
        let Err(e) = write.await else {
            panic!("a stuck write must fail")
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= STUCK_SEND);
    }

    #[tokio::test]
    async fn a_write_more_the_client_never_takes_times_out_too() {
        let mut stuck = Stuck;
        let mut w = SendTimeout::new(&mut stuck, STUCK_SEND);
        assert_times_out(w.write_more(b"hello")).await;
    }

    #[tokio::test]
    async fn a_client_that_takes_nothing_times_out_after_the_send_timeout() {
        let mut stuck = Stuck;
        let mut w = SendTimeout::new(&mut stuck, STUCK_SEND);
        assert_times_out(w.write_all(b"hello")).await;
    }

    #[tokio::test]
    async fn writes_that_progress_never_arm_the_timer() {
        let mut sink: Vec<u8> = Vec::new();
        let mut w = SendTimeout::new(&mut sink, Duration::from_millis(1));
        assert!(w.write_all(b"hello").await.is_ok());
        assert!(w.timer.is_none());
        assert_eq!(sink, b"hello");
    }

    #[test]
    fn http_and_uwsgi_defaults_follow_nginx_and_uwsgi() {
        assert_eq!(Timeouts::HTTP.header, Duration::from_secs(60));
        assert_eq!(Timeouts::HTTP.body, Duration::from_secs(60));
        assert_eq!(Timeouts::HTTP.keepalive, Duration::from_secs(75));
        assert_eq!(Timeouts::UWSGI.body, Duration::from_secs(4));
        let t = Timeouts::HTTP.all_io(Duration::from_secs(9));
        let nine = Duration::from_secs(9);
        assert_eq!((t.header, t.body, t.send), (nine, nine, nine));
        assert_eq!(t.keepalive, Duration::from_secs(75));
    }
}
