//! The I/O steps every upstream protocol shares: writing request bytes
//! within `send_timeout`, and wording a client body that could not be read.
//! nginx's words, so the log lines match (`writev() failed (32: Broken pipe)
//! while sending request to upstream`).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Sleep;

use crate::error::{ErrorKind, Phase, ProxyError};
use crate::target::PeerStream;

/// [`within`]'s time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// `fut` within `timeout`; the timer (and the clock reading it needs) only
/// when `fut` does not finish on its first poll, as a write to a healthy
/// socket or a read of bytes already there does. `fut` is polled once per
/// wake-up, the timer after it (as `tokio::time::timeout` does, which,
/// made after a first poll that was pending, polled `fut` a second time
/// at once: a wasted read attempt on every answer awaited).
pub(crate) async fn within<F: Future>(timeout: Duration, fut: F) -> Result<F::Output, TimedOut> {
    let mut fut = pin!(fut);
    let mut timer = pin!(None::<Sleep>);
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if timer.is_none() {
            timer.set(Some(tokio::time::sleep(timeout)));
        }
        match timer.as_mut().as_pin_mut().map(|t| t.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(TimedOut)),
            _ => Poll::Pending,
        }
    })
    .await
}

/// [`within`] with a timer the caller keeps (one per upstream connection),
/// reset for each wait that does not finish on its first poll. Resetting a
/// registered timer to a later deadline only records the deadline (tokio
/// files it again in its wheel when the old one comes); a new timer per
/// wait was filed into the wheel at its first poll and taken out when
/// dropped, about 450 instructions a proxied request. A timer left armed
/// on an idle pooled connection that comes due wakes the task that last
/// waited on it once, for nothing (after `proxy_read_timeout` of idleness).
pub(crate) async fn within_kept<F: Future>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    fut: F,
) -> Result<F::Output, TimedOut> {
    let mut fut = pin!(fut);
    let mut armed = false;
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if !armed {
            armed = true;
            let deadline = portico_server::clock::tokio_now() + timeout;
            match timer {
                Some(t) => t.as_mut().reset(deadline),
                None => *timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match timer.as_mut().map(|t| t.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(TimedOut)),
            _ => Poll::Pending,
        }
    })
    .await
}

/// Write all of `bytes`; a write that makes no progress in `timeout` fails.
pub(crate) async fn send(
    stream: &mut PeerStream,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ProxyError> {
    let phase = Phase::SendingRequest;
    within(timeout, stream.write_all(bytes))
        .await
        .map_err(|_| ProxyError::timeout(phase))?
        .map_err(|e| ProxyError::io(ErrorKind::Send, phase, "writev()", e))
}

/// The client's request body failed while it was being forwarded.
pub(crate) fn client_body_error(e: portico_server::BodyError) -> ProxyError {
    let what = match e {
        portico_server::BodyError::Incomplete => "client prematurely closed connection".to_string(),
        other => other.to_string(),
    };
    ProxyError::new(ErrorKind::ClientBody, Phase::SendingRequest, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn within_gives_the_output_or_times_out_after_the_timeout() {
        let ready = within(Duration::from_secs(5), async { 7 }).await;
        assert_eq!(ready, Ok(7));
        let later = within(Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            8
        })
        .await;
        assert_eq!(later, Ok(8));
        let start = std::time::Instant::now();
        let never = within(Duration::from_millis(50), std::future::pending::<()>()).await;
        assert_eq!(never, Err(TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_kept_timer_is_reset_for_each_wait_and_still_times_out() {
        let mut timer = None;
        let ready = within_kept(&mut timer, Duration::from_millis(30), async { 7 }).await;
        assert_eq!(ready, Ok(7));
        assert!(timer.is_none(), "no timer for a future ready at once");
        for n in 0..3 {
            // Each wait is shorter than the timeout, together longer.
            let later = within_kept(&mut timer, Duration::from_millis(30), async {
                tokio::time::sleep(Duration::from_millis(15)).await;
                n
            })
            .await;
            assert_eq!(later, Ok(n), "reset, not run out, at wait {n}");
        }
        assert!(timer.is_some());
        let start = std::time::Instant::now();
        let never = within_kept(
            &mut timer,
            Duration::from_millis(30),
            std::future::pending::<()>(),
        )
        .await;
        assert_eq!(never, Err(TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
