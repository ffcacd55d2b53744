//! The I/O steps every upstream protocol shares: writing request bytes
//! within `send_timeout`, and wording a client body that could not be read.
//! nginx's words, so the log lines match (`writev() failed (32: Broken pipe)
//! while sending request to upstream`).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::error::Elapsed;

use crate::error::{ErrorKind, Phase, ProxyError};
use crate::target::PeerStream;

/// `fut` within `timeout`; the timer (and the clock reading it needs) only
/// when `fut` does not finish on its first poll, as a write to a healthy
/// socket or a read of bytes already there does.
pub(crate) async fn within<F: Future>(timeout: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = pin!(fut);
    let first = poll_fn(|cx| {
        Poll::Ready(match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        })
    })
    .await;
    match first {
        Some(out) => Ok(out),
        None => tokio::time::timeout(timeout, fut).await,
    }
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
