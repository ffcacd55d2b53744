//! Decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! A resumable state machine over the connection's `BytesMut`: feed it whatever has
//! arrived, get payload pieces out as zero-copy `Bytes`. Strict: chunk sizes are plain
//! hex (no sign, `0x`, `_` or spaces), every line ends in CRLF, chunk data is followed by
//! exactly CRLF, and trailer fields are validated like header fields, then discarded;
//! a trailer field that RFC 9110 §6.5.1 forbids there ([`FORBIDDEN_TRAILERS`]: framing,
//! routing, authentication, request modifiers, content format) is an error.
//! It does not limit the total body size; that is the caller's policy.

use bytes::{Buf, Bytes, BytesMut};

use super::chars::{head, is_qdtext, is_tchar, is_value_byte, range, tail};
use super::error::ChunkedError;
use super::field::{BARE_LF, FieldLine, FieldScanError, scan_field_line};

/// Longest chunk-size line (size and extensions, without CRLF): 4 KiB. Extensions are
/// ignored, so there is no reason to buffer more of them.
pub const MAX_CHUNK_SIZE_LINE: usize = 4 * 1024;
/// Most hex digits in a chunk size: 16, so every accepted size fits a u64 and leading
/// zeros cannot be used to smuggle an overlong number past another parser.
pub const MAX_CHUNK_SIZE_HEX_DIGITS: usize = 16;
/// Largest trailer section (all trailer field lines and the final CRLF): 16 KiB.
/// Trailers are discarded, so this only bounds the work done on them.
pub const MAX_TRAILER_SECTION: usize = 16 * 1024;

/// Fields that must not appear in a trailer section (RFC 9110 §6.5.1): they frame or
/// route the message, authenticate it, modify the request or describe the content, so
/// they only mean anything before the body. The list is Go net/http's `badTrailer`.
pub const FORBIDDEN_TRAILERS: &[&str] = &[
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "expect",
    "host",
    "keep-alive",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "range",
    "realm",
    "te",
    "trailer",
    "transfer-encoding",
    "www-authenticate",
];

/// One step of [`ChunkedDecoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkedStep {
    /// The next piece of payload; never empty, possibly only part of a chunk.
    Data(Bytes),
    /// `buf` holds no complete next step; read more and call again.
    NeedMore,
    /// The last chunk and the trailer section have been consumed. Bytes after the body
    /// (a pipelined request) are left in `buf`.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data; this many payload bytes remain.
    Data(u64),
    /// Chunk data consumed; expecting its CRLF.
    DataEnd,
    /// After the last chunk; `consumed` trailer bytes seen so far.
    Trailers {
        consumed: usize,
    },
    Done,
    Failed(ChunkedError),
}

/// Decodes a chunked body incrementally. Create one per request body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body (expecting the first chunk size).
    pub fn new() -> Self {
        Self { state: State::Size }
    }

    /// Whether the whole body, trailers included, has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consume as much of `buf` as possible and return the next step.
    ///
    /// After an error the decoder stays failed and returns the same error again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<ChunkedStep, ChunkedError> {
        let result = self.step(buf);
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<ChunkedStep, ChunkedError> {
        loop {
            match self.state {
                State::Size => match take_size_line(buf)? {
                    None => return Ok(ChunkedStep::NeedMore),
                    Some(0) => self.state = State::Trailers { consumed: 0 },
                    Some(size) => self.state = State::Data(size),
                },
                State::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(ChunkedStep::NeedMore);
                    }
                    let take = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                    // `take <= remaining`, so this cannot underflow.
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(ChunkedStep::Data(buf.split_to(take).freeze()));
                }
                State::DataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    Some(_) => return Err(ChunkedError::new("chunk data not followed by CRLF")),
                    None if buf.first().is_some_and(|&b| b != b'\r') => {
                        return Err(ChunkedError::new("chunk data not followed by CRLF"));
                    }
                    None => return Ok(ChunkedStep::NeedMore),
                },
                State::Trailers { consumed } => match take_trailer_line(buf, consumed)? {
                    TrailerLine::Incomplete => return Ok(ChunkedStep::NeedMore),
                    TrailerLine::Field(len) => {
                        self.state = State::Trailers {
                            consumed: consumed + len,
                        }
                    }
                    TrailerLine::End => self.state = State::Done,
                },
                State::Done => return Ok(ChunkedStep::Done),
                State::Failed(ref e) => return Err(e.clone()),
            }
        }
    }
}

/// Takes one complete chunk-size line off `buf` and returns the size, or `None` if the
/// line is not complete yet.
fn take_size_line(buf: &mut BytesMut) -> Result<Option<u64>, ChunkedError> {
    let window = head(buf, MAX_CHUNK_SIZE_LINE + 2);
    let Some(lf) = memchr::memchr(b'\n', window) else {
        let partial = window.len() - usize::from(window.last() == Some(&b'\r'));
        if partial > MAX_CHUNK_SIZE_LINE {
            return Err(ChunkedError::new("chunk-size line too long"));
        }
        return Ok(None);
    };
    let Some((b'\r', line)) = head(window, lf).split_last() else {
        return Err(ChunkedError::new("bare LF in chunk-size line"));
    };
    let size = parse_size_line(line)?;
    buf.advance(lf + 1);
    Ok(Some(size))
}

/// `chunk-size [ chunk-ext ]` without the CRLF.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkedError> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 {
        return Err(ChunkedError::new("chunk size is not a hex number"));
    }
    if digits > MAX_CHUNK_SIZE_HEX_DIGITS {
        return Err(ChunkedError::new("chunk size has more than 16 hex digits"));
    }
    let size = head(line, digits).iter().fold(0u64, |n, &b| {
        // At most 16 hex digits: never overflows.
        (n << 4) | u64::from(hex_value(b))
    });
    // RFC 9112 §7.1.1: BWS may precede ";" — but whitespace alone may not end the line.
    let after = skip_bws(tail(line, digits));
    match after.first() {
        None if after.len() == line.len() - digits => Ok(size),
        Some(b';') => check_extensions(after).map(|()| size),
        _ => Err(ChunkedError::new("invalid byte after chunk size")),
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

fn skip_bws(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    tail(s, n)
}

/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )` (RFC 9112
/// §7.1.1). Ignored once valid.
fn check_extensions(mut rest: &[u8]) -> Result<(), ChunkedError> {
    const BAD: ChunkedError = ChunkedError::new("malformed chunk extension");
    while let Some((&b';', after)) = skip_bws(rest).split_first() {
        let after = skip_bws(after);
        let name_len = token_len(after);
        if name_len == 0 {
            return Err(BAD);
        }
        rest = tail(after, name_len);
        if let Some((&b'=', value)) = skip_bws(rest).split_first() {
            let value = skip_bws(value);
            let value_len = if value.first() == Some(&b'"') {
                quoted_string_len(value).ok_or(BAD)?
            } else {
                token_len(value)
            };
            if value_len == 0 {
                return Err(BAD);
            }
            rest = tail(value, value_len);
        }
    }
    if skip_bws(rest).is_empty() && rest.last().is_none_or(|&b| b != b' ' && b != b'\t') {
        Ok(())
    } else {
        Err(BAD)
    }
}

fn token_len(s: &[u8]) -> usize {
    s.iter().position(|&b| !is_tchar(b)).unwrap_or(s.len())
}

/// Length of the quoted-string at the start of `s` (which starts with `"`), quotes
/// included; `None` if it is malformed or unterminated.
fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !is_value_byte(escaped) {
                    return None;
                }
                i += 2;
            }
            b if is_qdtext(b) => i += 1,
            _ => return None,
        }
    }
}

enum TrailerLine {
    Incomplete,
    /// A valid trailer field line of this many bytes (CRLF included) was consumed.
    Field(usize),
    /// The final CRLF was consumed.
    End,
}

/// Validates and discards one trailer line, keeping the section under its limit.
fn take_trailer_line(buf: &mut BytesMut, consumed: usize) -> Result<TrailerLine, ChunkedError> {
    let room = MAX_TRAILER_SECTION - consumed.min(MAX_TRAILER_SECTION);
    let window = head(buf, room.saturating_add(1));
    let line = match scan_field_line(window, 0) {
        Ok(line) => line,
        Err(FieldScanError::Incomplete) if window.len() > room => {
            return Err(ChunkedError::new("trailer section too large"));
        }
        Err(FieldScanError::Incomplete) => return Ok(TrailerLine::Incomplete),
        Err(FieldScanError::Invalid(BARE_LF)) => {
            return Err(ChunkedError::new("bare LF in chunked trailer section"));
        }
        Err(FieldScanError::Invalid(reason)) => return Err(ChunkedError::new(reason)),
    };
    let next = match line {
        FieldLine::End { next } | FieldLine::Field { next, .. } => next,
    };
    if consumed + next > MAX_TRAILER_SECTION {
        return Err(ChunkedError::new("trailer section too large"));
    }
    match line {
        FieldLine::End { next } => {
            buf.advance(next);
            Ok(TrailerLine::End)
        }
        FieldLine::Field { next, pos } => {
            let name = range(buf, pos.name_start, pos.name_end);
            if FORBIDDEN_TRAILERS
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
            {
                return Err(ChunkedError::new(
                    "a field that is not allowed in trailers (framing, routing, \
                     authentication, request modifiers, content format)",
                ));
            }
            buf.advance(next);
            Ok(TrailerLine::Field(next))
        }
    }
}
