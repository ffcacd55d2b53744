//! Why talking to an upstream failed, in pingora's spirit: what went wrong
//! ([`ErrorKind`]), who is at fault ([`Side`]), in which phase of the
//! exchange ([`Phase`]), and whether the request can safely go to another
//! peer (nothing was sent yet). `proxy_next_upstream` will decide from these.
//!
//! [`ProxyError`]'s `Display` is nginx's own wording (`connect() failed (111:
//! Connection refused) while connecting to upstream`), so log lines read the
//! same as nginx's; the caller appends the request context.

use std::fmt;
use std::io;

/// Who is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client (went away, sent a broken body).
    Client,
    /// The upstream peer (refused, reset, timed out, answered garbage).
    Upstream,
    /// Portico itself (a request it cannot encode, a misuse).
    Internal,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// connect() failed (refused, unreachable, permission denied, ...).
    Connect,
    /// No connection within `connect_timeout`.
    ConnectTimeout,
    /// Writing the request failed (reset, broken pipe).
    Send,
    /// A write made no progress within `send_timeout`.
    SendTimeout,
    /// Reading the response failed (reset).
    Read,
    /// A read made no progress within `read_timeout`.
    ReadTimeout,
    /// The upstream closed before the end of the head (or of a framed body).
    ClosedEarly,
    /// The response head is malformed (bad line, bad status, bad framing).
    InvalidHeader,
    /// The response head does not fit the header buffer.
    HeaderTooBig,
    /// The request cannot be expressed in the protocol (uwsgi vars > 64 KiB).
    RequestTooBig,
    /// The client's request body could not be read.
    ClientBody,
    /// The handler was given a request it cannot forward.
    Unsupported,
}

/// Where in the exchange the failure happened: nginx's `while ...` phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before any connection exists (encoding the request).
    Preparing,
    Connecting,
    SendingRequest,
    ReadingHeader,
    /// After the head was passed on: the client already has a status.
    ReadingBody,
}

impl Phase {
    /// nginx's log phrase for the phase, empty when nginx has none.
    pub fn nginx_phrase(self) -> &'static str {
        match self {
            Phase::Preparing => "",
            Phase::Connecting => " while connecting to upstream",
            Phase::SendingRequest => " while sending request to upstream",
            Phase::ReadingHeader => " while reading response header from upstream",
            Phase::ReadingBody => " while reading upstream",
        }
    }
}

/// nginx's log level for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Alert,
    Crit,
    Error,
    Warn,
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Alert => "alert",
            Level::Crit => "crit",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }
}

/// One failed upstream exchange.
#[derive(Debug)]
pub struct ProxyError {
    kind: ErrorKind,
    side: Side,
    phase: Phase,
    /// Some request bytes reached the upstream: a retry may repeat side effects.
    request_sent: bool,
    level: Level,
    /// nginx's wording of what failed, without the `while ...` phrase.
    what: String,
    source: Option<io::Error>,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, phase: Phase, what: impl Into<String>) -> ProxyError {
        let side = match kind {
            ErrorKind::ClientBody => Side::Client,
            ErrorKind::RequestTooBig | ErrorKind::Unsupported => Side::Internal,
            _ => Side::Upstream,
        };
        let level = match kind {
            ErrorKind::RequestTooBig => Level::Alert,
            ErrorKind::ClientBody => Level::Info,
            _ => Level::Error,
        };
        ProxyError {
            kind,
            side,
            phase,
            request_sent: !matches!(phase, Phase::Preparing | Phase::Connecting),
            level,
            what: what.into(),
            source: None,
        }
    }

    /// An I/O failure, worded as nginx does: `{call} failed (111: Connection refused)`.
    pub fn io(kind: ErrorKind, phase: Phase, call: &str, err: io::Error) -> ProxyError {
        let what = format!("{call} failed ({})", errno_text(&err));
        let mut e = ProxyError::new(kind, phase, what);
        e.source = Some(err);
        e
    }

    /// A timeout, worded as nginx does.
    pub fn timeout(phase: Phase) -> ProxyError {
        let kind = match phase {
            Phase::Connecting => ErrorKind::ConnectTimeout,
            Phase::SendingRequest => ErrorKind::SendTimeout,
            _ => ErrorKind::ReadTimeout,
        };
        ProxyError::new(
            kind,
            phase,
            "upstream timed out (110: Connection timed out)",
        )
    }

    /// Override nginx's log level (e.g. `crit` for a unix connect() denied).
    pub fn with_level(mut self, level: Level) -> ProxyError {
        self.level = level;
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// Whether any request byte may have reached the upstream.
    pub fn request_sent(&self) -> bool {
        self.request_sent
    }

    /// Safe to try another peer: the upstream failed and saw nothing of the
    /// request. (nginx also retries idempotent requests after sending them;
    /// that policy belongs to the caller, which knows the method.)
    pub fn retry_safe(&self) -> bool {
        self.side == Side::Upstream && !self.request_sent
    }

    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ConnectTimeout | ErrorKind::SendTimeout | ErrorKind::ReadTimeout
        )
    }

    /// The status nginx answers with when this happens before the head was sent.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::ConnectTimeout | ErrorKind::SendTimeout | ErrorKind::ReadTimeout => 504,
            ErrorKind::RequestTooBig | ErrorKind::Unsupported => 500,
            ErrorKind::ClientBody => 400,
            _ => 502,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.what, self.phase.nginx_phrase())
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `111: Connection refused`, as nginx prints an errno (Rust's own Display
/// says `Connection refused (os error 111)`).
pub fn errno_text(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => {
            let suffix = format!(" (os error {code})");
            let msg = text.strip_suffix(&suffix).unwrap_or(&text);
            format!("{code}: {msg}")
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_refused_reads_like_nginx_and_is_retry_safe() {
        let err = io::Error::from_raw_os_error(111);
        let e = ProxyError::io(ErrorKind::Connect, Phase::Connecting, "connect()", err);
        assert_eq!(
            e.to_string(),
            "connect() failed (111: Connection refused) while connecting to upstream"
        );
        assert_eq!((e.side(), e.status()), (Side::Upstream, 502));
        assert!(e.retry_safe());
    }

    #[test]
    fn read_timeout_reads_like_nginx_and_is_not_retry_safe() {
        let e = ProxyError::timeout(Phase::ReadingHeader);
        assert_eq!(
            e.to_string(),
            "upstream timed out (110: Connection timed out) while reading response header from upstream"
        );
        assert_eq!(e.status(), 504);
        assert!(e.is_timeout());
        assert!(!e.retry_safe(), "the request was already sent");
    }

    #[test]
    fn internal_and_client_failures_are_never_retried() {
        let too_big = ProxyError::new(
            ErrorKind::RequestTooBig,
            Phase::Preparing,
            "uwsgi request is too big: 70000",
        );
        assert_eq!((too_big.side(), too_big.status()), (Side::Internal, 500));
        assert_eq!(too_big.level(), Level::Alert);
        assert!(!too_big.retry_safe());
        assert_eq!(too_big.to_string(), "uwsgi request is too big: 70000");
    }
}
