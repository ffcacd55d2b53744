//! Time as Portico writes it, in one place: seconds and microseconds since
//! the epoch, the `Date` header (IMF-fixdate, formatted at most once per
//! second per thread) and the local `ctime()` form of uWSGI's logs.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

struct Cache {
    second: u64,
    /// The start of `second` and of the one after: between them, `http`
    /// holds.
    from: SystemTime,
    until: SystemTime,
    http: String,
}

thread_local! {
    static HTTP_DATE: RefCell<Cache> = const { RefCell::new(Cache { second: u64::MAX, from: UNIX_EPOCH, until: UNIX_EPOCH, http: String::new() }) };
}

/// Whole seconds from the epoch to `t` (0 before it).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Microseconds from the epoch to `t` (0 before it).
pub fn unix_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Append the current `Date` header value to `out`.
pub(crate) fn append_http_date(out: &mut Vec<u8>) {
    let now = crate::clock::wall();
    HTTP_DATE.with(|cell| {
        let mut cache = cell.borrow_mut();
        // A comparison in the usual case; the second's number only when
        // it may have changed.
        if now >= cache.until || now < cache.from {
            let second = unix_seconds(now);
            if cache.second != second {
                cache.second = second;
                cache.http = httpdate::fmt_http_date(now);
            }
            let at = |s: u64| UNIX_EPOCH.checked_add(std::time::Duration::from_secs(s));
            // Out of range (never in practice): recomputed every time.
            (cache.from, cache.until) = match (at(second), at(second.saturating_add(1))) {
                (Some(from), Some(until)) => (from, until),
                _ => (now, now),
            };
        }
        out.extend_from_slice(cache.http.as_bytes());
    });
}

/// `Fri Nov 20 21:41:04 2026` in local time, as ctime(3) and so uWSGI's
/// logs print it.
pub fn ctime(t: SystemTime) -> String {
    strftime_local(t, c"%a %b %e %H:%M:%S %Y").unwrap_or_else(|| String::from("-"))
}

/// `t` in local time, formatted by strftime(3); `None` if it cannot be.
pub(crate) fn strftime_local(t: SystemTime, format: &std::ffi::CStr) -> Option<String> {
    let secs = unix_seconds(t) as libc::time_t;
    // SAFETY: localtime_r writes into the tm we own; strftime writes at most
    // buf.len() bytes into buf and returns how many it wrote.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return None;
        }
        let mut buf = [0u8; 256];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm);
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_cached_for_a_past_second_is_formatted_again() {
        HTTP_DATE.with(|cell| {
            let mut cache = cell.borrow_mut();
            cache.second = 1;
            cache.from = UNIX_EPOCH + std::time::Duration::from_secs(1);
            cache.until = UNIX_EPOCH + std::time::Duration::from_secs(2);
            cache.http = String::from("stale");
        });
        let mut out = Vec::new();
        append_http_date(&mut out);
        let Ok(s) = String::from_utf8(out) else {
            panic!("not ascii")
        };
        assert!(httpdate::parse_http_date(&s).is_ok(), "{s}");
    }

    #[test]
    fn http_date_is_imf_fixdate() {
        let mut out = Vec::new();
        append_http_date(&mut out);
        let s = String::from_utf8(out).expect("ascii");
        assert_eq!(s.len(), 29, "{s}");
        assert!(s.ends_with(" GMT"));
        assert!(httpdate::parse_http_date(&s).is_ok());
    }

    #[test]
    fn ctime_has_uwsgi_shape() {
        let s = ctime(UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        assert_eq!(s.len(), 24, "{s}");
    }
}
