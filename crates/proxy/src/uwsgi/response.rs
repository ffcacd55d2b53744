//! The response head a uwsgi server sends back, parsed as nginx's uwsgi
//! module does (`ngx_http_uwsgi_process_status_line` / `_process_header`,
//! `ngx_http_parse_status_line` / `ngx_http_parse_header_line`): an HTTP
//! status line and headers, or CGI-style headers only, where `Status:` gives
//! the code. Pure: bytes in, head or "need more" or an error; no sockets.
//!
//! Tolerant where nginx is (bare LF, a header with no colon, repeated
//! `HTTP/1.x` lines skipped, `403.1`-style codes), strict where newer nginx
//! is (1.23+ refuses a bad or duplicate `Content-Length`, `Content-Length`
//! with `Transfer-Encoding`, and an unknown transfer coding; 1.22 let those
//! through). Unlike nginx, a status below 100 is refused, and a chunked body
//! is decoded rather than passed on with its framing (see `body.rs`).

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

use crate::error_page::status_reason;

/// Response headers never passed to the client: nginx's hidden `X-Accel-*`
/// (`ngx_http_uwsgi_hide_headers[]`). The hop-by-hop ones (`Connection`,
/// `Transfer-Encoding`, ...) are dropped by the server's writer, the one
/// place for every handler. `Content-Length` stays: it describes the body
/// as we deliver it.
const DROPPED: &[&[u8]] = &[
    b"x-accel-expires",
    b"x-accel-redirect",
    b"x-accel-limit-rate",
    b"x-accel-buffering",
    b"x-accel-charset",
];

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// The reason as the upstream gave it; nginx's own when it gave none
    /// in a `Status:` header or gave no status at all.
    pub reason: Bytes,
    /// The headers to pass on, in order (`X-Accel-*` removed).
    pub headers: Vec<(Bytes, Bytes)>,
    /// The body length, when `Content-Length` was sent.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`: the body must be decoded.
    pub chunked: bool,
}

/// Why a head was refused; `Display` is nginx's log wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// A byte no header line may hold. `text` is the line up to it.
    InvalidHeader {
        text: Vec<u8>,
        byte: u8,
    },
    /// `Status:` does not start with three digits (or says < 100).
    InvalidStatus(Vec<u8>),
    InvalidContentLength {
        line: Vec<u8>,
    },
    DuplicateHeader {
        line: Vec<u8>,
        previous: Vec<u8>,
    },
    LengthAndChunked,
    UnknownTransferEncoding(Vec<u8>),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            HeadError::InvalidHeader { text, byte } => write!(
                f,
                "upstream sent invalid header: \"{}\\x{byte:02x}...\"",
                s(text)
            ),
            HeadError::InvalidStatus(v) => write!(f, "upstream sent invalid status \"{}\"", s(v)),
            HeadError::InvalidContentLength { line } => write!(
                f,
                "upstream sent invalid \"Content-Length\" header: \"{}\"",
                s(line)
            ),
            HeadError::DuplicateHeader { line, previous } => write!(
                f,
                "upstream sent duplicate header line: \"{}\", previous value: \"{}\"",
                s(line),
                s(previous)
            ),
            HeadError::LengthAndChunked => f.write_str(
                "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
            ),
            HeadError::UnknownTransferEncoding(v) => write!(
                f,
                "upstream sent unknown \"Transfer-Encoding\": \"{}\"",
                s(v)
            ),
        }
    }
}

impl std::error::Error for HeadError {}

/// Parse a head from the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success also returns how many bytes the head took (the body follows).
pub fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let (status_line, mut pos) = match parse_status_line(buf) {
        StatusLine::NeedMore => return Ok(None),
        StatusLine::Invalid(range) => return Err(HeadError::InvalidStatus(buf[range].to_vec())),
        StatusLine::Done { code, reason, end } => (Some((code, reason)), end),
        // Not a status line: the whole thing is CGI-style headers.
        StatusLine::NotStatus => (None, 0),
    };
    let mut lines: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    loop {
        match parse_header_line(buf, pos) {
            Line::NeedMore => return Ok(None),
            Line::Header { name, value, next } => {
                lines.push((name, value));
                pos = next;
            }
            Line::Done { next } => {
                pos = next;
                break;
            }
            Line::Invalid { start, end } => {
                return Err(HeadError::InvalidHeader {
                    text: buf[start..end].to_vec(),
                    byte: buf.get(end).copied().unwrap_or(0),
                });
            }
        }
    }
    let head = interpret(buf, status_line, &lines)?;
    Ok(Some((head, pos)))
}

/// Apply nginx's header handlers: status, framing, and what is passed on.
fn interpret(
    buf: &[u8],
    status_line: Option<(u16, Range<usize>)>,
    lines: &[(Range<usize>, Range<usize>)],
) -> Result<ResponseHead, HeadError> {
    let line_text = |(n, v): &(Range<usize>, Range<usize>)| {
        let mut t = buf[n.clone()].to_vec();
        t.extend_from_slice(b": ");
        t.extend_from_slice(&buf[v.clone()]);
        t
    };
    let mut status_header: Option<&[u8]> = None;
    let mut has_location = false;
    let mut length: Option<(usize, u64)> = None;
    let mut encoding: Option<usize> = None;
    let mut headers = Vec::with_capacity(lines.len());
    for (i, (n, v)) in lines.iter().enumerate() {
        let name = &buf[n.clone()];
        let value = &buf[v.clone()];
        if name.eq_ignore_ascii_case(b"status") {
            status_header.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"location") {
            has_location = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if let Some((prev, _)) = length {
                return Err(HeadError::DuplicateHeader {
                    line: line_text(&lines[i]),
                    previous: line_text(&lines[prev]),
                });
            }
            if encoding.is_some() {
                return Err(HeadError::LengthAndChunked);
            }
            let n = parse_length(value).ok_or_else(|| HeadError::InvalidContentLength {
                line: line_text(&lines[i]),
            })?;
            length = Some((i, n));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if let Some(prev) = encoding {
                return Err(HeadError::DuplicateHeader {
                    line: line_text(&lines[i]),
                    previous: line_text(&lines[prev]),
                });
            }
            if length.is_some() {
                return Err(HeadError::LengthAndChunked);
            }
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::UnknownTransferEncoding(value.to_vec()));
            }
            encoding = Some(i);
        }
        if !DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            headers.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
        }
    }
    let (status, reason) = match (status_line, status_header) {
        (Some((code, reason)), _) => (code, Bytes::copy_from_slice(&buf[reason])),
        (None, Some(value)) => parse_status_header(value)?,
        (None, None) if has_location => (302, Bytes::from_static(b"Moved Temporarily")),
        (None, None) => (200, Bytes::from_static(b"OK")),
    };
    Ok(ResponseHead {
        status,
        reason,
        headers,
        content_length: length.map(|(_, n)| n),
        chunked: encoding.is_some(),
    })
}

/// `Status: 404 Not Found`: three digits (nginx's `ngx_atoi(value, 3)`),
/// then the reason; nginx's own reason when there is none (nginx ≥ 1.23).
fn parse_status_header(value: &[u8]) -> Result<(u16, Bytes), HeadError> {
    let invalid = || HeadError::InvalidStatus(value.to_vec());
    let digits = value.get(..3).ok_or_else(invalid)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if code < 100 {
        return Err(invalid());
    }
    let rest = trim_start_spaces(&value[3..]);
    let reason = if rest.is_empty() {
        Bytes::from_static(status_reason(code).as_bytes())
    } else {
        Bytes::copy_from_slice(rest)
    };
    Ok((code, reason))
}

fn trim_start_spaces(b: &[u8]) -> &[u8] {
    let skip = b.iter().take_while(|&&c| c == b' ').count();
    &b[skip..]
}

/// nginx's `ngx_atoof`: digits only, not empty, no overflow.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?
            .checked_add(u64::from(c - b'0'))
            .filter(|&v| v <= i64::MAX as u64)
    })
}

enum StatusLine {
    /// `reason` is the text after the code; `end` is where the headers start.
    Done {
        code: u16,
        reason: Range<usize>,
        end: usize,
    },
    NeedMore,
    /// A well-formed line with a code below 100 (nginx would pass it on).
    Invalid(Range<usize>),
    /// Not an HTTP status line: parse everything as headers.
    NotStatus,
}

/// `HTTP/1.1 200 OK`, after `ngx_http_parse_status_line`: a 1–3 digit
/// major and minor version, spaces, a 3-digit code, then a space or `.`
/// (IIS's `403.1`) and any text, or the line end (CRLF or bare LF).
fn parse_status_line(buf: &[u8]) -> StatusLine {
    const PREFIX: &[u8] = b"HTTP/";
    let head = &buf[..buf.len().min(PREFIX.len())];
    if !PREFIX.starts_with(head) {
        return StatusLine::NotStatus;
    }
    if buf.len() < PREFIX.len() {
        return StatusLine::NeedMore;
    }
    let mut p = PREFIX.len();
    // Versions: major starts 1-9; each has at most three digits.
    for (first_min, stop) in [(b'1', b'.'), (b'0', b' ')] {
        let start = p;
        loop {
            let Some(&c) = buf.get(p) else {
                return StatusLine::NeedMore;
            };
            if p == start {
                if !(first_min..=b'9').contains(&c) {
                    return StatusLine::NotStatus;
                }
            } else if c == stop {
                p += 1;
                break;
            } else if !c.is_ascii_digit() || p - start >= 3 {
                return StatusLine::NotStatus;
            }
            p += 1;
        }
    }
    while buf.get(p) == Some(&b' ') {
        p += 1;
    }
    let mut code = 0u16;
    for _ in 0..3 {
        let Some(&c) = buf.get(p) else {
            return StatusLine::NeedMore;
        };
        if !c.is_ascii_digit() {
            return StatusLine::NotStatus;
        }
        code = code * 10 + u16::from(c - b'0');
        p += 1;
    }
    let Some(&after) = buf.get(p) else {
        return StatusLine::NeedMore;
    };
    if !matches!(after, b' ' | b'.' | b'\r' | b'\n') {
        return StatusLine::NotStatus;
    }
    if code < 100 {
        return StatusLine::Invalid(p - 3..p);
    }
    let Some(lf) = buf[p..].iter().position(|&c| c == b'\n').map(|i| p + i) else {
        return StatusLine::NeedMore;
    };
    let mut text_end = lf;
    if let Some(cr) = buf[p..lf].iter().position(|&c| c == b'\r').map(|i| p + i) {
        // nginx ends the text at the first CR, which must be followed by LF.
        if cr + 1 != lf {
            return StatusLine::NotStatus;
        }
        text_end = cr;
    }
    let mut reason = p..text_end;
    if after == b'.' {
        // `403.1 Forbidden`: the reason is what follows the sub-code.
        let rest = &buf[reason.clone()];
        reason.start += rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    }
    while reason.start < reason.end && buf[reason.start] == b' ' {
        reason.start += 1;
    }
    StatusLine::Done {
        code,
        reason,
        end: lf + 1,
    }
}

enum Line {
    Header {
        name: Range<usize>,
        value: Range<usize>,
        next: usize,
    },
    /// The empty line ending the head.
    Done {
        next: usize,
    },
    NeedMore,
    /// nginx's `header_name_start .. header_end`, for the message.
    Invalid {
        start: usize,
        end: usize,
    },
}

#[derive(Clone, Copy)]
enum St {
    Start,
    Name,
    SpaceBeforeValue,
    Value,
    SpaceAfterValue,
    IgnoreLine,
    AlmostDone,
    HeaderAlmostDone,
}

/// One header line from `pos`, a port of `ngx_http_parse_header_line` with
/// underscores allowed (nginx allows them from upstreams). Names take any
/// byte above space but DEL and `:`; a line with no colon is a header with
/// an empty value; values lose surrounding spaces; NUL is refused; repeated
/// `HTTP/...` lines (IIS) are skipped.
fn parse_header_line(buf: &[u8], pos: usize) -> Line {
    let (mut name_start, mut name_end) = (pos, pos);
    let (mut value_start, mut value_end) = (pos, pos);
    let mut state = St::Start;
    let mut p = pos;
    while let Some(&ch) = buf.get(p) {
        match state {
            St::Start => {
                name_start = p;
                match ch {
                    b'\r' => {
                        value_end = p;
                        state = St::HeaderAlmostDone;
                    }
                    b'\n' => return Line::Done { next: p + 1 },
                    c if c <= 0x20 || c == 0x7f || c == b':' => {
                        return Line::Invalid {
                            start: name_start,
                            end: p,
                        };
                    }
                    _ => state = St::Name,
                }
            }
            St::Name => match ch {
                b':' => {
                    name_end = p;
                    state = St::SpaceBeforeValue;
                }
                b'\r' | b'\n' => {
                    name_end = p;
                    value_start = p;
                    value_end = p;
                    if ch == b'\n' {
                        return header(name_start..name_end, p..p, p + 1);
                    }
                    state = St::AlmostDone;
                }
                b'/' if &buf[name_start..p] == b"HTTP" => state = St::IgnoreLine,
                c if c <= 0x20 || c == 0x7f => {
                    return Line::Invalid {
                        start: name_start,
                        end: p,
                    };
                }
                _ => {}
            },
            St::SpaceBeforeValue => match ch {
                b' ' => {}
                b'\r' | b'\n' => {
                    value_start = p;
                    value_end = p;
                    if ch == b'\n' {
                        return header(name_start..name_end, p..p, p + 1);
                    }
                    state = St::AlmostDone;
                }
                0 => {
                    return Line::Invalid {
                        start: name_start,
                        end: p,
                    };
                }
                _ => {
                    value_start = p;
                    state = St::Value;
                }
            },
            St::Value => match ch {
                b' ' => {
                    value_end = p;
                    state = St::SpaceAfterValue;
                }
                b'\r' => {
                    value_end = p;
                    state = St::AlmostDone;
                }
                b'\n' => return header(name_start..name_end, value_start..p, p + 1),
                0 => {
                    return Line::Invalid {
                        start: name_start,
                        end: p,
                    };
                }
                _ => {}
            },
            St::SpaceAfterValue => match ch {
                b' ' => {}
                b'\r' => state = St::AlmostDone,
                b'\n' => return header(name_start..name_end, value_start..value_end, p + 1),
                0 => {
                    return Line::Invalid {
                        start: name_start,
                        end: p,
                    };
                }
                _ => state = St::Value,
            },
            St::IgnoreLine => {
                if ch == b'\n' {
                    state = St::Start;
                }
            }
            St::AlmostDone => match ch {
                b'\n' => return header(name_start..name_end, value_start..value_end, p + 1),
                b'\r' => {}
                _ => {
                    return Line::Invalid {
                        start: name_start,
                        end: value_end,
                    };
                }
            },
            St::HeaderAlmostDone => {
                if ch == b'\n' {
                    return Line::Done { next: p + 1 };
                }
                return Line::Invalid {
                    start: name_start,
                    end: value_end,
                };
            }
        }
        p += 1;
    }
    Line::NeedMore
}

fn header(name: Range<usize>, value: Range<usize>, next: usize) -> Line {
    Line::Header { name, value, next }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
