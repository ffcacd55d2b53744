//! Validators and the conditional and range rules of nginx's static module:
//! ETag `"<hex mtime>-<hex size>"`, If-None-Match with weak comparison,
//! If-Modified-Since by exact equality, both having to agree when both are
//! sent; If-Match/If-Unmodified-Since → 412; If-Range (the Range header itself
//! is read by `portico_proto::http1::parse_ranges`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// A file's validators, formatted once (and kept with a cached file's
/// content, so a cache hit formats nothing).
#[derive(Debug, Clone)]
pub(crate) struct Validators {
    pub etag: Bytes,
    pub last_modified: Bytes,
    pub mtime: u64,
}

impl Validators {
    pub(crate) fn new(mtime: u64, size: u64) -> Validators {
        Validators {
            etag: Bytes::from(format!("\"{mtime:x}-{size:x}\"")),
            last_modified: Bytes::from(http_date(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(mtime))
                    .unwrap_or(UNIX_EPOCH + LAST_HTTP_DATE),
            )),
            mtime,
        }
    }

    /// The ETag as text (always ASCII).
    fn etag_text(&self) -> &str {
        std::str::from_utf8(&self.etag).unwrap_or_default()
    }
}

/// What the conditional headers decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    Proceed,
    NotModified,
    /// 412: If-Match or If-Unmodified-Since failed.
    Failed,
}

fn http_date_secs(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

fn opaque(tag: &str) -> &str {
    tag.trim().strip_prefix("W/").unwrap_or(tag.trim())
}

/// Does a comma-separated ETag list match? `weak`: ignore `W/` on both sides.
fn etag_list_matches(list: &[u8], etag: &str, weak: bool) -> bool {
    let Ok(list) = std::str::from_utf8(list) else {
        return false;
    };
    list.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || if weak {
                opaque(tag) == opaque(etag)
            } else {
                !tag.starts_with("W/") && tag == etag
            }
    })
}

/// Evaluate the request's preconditions against a file's validators.
pub(crate) fn evaluate(
    v: &Validators,
    if_match: Option<&[u8]>,
    if_unmodified_since: Option<&[u8]>,
    if_none_match: Option<&[u8]>,
    if_modified_since: Option<&[u8]>,
) -> Condition {
    if let Some(list) = if_match
        && !etag_list_matches(list, v.etag_text(), false)
    {
        return Condition::Failed;
    }
    if let Some(date) = if_unmodified_since
        && http_date_secs(date).is_some_and(|since| v.mtime > since)
    {
        return Condition::Failed;
    }
    let inm = if_none_match.map(|list| etag_list_matches(list, v.etag_text(), true));
    let ims = if_modified_since.map(|date| http_date_secs(date) == Some(v.mtime));
    match (inm, ims) {
        (None, None) => Condition::Proceed,
        (Some(a), Some(b)) if a && b => Condition::NotModified,
        (Some(a), None) | (None, Some(a)) if a => Condition::NotModified,
        _ => Condition::Proceed,
    }
}

/// If-Range: the ETag must be equal (strong), or the date equal to mtime.
pub(crate) fn if_range_allows(if_range: &[u8], v: &Validators) -> bool {
    if if_range.first() == Some(&b'"') {
        return if_range == &v.etag[..];
    }
    http_date_secs(if_range) == Some(v.mtime)
}

/// The last second an HTTP date shows, 9999-12-31 23:59:59: nginx's
/// `ngx_gmtime` shows every later time as it (`expires 500000000y`), and
/// `httpdate` panics past it.
const LAST_HTTP_DATE: Duration = Duration::from_secs(253_402_300_799);

/// An HTTP date (`Expires`, `Last-Modified`); a time before 1970 shows as
/// 1970, one after 9999 as its last second, as nginx shows them.
pub(crate) fn http_date(time: SystemTime) -> String {
    let last = UNIX_EPOCH + LAST_HTTP_DATE;
    httpdate::fmt_http_date(time.clamp(UNIX_EPOCH, last))
}

/// `Expires` value `seconds` from now.
pub(crate) fn expires_in(seconds: u64) -> String {
    let now = SystemTime::now();
    http_date(
        now.checked_add(Duration::from_secs(seconds))
            .unwrap_or(UNIX_EPOCH + LAST_HTTP_DATE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_past_year_9999_show_its_last_second_and_before_1970_show_1970() {
        let far = UNIX_EPOCH + Duration::from_secs(500_000_000 * 365 * 86_400);
        assert_eq!(http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(expires_in(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &Validators::new(u64::MAX, 1).last_modified[..],
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    fn v() -> Validators {
        Validators::new(0x5e0d5da5, 23)
    }

    #[test]
    fn etag_has_nginx_format() {
        assert_eq!(v().etag, "\"5e0d5da5-17\"");
        assert_eq!(v().last_modified, "Thu, 02 Jan 2020 03:04:05 GMT");
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_star() {
        let lm = v().last_modified;
        assert_eq!(
            evaluate(&v(), None, None, Some(b"W/\"5e0d5da5-17\""), None),
            Condition::NotModified
        );
        assert_eq!(
            evaluate(&v(), None, None, Some(b"\"x\", \"5e0d5da5-17\""), None),
            Condition::NotModified
        );
        assert_eq!(
            evaluate(&v(), None, None, Some(b"*"), None),
            Condition::NotModified
        );
        assert_eq!(
            evaluate(&v(), None, None, Some(b"\"other\""), None),
            Condition::Proceed
        );
        assert_eq!(
            evaluate(&v(), None, None, None, Some(&lm[..])),
            Condition::NotModified
        );
    }

    #[test]
    fn if_modified_since_must_be_exactly_the_mtime() {
        let later = "Fri, 03 Jan 2020 03:04:37 GMT";
        assert_eq!(
            evaluate(&v(), None, None, None, Some(later.as_bytes())),
            Condition::Proceed
        );
    }

    #[test]
    fn both_conditions_must_agree() {
        let lm = v().last_modified;
        assert_eq!(
            evaluate(&v(), None, None, Some(b"\"other\""), Some(&lm[..])),
            Condition::Proceed
        );
        assert_eq!(
            evaluate(&v(), None, None, Some(b"\"5e0d5da5-17\""), Some(&lm[..])),
            Condition::NotModified
        );
    }

    #[test]
    fn failed_if_match_or_if_unmodified_since_is_412() {
        assert_eq!(
            evaluate(&v(), Some(b"\"other\""), None, None, None),
            Condition::Failed
        );
        assert_eq!(
            evaluate(&v(), Some(b"W/\"5e0d5da5-17\""), None, None, None),
            Condition::Failed
        );
        assert_eq!(
            evaluate(&v(), Some(b"\"5e0d5da5-17\""), None, None, None),
            Condition::Proceed
        );
        let before = "Wed, 01 Jan 2020 00:00:00 GMT";
        assert_eq!(
            evaluate(&v(), None, Some(before.as_bytes()), None, None),
            Condition::Failed
        );
    }

    #[test]
    fn if_range_needs_the_same_etag_or_date() {
        assert!(if_range_allows(b"\"5e0d5da5-17\"", &v()));
        assert!(!if_range_allows(b"\"old\"", &v()));
        assert!(if_range_allows(&v().last_modified[..], &v()));
        assert!(!if_range_allows(b"Wed, 01 Jan 2020 00:00:00 GMT", &v()));
    }
}
