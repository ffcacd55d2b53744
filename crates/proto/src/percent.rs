//! Percent-decoding (RFC 3986 §2.1) of request paths for `PATH_INFO`.
//!
//! Lenient by design where leniency is harmless: an invalid escape (`%zz`, a truncated
//! `%4`) is kept literally, as gunicorn and most servers do, rather than failing the
//! request. `+` is *not* a space here; that rule belongs to query strings only.

use std::borrow::Cow;

/// Percent-decode a path; invalid escapes (`%zz`, truncated `%4`) are kept literally.
///
/// Borrows the input when it contains no `%`, so the common path costs one `memchr`.
pub fn percent_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(b'%', input) else {
        return Cow::Borrowed(input);
    };
    let mut out = Vec::with_capacity(input.len());
    let (plain, mut rest) = input.split_at_checked(first).unwrap_or((input, &[]));
    out.extend_from_slice(plain);
    while let Some(&b) = rest.first() {
        match escaped_byte(rest) {
            Some(decoded) => {
                out.push(decoded);
                rest = rest.get(3..).unwrap_or_default();
            }
            None => {
                out.push(b);
                rest = rest.get(1..).unwrap_or_default();
            }
        }
    }
    Cow::Owned(out)
}

/// The byte encoded by a valid `%XX` escape at the start of `input`, if there is one.
fn escaped_byte(input: &[u8]) -> Option<u8> {
    match input.get(..3)? {
        [b'%', hi, lo] => Some(hex(*hi)? << 4 | hex(*lo)?),
        _ => None,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_decodes_valid_escapes_and_keeps_invalid_ones() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"/plain/path", b"/plain/path"),
            (b"/a%20b", b"/a b"),
            (b"/%41%42%43", b"/ABC"),
            (b"/%e2%82%ac", "/€".as_bytes()),
            (b"/%2F", b"//"),
            (b"/%2f%2F", b"///"),
            (b"/%zz", b"/%zz"),
            (b"/%4", b"/%4"),
            (b"/%", b"/%"),
            (b"%", b"%"),
            (b"/%%41", b"/%A"),
            (b"/%4g", b"/%4g"),
            (b"/a+b", b"/a+b"),
            (b"/%00", b"/\0"),
            (b"%41", b"A"),
        ];
        for (input, want) in cases {
            assert_eq!(
                &*percent_decode(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn percent_decode_borrows_when_there_is_nothing_to_decode() {
        assert!(matches!(percent_decode(b"/no/escapes"), Cow::Borrowed(_)));
    }
}
