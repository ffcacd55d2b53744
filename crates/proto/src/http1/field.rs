//! Scanning of one field line (`name: value CRLF`) or of the empty line that ends a
//! field section. Shared by the request head parser and the chunked trailer parser, so
//! header fields and trailer fields obey exactly the same rules.
//!
//! This only finds and validates positions; what a field *means* (Host, Content-Length,
//! ...) is the head parser's business.

use super::chars::{is_tchar, is_value_byte};

/// Positions of one field inside the scanned buffer. `value_*` excludes surrounding OWS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FieldPos {
    pub name_start: usize,
    pub name_end: usize,
    pub value_start: usize,
    pub value_end: usize,
}

/// A complete line found by [`scan_field_line`]; `next` is the offset just past its CRLF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldLine {
    Field { pos: FieldPos, next: usize },
    End { next: usize },
}

/// Why [`scan_field_line`] did not return a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldScanError {
    /// The line is not complete yet; everything seen so far is valid.
    Incomplete,
    /// The line is invalid; the string says why.
    Invalid(&'static str),
}

pub(crate) const BARE_LF: &str = "bare LF (lines must end with CRLF)";
pub(crate) const CR_WITHOUT_LF: &str = "CR not followed by LF";

/// What a line ending at `buf[i]` (a CR or an LF) looks like.
#[inline]
pub(crate) fn line_end(buf: &[u8], i: usize) -> Result<usize, FieldScanError> {
    match (buf.get(i), buf.get(i + 1)) {
        (Some(b'\r'), Some(b'\n')) => Ok(i + 2),
        (Some(b'\r'), None) | (None, _) => Err(FieldScanError::Incomplete),
        (Some(b'\n'), _) => Err(FieldScanError::Invalid(BARE_LF)),
        _ => Err(FieldScanError::Invalid(CR_WITHOUT_LF)),
    }
}

/// Scans the field line (or the final empty line) starting at `buf[start]`.
///
/// Rules: the name is a non-empty token immediately followed by `:` (whitespace before
/// the colon is an error); a line starting with SP or HTAB is obsolete line folding and
/// an error; the value may hold HTAB, SP, VCHAR and obs-text only; the line ends in CRLF.
pub(crate) fn scan_field_line(buf: &[u8], start: usize) -> Result<FieldLine, FieldScanError> {
    match buf.get(start) {
        None => return Err(FieldScanError::Incomplete),
        Some(b'\r' | b'\n') => return line_end(buf, start).map(|next| FieldLine::End { next }),
        Some(b' ' | b'\t') => {
            return Err(FieldScanError::Invalid(
                "obsolete line folding (field line starts with whitespace)",
            ));
        }
        Some(_) => {}
    }

    let mut i = start;
    while buf.get(i).is_some_and(|&b| is_tchar(b)) {
        i += 1;
    }
    let name_end = i;
    match buf.get(i) {
        None => return Err(FieldScanError::Incomplete),
        Some(b':') if name_end > start => {}
        Some(b':') => return Err(FieldScanError::Invalid("empty field name")),
        Some(b' ' | b'\t') => {
            return Err(FieldScanError::Invalid(
                "whitespace between field name and colon",
            ));
        }
        Some(b'\n') => return Err(FieldScanError::Invalid(BARE_LF)),
        Some(b'\r') => return Err(FieldScanError::Invalid("field line without a colon")),
        Some(_) => return Err(FieldScanError::Invalid("invalid byte in field name")),
    }

    i += 1;
    while matches!(buf.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let value_start = i;
    while buf.get(i).is_some_and(|&b| is_value_byte(b)) {
        i += 1;
    }
    let mut value_end = i;
    let next = match buf.get(i) {
        None => return Err(FieldScanError::Incomplete),
        Some(b'\r' | b'\n') => line_end(buf, i)?,
        Some(_) => return Err(FieldScanError::Invalid("control byte in field value")),
    };
    while value_end > value_start && matches!(buf.get(value_end - 1), Some(b' ' | b'\t')) {
        value_end -= 1;
    }
    Ok(FieldLine::Field {
        pos: FieldPos {
            name_start: start,
            name_end,
            value_start,
            value_end,
        },
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_line_scan_reports_positions_without_ows() {
        let buf = b"X-A: \t v a l \t \r\nrest";
        let got = scan_field_line(buf, 0);
        assert_eq!(
            got,
            Ok(FieldLine::Field {
                pos: FieldPos {
                    name_start: 0,
                    name_end: 3,
                    value_start: 7,
                    value_end: 12
                },
                next: 17
            })
        );
        assert_eq!(
            scan_field_line(b"A:\r\n", 0).map(|l| match l {
                FieldLine::Field { pos, .. } => pos.value_end - pos.value_start,
                FieldLine::End { .. } => usize::MAX,
            }),
            Ok(0)
        );
    }

    #[test]
    fn field_line_scan_distinguishes_incomplete_from_invalid() {
        let incomplete: &[&[u8]] = &[
            b"",
            b"\r",
            b"Na",
            b"Name",
            b"Name:",
            b"Name: v",
            b"Name: v\r",
        ];
        for line in incomplete {
            assert_eq!(
                scan_field_line(line, 0),
                Err(FieldScanError::Incomplete),
                "{line:?}"
            );
        }
        let invalid: &[&[u8]] = &[
            b"\n",
            b"\rx",
            b" a: b\r\n",
            b"a : b\r\n",
            b":b\r\n",
            b"a\r\n",
            b"a\n",
            b"a: b\n",
            b"a: b\rc",
            b"a: \x00\r\n",
            b"a\x80: b\r\n",
        ];
        for line in invalid {
            assert!(
                matches!(scan_field_line(line, 0), Err(FieldScanError::Invalid(_))),
                "{line:?}"
            );
        }
    }
}
