//! The I/O steps every upstream protocol shares: writing request bytes
//! within `send_timeout`, and wording a client body that could not be read.
//! nginx's words, so the log lines match (`writev() failed (32: Broken pipe)
//! while sending request to upstream`).

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::error::{ErrorKind, Phase, ProxyError};
use crate::target::PeerStream;

/// Write all of `bytes`; a write that makes no progress in `timeout` fails.
pub(crate) async fn send(
    stream: &mut PeerStream,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ProxyError> {
    let phase = Phase::SendingRequest;
    tokio::time::timeout(timeout, stream.write_all(bytes))
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
