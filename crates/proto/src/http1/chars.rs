//! Byte classes from RFC 9110/9112 as 256-entry lookup tables, plus the small helpers
//! (OWS trimming, case-insensitive token lists) shared by the head and chunked parsers.
//!
//! Tables instead of `matches!` chains keep the per-byte loops of the hot path to one
//! load and one branch.

/// Builds a table from a `const fn(u8) -> bool` at compile time (a macro because const
/// fns cannot call function pointers).
macro_rules! table {
    ($pred:ident) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            // Const context: `i < 256` is the loop bound (and `get_mut` is not const).
            #[allow(clippy::indexing_slicing)]
            {
                t[i] = $pred(i as u8);
            }
            i += 1;
        }
        t
    }};
}

/// RFC 9110 `tchar`: the bytes of a token (method, field name, transfer coding).
const fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Bytes allowed in a request-target: visible ASCII. A `#` (a fragment, which clients
/// should not send) is accepted and cut off by the target splitter, as nginx does.
const fn target_byte(b: u8) -> bool {
    b >= 0x21 && b <= 0x7e
}

/// Bytes allowed in a field value: HTAB, SP, VCHAR and obs-text. No other control byte.
const fn value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Bytes allowed inside a quoted-string besides quoted-pairs (`qdtext`).
const fn qdtext(b: u8) -> bool {
    b == b'\t' || b == b' ' || b == 0x21 || (b >= 0x23 && b <= 0x5b) || (b >= 0x5d && b != 0x7f)
}

static TCHAR: [bool; 256] = table!(tchar);
static TARGET: [bool; 256] = table!(target_byte);
static VALUE: [bool; 256] = table!(value_byte);
static QDTEXT: [bool; 256] = table!(qdtext);

/// `table[b]`: a `u8` always indexes a 256-entry table.
#[inline]
fn lookup(table: &[bool; 256], b: u8) -> bool {
    #[allow(clippy::indexing_slicing)] // usize::from(u8) < 256
    table[usize::from(b)]
}

#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    lookup(&TCHAR, b)
}

#[inline]
pub(crate) fn is_target_byte(b: u8) -> bool {
    lookup(&TARGET, b)
}

#[inline]
pub(crate) fn is_value_byte(b: u8) -> bool {
    lookup(&VALUE, b)
}

#[inline]
pub(crate) fn is_qdtext(b: u8) -> bool {
    lookup(&QDTEXT, b)
}

/// `s[n..]`, or empty when `n` is past the end.
#[inline]
pub(crate) fn tail(s: &[u8], n: usize) -> &[u8] {
    s.get(n..).unwrap_or_default()
}

/// `s[..n]`, or all of `s` when `n` is past the end.
#[inline]
pub(crate) fn head(s: &[u8], n: usize) -> &[u8] {
    s.get(..n).unwrap_or(s)
}

/// `s[start..end]`, or empty when the range is not inside `s`.
#[inline]
pub(crate) fn range(s: &[u8], start: usize, end: usize) -> &[u8] {
    s.get(start..end).unwrap_or_default()
}

/// Whether `s` is a non-empty token.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `s` without leading and trailing optional whitespace (SP / HTAB).
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    range(s, start, end)
}

/// The elements of a comma-separated list, each with OWS trimmed (empty elements kept,
/// so callers decide whether `a,,b` is acceptable).
pub(crate) fn list_elements(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&b| b == b',').map(trim_ows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_ows_strips_only_spaces_and_tabs() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"  ", b""),
            (b" \tx\t ", b"x"),
            (b"a b", b"a b"),
            (b"\x0bx", b"\x0bx"),
        ];
        for (input, want) in cases {
            assert_eq!(trim_ows(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn byte_classes_match_the_rfc_grammar() {
        assert!(is_tchar(b'~') && is_tchar(b'Z') && !is_tchar(b':') && !is_tchar(b' '));
        assert!(is_target_byte(b'/') && is_target_byte(b'#') && !is_target_byte(0x80));
        assert!(is_value_byte(b'\t') && is_value_byte(0xff) && !is_value_byte(0x7f));
        assert!(!is_value_byte(0) && !is_value_byte(b'\r'));
        assert!(is_qdtext(b'a') && !is_qdtext(b'"') && !is_qdtext(b'\\'));
    }
}
