//! JSON string contents, escaped in one place for both writers of JSON:
//! the stats document (text Portico holds as UTF-8) and the JSON access log
//! (request bytes of unknown encoding). The two differ only in what they do
//! with bytes past ASCII, which [`NonAscii`] names.

use std::io::Write;

/// What a byte at or past 0x80 is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonAscii {
    /// Part of valid UTF-8 text: written as it is.
    Utf8,
    /// A raw request byte, read as latin-1 (as the WSGI environ reads it):
    /// written as `\u00HH`, so the line stays ASCII and valid whatever the
    /// client sent.
    Latin1,
}

/// Append the contents of a JSON string (no quotes) for `value`: `"` and
/// `\` backslashed, newline, return and tab as `\n`, `\r`, `\t`, every
/// other control byte and DEL as `\u00HH`, bytes past ASCII per `non_ascii`.
pub fn escape_json(out: &mut Vec<u8>, value: &[u8], non_ascii: NonAscii) {
    for &b in value {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(b),
            0x80.. if non_ascii == NonAscii::Utf8 => out.push(b),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(value: &[u8], non_ascii: NonAscii) -> String {
        let mut out = Vec::new();
        escape_json(&mut out, value, non_ascii);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn quotes_backslashes_and_control_bytes_are_escaped() {
        assert_eq!(
            escaped(b"a\"b\\c\n\r\t\x01\x7f", NonAscii::Utf8),
            "a\\\"b\\\\c\\n\\r\\t\\u0001\\u007f"
        );
    }

    #[test]
    fn bytes_past_ascii_are_kept_as_utf8_or_escaped_as_latin1() {
        assert_eq!(escaped("é".as_bytes(), NonAscii::Utf8), "é");
        assert_eq!(escaped("é".as_bytes(), NonAscii::Latin1), "\\u00c3\\u00a9");
        assert_eq!(escaped(b"\xff", NonAscii::Latin1), "\\u00ff");
    }
}
