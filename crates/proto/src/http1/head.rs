//! The HTTP/1.x request head parser: request line, header fields, and the framing
//! decisions derived from them (body length, keep-alive, `Expect: 100-continue`).
//!
//! It works on a `BytesMut` the connection reads into and never touches a socket. It is
//! strict on purpose: bare LF, obs-fold, whitespace before a colon, duplicate or
//! malformed `Content-Length`, and `Transfer-Encoding` next to `Content-Length` are all
//! errors, because a lenient parser in front of (or behind) a strict one is how request
//! smuggling happens.
//!
//! Hot path notes: a complete head is validated in one forward pass (each byte is looked
//! at once, through lookup tables); field positions go straight into the `Vec` the
//! returned [`Headers`] keeps (no `Bytes` per name and value), and the other `Bytes`
//! are slices of the one frozen head buffer, so the only allocation per request is that
//! `Vec`. An incomplete head
//! is re-scanned from the start on the next call (like hyper/httparse); the scan is
//! bounded by [`HeadLimits::max_head`].

use bytes::{Bytes, BytesMut};

use super::chars::{head, is_target_byte, is_tchar, range};
use super::error::HeadError;
use super::field::{BARE_LF, CR_WITHOUT_LF, FieldLine, FieldScanError, scan_field_line};
use super::framing::Facts;
use super::headers::{Field, Headers};
use super::target::{PathPart, split_target};

/// Default limit on the request line (method, target, version; without CRLF): 8 KiB,
/// like gunicorn's `limit_request_line`, enough for any sane URL.
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
/// Default limit on one header field line (without CRLF): 8 KiB, like gunicorn's
/// `limit_request_field_size`; long cookies fit, a memory-exhaustion attempt does not.
pub const DEFAULT_MAX_FIELD: usize = 8 * 1024;
/// Default limit on the number of header fields: 100, gunicorn's `limit_request_fields`.
pub const DEFAULT_MAX_FIELDS: usize = 100;
/// Default limit on the whole head including CRLFs: 64 KiB, so one connection cannot
/// make a worker buffer more than that before a request is even dispatched.
pub const DEFAULT_MAX_HEAD: usize = 64 * 1024;
/// Empty lines (CRLF) tolerated before the request line (RFC 9112 §2.2 allows some,
/// for clients that send an extra CRLF after a POST body); one more is a 400.
pub const MAX_LEADING_EMPTY_LINES: usize = 2;
/// Room for field positions made before the scan (32 bytes each): a usual request's
/// head fits, a browser's (15-25 fields) grows the list once.
const FIELDS_AT_FIRST: usize = 16;

/// The HTTP version of a request. Anything else is rejected with 505 or 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
    /// HTTP/2: never parsed from a request line; set by the HTTP/2 driver
    /// for a request that arrived as an HTTP/2 stream.
    Http2,
}

impl Version {
    /// The version as it appears on the wire: `b"HTTP/1.0"` or `b"HTTP/1.1"`;
    /// `b"HTTP/2.0"` for HTTP/2 (nginx's `$server_protocol`).
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
            Version::Http2 => b"HTTP/2.0",
        }
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No `Content-Length` and no `Transfer-Encoding`: the request has no body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`; decode with [`super::ChunkedDecoder`].
    Chunked,
}

/// A parsed request head. All `Bytes` fields share the one frozen head buffer.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method token as sent (case kept).
    pub method: Bytes,
    /// The request-target exactly as sent (`REQUEST_URI`).
    pub target: Bytes,
    /// The raw (not percent-decoded) path: the origin-form path, the path of an
    /// absolute-form target (`/` if empty), or `*` for `OPTIONS *`.
    pub path: Bytes,
    /// The raw part after the first `?`, without the `?`; empty if none.
    pub query: Bytes,
    /// The protocol version from the request line.
    pub version: Version,
    /// Every header field in order, including Host, Content-Length and Transfer-Encoding:
    /// positions in the head buffer.
    pub headers: Headers,
    /// How the request body is delimited (none, Content-Length or chunked).
    pub framing: BodyFraming,
    /// HTTP/1.1: true unless a Connection header has the token `close`; HTTP/1.0: true
    /// only if a Connection header has `keep-alive` (and none has `close`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` (case-insensitive) on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// The Host header value (required and unique on HTTP/1.1; optional on HTTP/1.0).
    pub host: Option<Bytes>,
    /// Bytes removed from the buffer: leading empty lines, request line, fields and the
    /// final empty line.
    pub head_len: usize,
}

/// Size limits for a request head. Exceeding one gives 414 (request line) or 431.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest request line, without CRLF.
    pub max_request_line: usize,
    /// Longest header field line, without CRLF.
    pub max_field: usize,
    /// Most header fields.
    pub max_fields: usize,
    /// Longest head in total, including leading empty lines and all CRLFs.
    pub max_head: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            max_field: DEFAULT_MAX_FIELD,
            max_fields: DEFAULT_MAX_FIELDS,
            max_head: DEFAULT_MAX_HEAD,
        }
    }
}

const BARE_LF_IN_HEAD: &str = "bare LF in request head";

/// Parse one request head from the front of `buf`.
///
/// On success the head's bytes are removed from `buf` (`split_to` + `freeze`; all fields
/// are cheap `Bytes` slices of it) and the head is returned; any bytes after it (a body,
/// a pipelined request) stay in `buf`. `Ok(None)`: the head is incomplete and within
/// limits; read more and call again. On error `buf` is left untouched and the
/// connection should answer with [`HeadError::status`] and close.
pub fn parse_request_head(
    buf: &mut BytesMut,
    limits: &HeadLimits,
) -> Result<Option<RequestHead>, HeadError> {
    // Never look further than one byte past the head limit: if the head has not ended
    // by then it is too large, whatever follows.
    let window = head(buf, limits.max_head.saturating_add(1));
    let mut progress = Progress {
        line_start: 0,
        in_request_line: true,
    };
    let scanned = match scan_head(window, limits, &mut progress) {
        Ok(scanned) => scanned,
        Err(Stop::Invalid(e)) => return Err(e),
        Err(Stop::Incomplete) => return check_incomplete(window, limits, &progress).map(|()| None),
    };
    Ok(Some(scanned.build(buf)))
}

/// Where the scan stopped, to apply the right limit to an incomplete head.
struct Progress {
    line_start: usize,
    in_request_line: bool,
}

enum Stop {
    Incomplete,
    Invalid(HeadError),
}

impl From<HeadError> for Stop {
    fn from(e: HeadError) -> Self {
        Stop::Invalid(e)
    }
}

fn bad(reason: &'static str) -> Stop {
    Stop::Invalid(HeadError::bad_request(reason))
}

/// The limits that apply while the head is still incomplete.
fn check_incomplete(window: &[u8], limits: &HeadLimits, at: &Progress) -> Result<(), HeadError> {
    let mut partial = window.len() - at.line_start;
    if window.last() == Some(&b'\r') {
        partial -= 1;
    }
    if at.in_request_line && partial > limits.max_request_line {
        return Err(HeadError::uri_too_long("request line too long"));
    }
    if !at.in_request_line && partial > limits.max_field {
        return Err(HeadError::fields_too_large("header field line too long"));
    }
    if window.len() > limits.max_head {
        return Err(HeadError::fields_too_large("request head too large"));
    }
    Ok(())
}

/// A complete, valid head as positions into the scanned buffer.
struct Scanned {
    method: (usize, usize),
    target: (usize, usize),
    path: PathPart,
    query: (usize, usize),
    version: Version,
    fields: Vec<Field>,
    facts: Facts,
    framing: BodyFraming,
    head_len: usize,
}

impl Scanned {
    /// Splits the head off `buf` and turns positions into `Bytes` slices of it.
    fn build(self, buf: &mut BytesMut) -> RequestHead {
        let head = buf.split_to(self.head_len).freeze();
        let slice = |(start, end): (usize, usize)| head.slice(start..end);
        let target = slice(self.target);
        let path = match self.path {
            PathPart::Range(start, end) => target.slice(start..end),
            PathPart::Slash => Bytes::from_static(b"/"),
        };
        let query = target.slice(self.query.0..self.query.1);
        let headers = Headers::from_fields(head.clone(), self.fields);
        let keep_alive = match self.version {
            Version::Http11 | Version::Http2 => !self.facts.connection_close,
            Version::Http10 => self.facts.connection_keep_alive && !self.facts.connection_close,
        };
        RequestHead {
            method: slice(self.method),
            target,
            path,
            query,
            version: self.version,
            headers,
            framing: self.framing,
            keep_alive,
            expect_continue: self.version == Version::Http11 && self.facts.expect_continue,
            host: self.facts.host.map(slice),
            head_len: self.head_len,
        }
    }
}

/// Converts a field-scan failure into the head parser's terms.
fn field_stop(e: FieldScanError) -> Stop {
    match e {
        FieldScanError::Incomplete => Stop::Incomplete,
        FieldScanError::Invalid(BARE_LF) => bad(BARE_LF_IN_HEAD),
        FieldScanError::Invalid(reason) => bad(reason),
    }
}

/// One forward pass over the head: leading empty lines, request line, fields, end.
fn scan_head(buf: &[u8], limits: &HeadLimits, at: &mut Progress) -> Result<Scanned, Stop> {
    let mut pos = skip_leading_empty_lines(buf, at)?;
    let line = scan_request_line(buf, pos, limits)?;
    let parts = split_target(
        range(buf, line.method.0, line.method.1),
        range(buf, line.target.0, line.target.1),
    )?;
    pos = line.next;
    at.in_request_line = false;

    let mut fields = Vec::with_capacity(FIELDS_AT_FIRST);
    let mut facts = Facts::default();
    loop {
        at.line_start = pos;
        match scan_field_line(buf, pos).map_err(field_stop)? {
            FieldLine::End { next } => {
                pos = next;
                break;
            }
            FieldLine::Field { pos: field, next } => {
                if next - 2 - pos > limits.max_field {
                    return Err(Stop::Invalid(HeadError::fields_too_large(
                        "header field line too long",
                    )));
                }
                if fields.len() >= limits.max_fields {
                    return Err(Stop::Invalid(HeadError::fields_too_large(
                        "too many header fields",
                    )));
                }
                facts.observe(buf, &field);
                fields.push(Field::at(
                    field.name_start,
                    field.name_end,
                    field.value_start,
                    field.value_end,
                ));
                pos = next;
            }
        }
    }
    if pos > limits.max_head {
        return Err(Stop::Invalid(HeadError::fields_too_large(
            "request head too large",
        )));
    }
    let framing = facts.framing(buf, line.version)?;
    Ok(Scanned {
        method: line.method,
        target: line.target,
        path: parts.path,
        query: parts.query,
        version: line.version,
        fields,
        facts,
        framing,
        head_len: pos,
    })
}

/// Skips up to [`MAX_LEADING_EMPTY_LINES`] CRLFs; returns where the request line starts.
fn skip_leading_empty_lines(buf: &[u8], at: &mut Progress) -> Result<usize, Stop> {
    let mut pos = 0;
    let mut empty_lines = 0;
    loop {
        at.line_start = pos;
        match buf.get(pos) {
            None => return Err(Stop::Incomplete),
            Some(b'\r') => match buf.get(pos + 1) {
                None => return Err(Stop::Incomplete),
                Some(b'\n') => {
                    empty_lines += 1;
                    if empty_lines > MAX_LEADING_EMPTY_LINES {
                        return Err(bad("too many empty lines before the request line"));
                    }
                    pos += 2;
                }
                Some(_) => return Err(bad(CR_WITHOUT_LF)),
            },
            Some(b'\n') => return Err(bad(BARE_LF_IN_HEAD)),
            Some(_) => return Ok(pos),
        }
    }
}

struct RequestLine {
    method: (usize, usize),
    target: (usize, usize),
    version: Version,
    /// Offset just past the request line's CRLF.
    next: usize,
}

/// `method SP request-target SP HTTP-version CRLF`, exactly one SP between parts.
fn scan_request_line(buf: &[u8], start: usize, limits: &HeadLimits) -> Result<RequestLine, Stop> {
    let mut i = start;
    while buf.get(i).is_some_and(|&b| is_tchar(b)) {
        i += 1;
    }
    let method = (start, i);
    match buf.get(i) {
        None => return Err(Stop::Incomplete),
        Some(b' ') if i > start => {}
        Some(b' ') => return Err(bad("request line starts with whitespace")),
        Some(b'\n') => return Err(bad(BARE_LF_IN_HEAD)),
        Some(b'\r') => return Err(bad("request line has no request-target")),
        Some(_) => return Err(bad("invalid byte in method")),
    }

    i += 1;
    let target_start = i;
    while buf.get(i).is_some_and(|&b| is_target_byte(b)) {
        i += 1;
    }
    let target = (target_start, i);
    match buf.get(i) {
        None => return Err(Stop::Incomplete),
        Some(b' ') if i > target_start => {}
        Some(b' ') => return Err(bad("more than one space after the method")),
        Some(b'\n') => return Err(bad(BARE_LF_IN_HEAD)),
        Some(b'\r') if i > target_start => return Err(bad("request line has no HTTP version")),
        Some(b'\r') => return Err(bad("request line has no request-target")),
        Some(_) => return Err(bad("invalid byte in request-target")),
    }

    i += 1;
    let version_start = i;
    while buf.get(i).is_some_and(|&b| b != b'\r' && b != b'\n') {
        i += 1;
    }
    let next = match super::field::line_end(buf, i) {
        Ok(next) => next,
        Err(FieldScanError::Incomplete) => return Err(Stop::Incomplete),
        Err(FieldScanError::Invalid(BARE_LF)) => return Err(bad(BARE_LF_IN_HEAD)),
        Err(FieldScanError::Invalid(reason)) => return Err(bad(reason)),
    };
    if i - start > limits.max_request_line {
        return Err(Stop::Invalid(HeadError::uri_too_long(
            "request line too long",
        )));
    }
    let version = parse_version(range(buf, version_start, i))?;
    Ok(RequestLine {
        method,
        target,
        version,
        next,
    })
}

/// Exactly `HTTP/1.0` or `HTTP/1.1`; another `HTTP/d.d` is 505, anything else 400.
fn parse_version(v: &[u8]) -> Result<Version, HeadError> {
    match v {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(HeadError::version_not_supported(
                "HTTP version not supported",
            ))
        }
        _ => Err(HeadError::bad_request("malformed HTTP version")),
    }
}
