//! The two error types of the HTTP/1 codecs: [`HeadError`] (a bad request head, carrying
//! the status code to answer with) and [`ChunkedError`] (a bad chunked body, always
//! answered with 400 and a closed connection).
//!
//! Both are small, `Copy`-cheap values with a static reason: building one never allocates,
//! so a flood of bad requests costs no more than a flood of good ones.

use std::fmt;

/// Why a request head was rejected, and with which status code to answer.
///
/// Every `HeadError` means the connection must be closed after the error response: the
/// parser can no longer tell where the next request would start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError {
    status: u16,
    reason: &'static str,
}

impl HeadError {
    /// 400 Bad Request: the head is malformed or ambiguous.
    pub(crate) const fn bad_request(reason: &'static str) -> Self {
        Self {
            status: 400,
            reason,
        }
    }

    /// 414 URI Too Long: the request line is over its limit.
    pub(crate) const fn uri_too_long(reason: &'static str) -> Self {
        Self {
            status: 414,
            reason,
        }
    }

    /// 431 Request Header Fields Too Large: a field line, the field count or the whole
    /// head is over its limit.
    pub(crate) const fn fields_too_large(reason: &'static str) -> Self {
        Self {
            status: 431,
            reason,
        }
    }

    /// 501 Not Implemented: a well-formed request we do not support (a transfer coding
    /// other than `chunked`, the CONNECT method).
    pub(crate) const fn not_implemented(reason: &'static str) -> Self {
        Self {
            status: 501,
            reason,
        }
    }

    /// 505 HTTP Version Not Supported: `HTTP/x.y` with a version other than 1.0 or 1.1.
    pub(crate) const fn version_not_supported(reason: &'static str) -> Self {
        Self {
            status: 505,
            reason,
        }
    }

    /// The status code to answer with: 400, 414, 431, 501 or 505.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A short human-readable reason, e.g. `"bare LF in request head"`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad request head ({}): {}", self.status, self.reason)
    }
}

impl std::error::Error for HeadError {}

/// Why a chunked request body was rejected. Always answered with 400 and a closed
/// connection: after a framing error the rest of the stream is meaningless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedError {
    reason: &'static str,
}

impl ChunkedError {
    pub(crate) const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// A short human-readable reason, e.g. `"chunk size is not a hex number"`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad chunked body: {}", self.reason)
    }
}

impl std::error::Error for ChunkedError {}
