//! The HTTP/1.x response head parser, for a proxy reading an upstream's
//! answer: status line, header fields, and how the body is delimited
//! (`Content-Length`, chunked, until close, or none for 1xx, 204, 304 and
//! answers to HEAD). Bytes in; "head", "need more" or an error out; no socket.
//!
//! Strict like the request parser, for the same reason: a pooled upstream
//! connection is reused only when both sides agree where a response ends, so
//! bare LF, obs-fold, a duplicate or malformed `Content-Length`,
//! `Transfer-Encoding` next to `Content-Length` or on HTTP/1.0, and any
//! transfer coding but a lone `chunked` are errors, never guesses. Field lines
//! obey exactly the request parser's rules (the shared `field` scanner). Not
//! here: which fields a proxy passes on (the proxy crate's business).

use bytes::{Bytes, BytesMut};

use super::chars::{head, is_value_byte, list_elements, range};
use super::field::{FieldLine, FieldScanError, scan_field_line};
use super::framing::parse_content_length;
use super::head::Version;

/// Longest status line (without CRLF): 8 KiB, the request line's limit; a
/// reason phrase has no business being longer.
pub const DEFAULT_MAX_STATUS_LINE: usize = 8 * 1024;
/// Longest header field line (without CRLF): 8 KiB, as for requests.
pub const DEFAULT_MAX_RESPONSE_FIELD: usize = 8 * 1024;
/// Most header fields: 256, more than requests get because responses carry
/// many `Set-Cookie` lines; nginx itself limits only the head's bytes.
pub const DEFAULT_MAX_RESPONSE_FIELDS: usize = 256;
/// Longest head in all: 64 KiB. A proxy passes its `proxy_buffer_size`
/// instead (nginx: 4 KiB, `upstream sent too big header` beyond it).
pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Size limits for a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// The longest status line, CRLF excluded.
    pub max_status_line: usize,
    /// The longest header field line, CRLF excluded.
    pub max_field: usize,
    /// The most header fields.
    pub max_fields: usize,
    /// The whole head, all CRLFs included.
    pub max_head: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        ResponseLimits {
            max_status_line: DEFAULT_MAX_STATUS_LINE,
            max_field: DEFAULT_MAX_RESPONSE_FIELD,
            max_fields: DEFAULT_MAX_RESPONSE_FIELDS,
            max_head: DEFAULT_MAX_RESPONSE_HEAD,
        }
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: 1xx, 204, 304, or the answer to a HEAD request.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`; decode with [`super::ChunkedDecoder`].
    Chunked,
    /// Neither: the body ends when the upstream closes the connection.
    Close,
}

/// A parsed response head; `reason` and the headers share one frozen buffer.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The protocol version from the status line.
    pub version: Version,
    /// The three-digit status code.
    pub status: u16,
    /// The reason phrase as sent (possibly empty).
    pub reason: Bytes,
    /// Every header field in order, framing fields included, as (name,
    /// value) slices of the head: the pair a server response carries, so
    /// a proxy passes them on without another list (request heads keep
    /// positions instead, [`super::Headers`]).
    pub headers: Vec<(Bytes, Bytes)>,
    /// How the response body is delimited.
    pub framing: ResponseFraming,
    /// Whether the connection may carry another request after this body:
    /// HTTP/1.1 without `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`; never for a close-delimited body.
    pub keep_alive: bool,
    /// Bytes removed from the buffer (the body follows).
    pub head_len: usize,
}

/// Why a response head was refused. Every one means: answer 502 and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseError {
    reason: &'static str,
    too_large: bool,
    status_line: bool,
}

impl ResponseError {
    const fn invalid(reason: &'static str) -> Self {
        ResponseError {
            reason,
            too_large: false,
            status_line: false,
        }
    }

    const fn too_large(reason: &'static str) -> Self {
        ResponseError {
            reason,
            too_large: true,
            status_line: false,
        }
    }

    /// A short reason, e.g. `"bare LF (lines must end with CRLF)"`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The head is over a limit (nginx: `upstream sent too big header`),
    /// rather than malformed.
    pub fn is_too_large(&self) -> bool {
        self.too_large
    }

    /// The status line itself is bad (nginx: `upstream sent no valid
    /// HTTP/1.0 header`), rather than a field or the framing.
    pub fn in_status_line(&self) -> bool {
        self.status_line
    }
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad response head: {}", self.reason)
    }
}

impl std::error::Error for ResponseError {}

/// Parse one response head from the front of `buf`; `head_request` says the
/// request was HEAD (its answer has no body whatever the head says).
///
/// On success the head's bytes are split off `buf` and whatever follows (the
/// body) stays. `Ok(None)`: incomplete but within limits, read more and call
/// again. On error `buf` is untouched.
pub fn parse_response_head(
    buf: &mut BytesMut,
    limits: &ResponseLimits,
    head_request: bool,
) -> Result<Option<ResponseHead>, ResponseError> {
    let window = head(buf, limits.max_head.saturating_add(1));
    let mut line_start = 0;
    let mut fields = Positions::default();
    let scanned = match scan(window, limits, &mut line_start, &mut fields) {
        Ok(scanned) => scanned,
        Err(Stop::Invalid(e)) => return Err(e),
        Err(Stop::Incomplete) => {
            return check_incomplete(window, limits, line_start).map(|()| None);
        }
    };
    let framing = scanned
        .facts
        .framing(scanned.status, scanned.version, head_request)?;
    let keep_alive = framing != ResponseFraming::Close
        && !scanned.facts.close
        && (scanned.version == Version::Http11 || scanned.facts.keep_alive);
    let head = buf.split_to(scanned.head_len).freeze();
    let headers = fields
        .iter()
        .map(|&(ns, ne, vs, ve)| (head.slice(ns..ne), head.slice(vs..ve)))
        .collect();
    Ok(Some(ResponseHead {
        version: scanned.version,
        status: scanned.status,
        reason: head.slice(scanned.reason.0..scanned.reason.1),
        headers,
        framing,
        keep_alive,
        head_len: scanned.head_len,
    }))
}

enum Stop {
    Incomplete,
    Invalid(ResponseError),
}

fn bad(reason: &'static str) -> Stop {
    Stop::Invalid(ResponseError::invalid(reason))
}

/// The limits that apply while the head is incomplete.
fn check_incomplete(
    window: &[u8],
    limits: &ResponseLimits,
    line_start: usize,
) -> Result<(), ResponseError> {
    let partial = window.len() - line_start - usize::from(window.last() == Some(&b'\r'));
    if line_start == 0 && partial > limits.max_status_line {
        return Err(ResponseError::too_large("status line too long"));
    }
    if line_start > 0 && partial > limits.max_field {
        return Err(ResponseError::too_large("header field line too long"));
    }
    if window.len() > limits.max_head {
        return Err(ResponseError::too_large("response head too large"));
    }
    Ok(())
}

struct Scanned {
    version: Version,
    status: u16,
    reason: (usize, usize),
    facts: Facts,
    head_len: usize,
}

/// (name start, name end, value start, value end) of a field.
type FieldAt = (usize, usize, usize, usize);

/// Where the fields are, while scanning: the first [`INLINE_FIELDS`] on
/// the stack (an upstream's head seldom has more), the rest in a `Vec`; no
/// allocation for the usual head, whose field list is then made at its
/// final size.
struct Positions {
    inline: [FieldAt; INLINE_FIELDS],
    len: usize,
    more: Vec<FieldAt>,
}

const INLINE_FIELDS: usize = 12;

impl Default for Positions {
    fn default() -> Self {
        Positions {
            inline: [(0, 0, 0, 0); INLINE_FIELDS],
            len: 0,
            more: Vec::new(),
        }
    }
}

impl Positions {
    fn push(&mut self, at: FieldAt) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = at,
            None => self.more.push(at),
        }
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = &FieldAt> {
        self.inline.iter().take(self.len).chain(self.more.iter())
    }
}

fn scan(
    buf: &[u8],
    limits: &ResponseLimits,
    line_start: &mut usize,
    fields: &mut Positions,
) -> Result<Scanned, Stop> {
    let (version, status, reason, mut pos) =
        scan_status_line(buf, limits).map_err(|stop| match stop {
            Stop::Invalid(e) => Stop::Invalid(ResponseError {
                status_line: true,
                ..e
            }),
            incomplete => incomplete,
        })?;
    let mut facts = Facts::default();
    loop {
        *line_start = pos;
        let line = scan_field_line(buf, pos).map_err(|e| match e {
            FieldScanError::Incomplete => Stop::Incomplete,
            FieldScanError::Invalid(reason) => bad(reason),
        })?;
        match line {
            FieldLine::End { next } => {
                pos = next;
                break;
            }
            FieldLine::Field { pos: f, next } => {
                if next - 2 - pos > limits.max_field {
                    return Err(Stop::Invalid(ResponseError::too_large(
                        "header field line too long",
                    )));
                }
                if fields.len() >= limits.max_fields {
                    return Err(Stop::Invalid(ResponseError::too_large(
                        "too many header fields",
                    )));
                }
                facts.observe(
                    range(buf, f.name_start, f.name_end),
                    range(buf, f.value_start, f.value_end),
                );
                fields.push((f.name_start, f.name_end, f.value_start, f.value_end));
                pos = next;
            }
        }
    }
    if pos > limits.max_head {
        return Err(Stop::Invalid(ResponseError::too_large(
            "response head too large",
        )));
    }
    Ok(Scanned {
        version,
        status,
        reason,
        facts,
        head_len: pos,
    })
}

/// `HTTP/1.x SP 3DIGIT [SP reason] CRLF`. The reason may be empty, and its
/// space may be missing (`HTTP/1.1 200\r\n`, common in the wild).
fn scan_status_line(
    buf: &[u8],
    limits: &ResponseLimits,
) -> Result<(Version, u16, (usize, usize), usize), Stop> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let seen = head(buf, PREFIX.len());
    if !PREFIX.starts_with(seen) {
        return Err(if buf.starts_with(b"HTTP/") && seen.len() > 5 {
            bad("unsupported HTTP version in status line")
        } else {
            bad("response does not start with an HTTP/1.x status line")
        });
    }
    let version = match buf.get(PREFIX.len()) {
        None => return Err(Stop::Incomplete),
        Some(b'0') => Version::Http10,
        Some(b'1') => Version::Http11,
        Some(_) => return Err(bad("unsupported HTTP version in status line")),
    };
    let mut p = PREFIX.len() + 1;
    match buf.get(p) {
        None => return Err(Stop::Incomplete),
        Some(b' ') => p += 1,
        Some(_) => return Err(bad("status line: no single space after the version")),
    }
    let mut status = 0u16;
    for _ in 0..3 {
        match buf.get(p) {
            None => return Err(Stop::Incomplete),
            Some(&d) if d.is_ascii_digit() => status = status * 10 + u16::from(d - b'0'),
            Some(_) => return Err(bad("status code is not three digits")),
        }
        p += 1;
    }
    if status < 100 {
        return Err(bad("status code below 100"));
    }
    let reason_start = match buf.get(p) {
        None => return Err(Stop::Incomplete),
        Some(b' ') => p + 1,
        Some(b'\r') => p,
        Some(b'\n') => return Err(bad("bare LF (lines must end with CRLF)")),
        Some(_) => return Err(bad("status code is not three digits")),
    };
    let mut i = reason_start;
    while buf.get(i).is_some_and(|&b| is_value_byte(b)) {
        i += 1;
    }
    if i > limits.max_status_line {
        return Err(Stop::Invalid(ResponseError::too_large(
            "status line too long",
        )));
    }
    if buf.get(i).is_some_and(|&c| c != b'\r' && c != b'\n') {
        return Err(bad("control byte in reason phrase"));
    }
    let next = match super::field::line_end(buf, i) {
        Ok(next) => next,
        Err(FieldScanError::Incomplete) => return Err(Stop::Incomplete),
        Err(FieldScanError::Invalid(reason)) => return Err(bad(reason)),
    };
    Ok((version, status, (reason_start, i), next))
}

/// Whether the field name `name` (tchars only: the scanner checked) is
/// `lower` (lower-case letters and `-`) in any case. Setting the case bit
/// (0x20) folds a letter to lower case, and no tchar but `-` itself folds
/// to `-` (CR would, and is no tchar), so one OR and compare per byte, with
/// no branch, decides what `eq_ignore_ascii_case` does.
fn is_name<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    name.len() == N
        && name
            .iter()
            .zip(lower)
            .fold(0u8, |diff, (&a, &b)| diff | ((a | 0x20) ^ b))
            == 0
}

/// What the framing fields said, judged once the head is complete.
#[derive(Default)]
struct Facts {
    content_lengths: usize,
    /// `None` when the (last) value is not a plain decimal fitting 64 bits.
    content_length: Option<u64>,
    transfer_encodings: usize,
    chunked_only: bool,
    close: bool,
    keep_alive: bool,
}

impl Facts {
    fn observe(&mut self, name: &[u8], value: &[u8]) {
        if is_name(name, b"content-length") {
            self.content_lengths += 1;
            self.content_length = parse_content_length(value);
        } else if is_name(name, b"transfer-encoding") {
            self.transfer_encodings += 1;
            self.chunked_only = value.eq_ignore_ascii_case(b"chunked");
        } else if is_name(name, b"connection") {
            for token in list_elements(value) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    /// RFC 9112 §6.3, strictly. The fields are checked even when the status
    /// says there is no body, so a confused upstream is caught either way.
    fn framing(
        &self,
        status: u16,
        version: Version,
        head_request: bool,
    ) -> Result<ResponseFraming, ResponseError> {
        let invalid = ResponseError::invalid;
        if self.content_lengths > 1 {
            return Err(invalid("more than one Content-Length header"));
        }
        if self.content_lengths == 1 && self.content_length.is_none() {
            return Err(invalid(
                "Content-Length is not a decimal number fitting 64 bits",
            ));
        }
        if self.transfer_encodings > 0 {
            if version == Version::Http10 {
                return Err(invalid("Transfer-Encoding on an HTTP/1.0 response"));
            }
            if self.transfer_encodings > 1 {
                return Err(invalid("more than one Transfer-Encoding header"));
            }
            if self.content_lengths > 0 {
                return Err(invalid("conflicting Content-Length and Transfer-Encoding"));
            }
            if !self.chunked_only {
                return Err(invalid("Transfer-Encoding must be exactly \"chunked\""));
            }
        }
        if head_request || status < 200 || status == 204 || status == 304 {
            return Ok(ResponseFraming::None);
        }
        if self.transfer_encodings > 0 {
            return Ok(ResponseFraming::Chunked);
        }
        Ok(self
            .content_length
            .map_or(ResponseFraming::Close, ResponseFraming::Length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::chars::is_tchar;

    #[test]
    fn is_name_agrees_with_eq_ignore_ascii_case_on_every_tchar() {
        let words: [&[u8; 4]; 3] = [b"conn", b"a-b-", b"te-x"];
        let tchars: Vec<u8> = (0..=255u8).filter(|&b| is_tchar(b)).collect();
        for word in words {
            for at in 0..4 {
                for &b in &tchars {
                    let mut name = *word;
                    name[at] = b;
                    assert_eq!(
                        is_name(&name, word),
                        name.eq_ignore_ascii_case(word),
                        "{name:?} against {word:?}"
                    );
                }
            }
        }
        assert!(is_name(b"Content-Length", b"content-length"));
        assert!(!is_name(b"Content-Lengt", b"content-length"));
    }

    #[test]
    fn fields_past_the_inline_ones_are_kept_in_order() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..INLINE_FIELDS + 5 {
            head.extend_from_slice(format!("x-{i}: {i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"content-length: 0\r\n\r\n");
        let mut buf = BytesMut::from(&head[..]);
        let Ok(Some(parsed)) = parse_response_head(&mut buf, &ResponseLimits::default(), false)
        else {
            panic!("head not parsed");
        };
        assert_eq!(parsed.headers.len(), INLINE_FIELDS + 6);
        for (i, (name, value)) in parsed.headers.iter().take(INLINE_FIELDS + 5).enumerate() {
            assert_eq!(&name[..], format!("x-{i}").as_bytes());
            assert_eq!(&value[..], i.to_string().as_bytes());
        }
        assert_eq!(parsed.framing, ResponseFraming::Length(0));
    }
}
