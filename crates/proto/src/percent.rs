//! Percent-decoding (RFC 3986 §2.1) of request paths for `PATH_INFO`, and the
//! character sets nginx percent-encodes, over the `percent-encoding` crate.
//!
//! Lenient by design where leniency is harmless: an invalid escape (`%zz`, a truncated
//! `%4`) is kept literally, as gunicorn and most servers do, rather than failing the
//! request. `+` is *not* a space here; that rule belongs to query strings only.
//! nginx's own decoding rules (URI normalisation, `NGX_UNESCAPE_REDIRECT`)
//! differ from RFC 3986's and stay hand-written in `server::site`.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// Percent-decode a path; invalid escapes (`%zz`, truncated `%4`) are kept literally.
///
/// Borrows the input when it contains no `%`, so the common path costs one `memchr`.
pub fn percent_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'%', input).is_none() {
        return Cow::Borrowed(input);
    }
    percent_encoding::percent_decode(input).into()
}

/// nginx's `ngx_escape_uri(NGX_ESCAPE_URI)`: control bytes, bytes above
/// 0x7e, space, `"`, `#`, `%`, `<`, `>`, `?`, `\`, `^`, `` ` ``, `{`, `|`, `}`.
pub const NGINX_ESCAPE_URI: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// All but RFC 3986's unreserved characters (`ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT)`,
/// as observed).
pub const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Append `src` to `out` with the bytes of `set` (and every byte above 0x7e)
/// as `%XX`, upper-case hex.
pub fn percent_encode_into(out: &mut Vec<u8>, src: &[u8], set: &'static AsciiSet) {
    for piece in percent_encoding::percent_encode(src, set) {
        out.extend_from_slice(piece.as_bytes());
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

    #[test]
    fn nginx_uri_escaping_keeps_its_exact_set() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut out = Vec::new();
        percent_encode_into(&mut out, &all, NGINX_ESCAPE_URI);
        let mut want = Vec::new();
        for b in all {
            let escaped = !(0x20..0x7f).contains(&b) || b" \"#%<>?\\^`{|}".contains(&b);
            if escaped {
                want.extend_from_slice(format!("%{b:02X}").as_bytes());
            } else {
                want.push(b);
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want)
        );
        out.clear();
        percent_encode_into(&mut out, b"a b/~-._\xff", URI_COMPONENT);
        assert_eq!(out, b"a%20b%2F~-._%FF");
    }
}
