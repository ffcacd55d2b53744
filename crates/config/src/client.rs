//! How client connections are read and timed: `--post-buffering`,
//! `--http-timeout`, `--socket-timeout`, and nginx's `client_*`,
//! `send_timeout` and `keepalive_timeout` (folded in by the binary).

use std::path::PathBuf;
use std::time::Duration;

/// How request bodies are received and how long clients may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Request bodies are received in full before the app runs, in memory
    /// up to this many bytes, then in a temporary file (`--post-buffering`,
    /// nginx's `client_body_buffer_size`); 0: bodies stream to the app.
    pub post_buffering: usize,
    /// Where temporary body files go (nginx's `client_body_temp_path`);
    /// `None`: `$TMPDIR` or `/tmp`.
    pub body_temp_dir: Option<PathBuf>,
    /// HTTP: a whole request head (`client_header_timeout`).
    pub header_timeout: Duration,
    /// HTTP: between two body reads (`client_body_timeout`).
    pub body_timeout: Duration,
    /// HTTP: between two writes (`send_timeout`).
    pub send_timeout: Duration,
    /// HTTP: an idle persistent connection (`keepalive_timeout`).
    pub keepalive_timeout: Duration,
    /// uwsgi listeners: packet, body reads, writes (`--socket-timeout`).
    pub socket_timeout: Duration,
}

/// Default `--post-buffering`: nginx's `client_body_buffer_size` on 64-bit
/// platforms. uWSGI's default is 0 (the app reads from the socket), which
/// lets a client that stalls its body hold a worker (docs/compat.md).
pub(crate) const DEFAULT_POST_BUFFERING: usize = 16 * 1024;
/// nginx's `client_header_timeout`, `client_body_timeout`, `send_timeout`
/// default, and uWSGI's `--http-timeout`.
pub(crate) const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's `keepalive_timeout` default.
pub(crate) const DEFAULT_CLIENT_KEEPALIVE: Duration = Duration::from_secs(75);
/// uWSGI's `--socket-timeout` default.
pub(crate) const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(4);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            post_buffering: DEFAULT_POST_BUFFERING,
            body_temp_dir: None,
            header_timeout: DEFAULT_HTTP_TIMEOUT,
            body_timeout: DEFAULT_HTTP_TIMEOUT,
            send_timeout: DEFAULT_HTTP_TIMEOUT,
            keepalive_timeout: DEFAULT_CLIENT_KEEPALIVE,
            socket_timeout: DEFAULT_SOCKET_TIMEOUT,
        }
    }
}
