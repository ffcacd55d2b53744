//! The `Range` request header (RFC 9110 §14.2), read as nginx's static and
//! range filters read it: `bytes=a-b,c-,-n` against a representation of a
//! known size. Used by the static file responder; fuzzed (`fuzz/range`).

/// The answer to a Range header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Serve the whole representation: no `bytes=` unit, or ranges whose
    /// sizes add up past the size (nginx's rule against amplification).
    Full,
    /// Inclusive byte ranges, in request order, each within the size.
    Partial(Vec<(u64, u64)>),
    /// 416 with `Content-Range: bytes */SIZE`.
    Unsatisfiable,
}

/// Parse `bytes=a-b,c-,-n` against a representation of `size` bytes, as
/// nginx does: the unit is case-insensitive (RFC 9110 §14.1), a range that
/// starts past the end is dropped, and none left is unsatisfiable.
pub fn parse_ranges(header: &[u8], size: u64) -> Ranges {
    let unit = b"bytes=";
    let spec = match header.split_at_checked(unit.len()) {
        Some((head, spec)) if head.eq_ignore_ascii_case(unit) => spec,
        _ => return Ranges::Full,
    };
    let Ok(spec) = std::str::from_utf8(spec) else {
        return Ranges::Unsatisfiable;
    };
    let mut out = Vec::new();
    let mut total: u64 = 0;
    for part in spec.split(',') {
        let Some((start, end)) = part.trim().split_once('-') else {
            return Ranges::Unsatisfiable;
        };
        let last = size.saturating_sub(1);
        let range = match (start.trim(), end.trim()) {
            ("", suffix) => match number(suffix) {
                Some(0) | None => return Ranges::Unsatisfiable,
                Some(n) => (size.saturating_sub(n), last),
            },
            (start, "") => match number(start) {
                Some(s) => (s, last),
                None => return Ranges::Unsatisfiable,
            },
            (start, end) => match (number(start), number(end)) {
                (Some(s), Some(e)) if s <= e => (s, e.min(last)),
                _ => return Ranges::Unsatisfiable,
            },
        };
        if range.0 >= size {
            continue; // not satisfiable on its own; others may be
        }
        // range.0 < size, so range.1 (≥ range.0, ≤ size - 1) is in the file
        total = total.saturating_add(range.1 - range.0 + 1);
        out.push(range);
    }
    if out.is_empty() {
        return Ranges::Unsatisfiable;
    }
    if total > size {
        return Ranges::Full;
    }
    Ranges::Partial(out)
}

/// A position: ASCII digits only (no sign, no spaces inside), within u64.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_nginx() {
        assert_eq!(
            parse_ranges(b"bytes=0-4", 23),
            Ranges::Partial(vec![(0, 4)])
        );
        assert_eq!(
            parse_ranges(b"bytes=-5", 23),
            Ranges::Partial(vec![(18, 22)])
        );
        assert_eq!(
            parse_ranges(b"bytes=20-", 23),
            Ranges::Partial(vec![(20, 22)])
        );
        assert_eq!(
            parse_ranges(b"bytes=20-100", 23),
            Ranges::Partial(vec![(20, 22)])
        );
        assert_eq!(
            parse_ranges(b"bytes=0-1,3-4", 23),
            Ranges::Partial(vec![(0, 1), (3, 4)])
        );
        assert_eq!(parse_ranges(b"bytes=100-200", 23), Ranges::Unsatisfiable);
        assert_eq!(parse_ranges(b"bytes=5-2", 23), Ranges::Unsatisfiable);
        assert_eq!(parse_ranges(b"bytes=abc", 23), Ranges::Unsatisfiable);
        assert_eq!(parse_ranges(b"bytes=-0", 23), Ranges::Unsatisfiable);
        assert_eq!(
            parse_ranges(b"bytes=0-22,0-22", 23),
            Ranges::Full,
            "sum past the size"
        );
        assert_eq!(parse_ranges(b"items=0-1", 23), Ranges::Full);
        assert_eq!(parse_ranges(b"byte", 23), Ranges::Full);
        assert_eq!(
            parse_ranges(b"Bytes=0-4", 23),
            Ranges::Partial(vec![(0, 4)])
        );
    }

    #[test]
    fn empty_representation_has_no_satisfiable_range() {
        assert_eq!(parse_ranges(b"bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(parse_ranges(b"bytes=-5", 0), Ranges::Unsatisfiable);
    }

    #[test]
    fn huge_positions_neither_overflow_nor_wrap() {
        let max = u64::MAX;
        assert_eq!(
            parse_ranges(format!("bytes=0-{max}").as_bytes(), max),
            Ranges::Partial(vec![(0, max - 1)])
        );
        assert_eq!(
            parse_ranges(b"bytes=0-99999999999999999999999", 23),
            Ranges::Unsatisfiable,
            "past u64 is not a number"
        );
        assert_eq!(parse_ranges(b"bytes=+1-2", 23), Ranges::Unsatisfiable);
    }
}
