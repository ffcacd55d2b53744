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

/// A read timer kept by an upstream connection from request to request
/// (`io::within_kept`): one tokio timer, armed at most once per timeout
/// period, and the deadline of the wait in progress beside it.
#[derive(Debug, Default)]
pub struct KeptTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    deadline: Option<tokio::time::Instant>,
}

/// [`within`] with a timer the caller keeps (one per upstream connection).
/// Each wait that does not finish on its first poll only records its
/// deadline: the tokio timer is left where it is unless it would fire
/// after that deadline. When it fires before the deadline (it was armed
/// for an earlier wait), it is armed again for this one. So a keep-alive
/// request neither files a timer in tokio's wheel nor resets one (a reset
/// converts the deadline to a tick, about 100 instructions); nginx keeps
/// its read timer the same way, in a tree keyed by its cached clock. A
/// timer left armed on an idle pooled connection that comes due wakes the
/// task that last waited on it once, for nothing.
pub(crate) async fn within_kept<F: Future>(
    timer: &mut KeptTimer,
    timeout: Duration,
    fut: F,
) -> Result<F::Output, TimedOut> {
    let mut fut = pin!(fut);
    timer.deadline = None;
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let deadline = *timer
            .deadline
            .get_or_insert_with(|| portico_server::clock::tokio_now() + timeout);
        let sleep = match &mut timer.sleep {
            Some(sleep) => {
                if sleep.deadline() > deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => timer
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if sleep.deadline() >= deadline {
                return Poll::Ready(Err(TimedOut));
            }
            // Armed for an earlier wait: now for this one (and polled
            // again, so that it wakes this task).
            sleep.as_mut().reset(deadline);
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
    async fn a_kept_timer_armed_for_a_longer_timeout_still_keeps_a_shorter_one() {
        // Two locations with different proxy_read_timeout share a pooled
        // connection: the second wait's deadline is the earlier one.
        let mut timer = KeptTimer::default();
        let quick = within_kept(&mut timer, Duration::from_secs(10), async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            1
        })
        .await;
        assert_eq!(quick, Ok(1));
        times_out_after_30ms(&mut timer).await;
    }

    /// A wait that never ends times out after its 30 ms, not later.
    async fn times_out_after_30ms(timer: &mut KeptTimer) {
        let start = std::time::Instant::now();
        let never = within_kept(
            timer,
            Duration::from_millis(30),
            std::future::pending::<()>(),
        )
        .await;
        assert_eq!(never, Err(TimedOut));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_kept_timer_is_reset_for_each_wait_and_still_times_out() {
        let mut timer = KeptTimer::default();
        let ready = within_kept(&mut timer, Duration::from_millis(30), async { 7 }).await;
        assert_eq!(ready, Ok(7));
        assert!(timer.sleep.is_none(), "no timer for a future ready at once");
        for n in 0..3 {
            // Each wait is shorter than the timeout, together longer.
            let later = within_kept(&mut timer, Duration::from_millis(30), async {
                tokio::time::sleep(Duration::from_millis(15)).await;
                n
            })
            .await;
            assert_eq!(later, Ok(n), "reset, not run out, at wait {n}");
        }
        assert!(timer.sleep.is_some());
        times_out_after_30ms(&mut timer).await;
    }
}
