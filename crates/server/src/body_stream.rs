//! A streamed response body, as its consumer (the connection writer) sees
//! it: a sequence of [`StreamItem`]s pulled one at a time.
//!
//! Two producers stand behind the one type. A producer on another thread
//! (a Python thread running a WSGI app) pushes into a bounded channel, so a
//! slow client slows the app. A producer on the connection's own runtime
//! (the reverse proxy reading its upstream socket) is polled directly
//! ([`PullBody`]): no pump task and no channel hop per chunk, and dropping
//! the stream (the client went away) drops the upstream read with it.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::handler::StreamItem;

/// A body produced on the connection's runtime, polled by its consumer.
///
/// `poll_next` yields items until [`StreamItem::End`] (clean) or
/// [`StreamItem::Abort`] (cut short); `Ready(None)` after either, or when
/// the producer has nothing more, means the same as `Abort` unless `End`
/// was yielded.
pub trait PullBody: Send {
    /// The next piece of the body, or `Pending` until it is there.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>>;
}

enum Source {
    Channel(mpsc::Receiver<StreamItem>),
    Pull(Pin<Box<dyn PullBody>>),
}

/// A streamed response body: a channel from another thread, or a
/// [`PullBody`] polled in place.
pub struct BodyStream {
    source: Source,
}

impl BodyStream {
    /// A body pushed through a bounded channel (by a producer thread).
    pub fn channel(rx: mpsc::Receiver<StreamItem>) -> BodyStream {
        BodyStream {
            source: Source::Channel(rx),
        }
    }

    /// A body polled in place.
    pub fn pull(body: impl PullBody + 'static) -> BodyStream {
        BodyStream {
            source: Source::Pull(Box::pin(body)),
        }
    }

    /// The next piece; `None` when the producer is gone (after `End`, or
    /// without it: a truncated body).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        match &mut self.source {
            Source::Channel(rx) => rx.poll_recv(cx),
            Source::Pull(body) => body.as_mut().poll_next(cx),
        }
    }

    /// The next piece if it is there now, without waiting (`None`: not yet,
    /// or never).
    pub fn try_next(&mut self) -> Option<StreamItem> {
        match self.poll_next(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(item) => item,
            Poll::Pending => None,
        }
    }

    /// The next piece (see [`BodyStream::poll_next`]).
    pub async fn next(&mut self) -> Option<StreamItem> {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.source {
            Source::Channel(_) => "BodyStream::Channel",
            Source::Pull(_) => "BodyStream::Pull",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    struct Countdown(u8);

    impl PullBody for Countdown {
        fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
            Poll::Ready(match self.0 {
                0 => None,
                1 => {
                    self.0 = 0;
                    Some(StreamItem::End)
                }
                n => {
                    self.0 = n - 1;
                    Some(StreamItem::Data(Bytes::from(vec![b'x'; usize::from(n)])))
                }
            })
        }
    }

    async fn collect(mut stream: BodyStream) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                StreamItem::Data(d) => out.extend_from_slice(&d),
                StreamItem::End => return (out, true),
                _ => return (out, false),
            }
        }
        (out, false)
    }

    #[tokio::test]
    async fn a_pulled_body_yields_its_pieces_then_end() {
        let (body, clean) = collect(BodyStream::pull(Countdown(3))).await;
        assert_eq!(body, b"xxxxx");
        assert!(clean);
    }

    #[tokio::test]
    async fn a_channel_closed_without_end_is_a_truncated_body() {
        let (tx, rx) = mpsc::channel(2);
        assert!(
            tx.try_send(StreamItem::Data(Bytes::from_static(b"ab")))
                .is_ok()
        );
        drop(tx);
        let (body, clean) = collect(BodyStream::channel(rx)).await;
        assert_eq!(body, b"ab");
        assert!(!clean);
    }
}
