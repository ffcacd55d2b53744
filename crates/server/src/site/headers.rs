//! nginx's headers filter on the way out: `expires` (Expires and
//! Cache-Control) and `add_header`, applied to 200, 201, 204, 206, 301,
//! 302, 303, 304, 307 and 308 answers, and to any answer for an
//! `add_header ... always`; the charset filter (`charset NAME` on the
//! `charset_types`); plus `absolute_redirect`: a `Location` that starts
//! with `/` gets `http://host[:port]` in front.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::site::{Expires, LocationConfig, Template};

use crate::handler::Response;
use crate::statics::http_date;

/// The statuses `expires` and a plain `add_header` apply to.
pub(crate) fn decorates(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// `expires max`: nginx's fixed far-future date.
const EXPIRES_MAX: &str = "Thu, 31 Dec 2037 23:55:55 GMT";
/// `expires epoch`.
const EXPIRES_EPOCH: &str = "Thu, 01 Jan 1970 00:00:01 GMT";
/// `expires max`'s Cache-Control (ten years).
const MAX_AGE_MAX: i64 = 315_360_000;

/// The Expires and Cache-Control values for `expires`, at `now`, for an
/// answer last modified at `last_modified` (seconds), as
/// `ngx_http_set_expires` computes them. `None` for `expires off`.
pub(crate) fn expires_values(
    expires: Expires,
    now: i64,
    last_modified: Option<i64>,
) -> Option<(String, String)> {
    let (expires_at, max_age, negative) = match expires {
        Expires::Off => return None,
        Expires::Epoch => return Some((EXPIRES_EPOCH.into(), "no-cache".into())),
        Expires::Max => {
            return Some((EXPIRES_MAX.into(), format!("max-age={MAX_AGE_MAX}")));
        }
        Expires::DailyAt { seconds_of_day } => {
            let at = next_time(now, seconds_of_day);
            (at, at - now, false)
        }
        Expires::After {
            seconds,
            from_modified,
        } => match last_modified.filter(|_| from_modified) {
            Some(modified) => (modified + seconds, modified + seconds - now, seconds < 0),
            None => (now + seconds, seconds, seconds < 0),
        },
    };
    let date = http_date(unix_time(expires_at));
    let cache_control = if negative || max_age < 0 {
        "no-cache".to_string()
    } else {
        format!("max-age={max_age}")
    };
    Some((date, cache_control))
}

fn unix_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    }
}

/// The next local time of day `seconds_of_day` after `now` (nginx's
/// `ngx_next_time`: today if still ahead, else tomorrow).
fn next_time(now: i64, seconds_of_day: u32) -> i64 {
    let t = now as libc::time_t;
    // SAFETY: `tm` is plain data filled by localtime_r; mktime reads and
    // normalises it. Both are thread-safe and touch no other memory.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return now + 86_400;
        }
        tm.tm_hour = (seconds_of_day / 3600) as libc::c_int;
        tm.tm_min = (seconds_of_day % 3600 / 60) as libc::c_int;
        tm.tm_sec = (seconds_of_day % 60) as libc::c_int;
        let mut next = libc::mktime(&mut tm) as i64;
        if next == -1 {
            return now + 86_400;
        }
        if next <= now {
            tm.tm_mday += 1;
            next = libc::mktime(&mut tm) as i64;
        }
        next
    }
}

fn set_header(response: &mut Response, name: &'static str, value: String) {
    response
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
    response
        .headers
        .push((Bytes::from_static(name.as_bytes()), Bytes::from(value)));
}

/// Apply `expires` and `add_header` of `config` to a finished answer;
/// `eval` gives a template its value for this request. The clock and the
/// answer's `Last-Modified` are read only under `expires`.
pub(crate) fn decorate(
    response: &mut Response,
    config: &LocationConfig,
    eval: &mut dyn FnMut(&Template) -> Vec<u8>,
) {
    let plain = decorates(response.status);
    if plain && config.expires != Expires::Off {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let last_modified = response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"last-modified"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        if let Some((expires, cache_control)) = expires_values(config.expires, now, last_modified) {
            set_header(response, "Expires", expires);
            set_header(response, "Cache-Control", cache_control);
        }
    }
    for add in &config.add_headers {
        if !(plain || add.always) {
            continue;
        }
        let value = eval(&add.value);
        if value.is_empty() {
            continue; // nginx adds nothing for an empty value
        }
        response.headers.push((
            Bytes::copy_from_slice(add.name.as_bytes()),
            Bytes::from(value),
        ));
    }
}

/// nginx's default `charset_types`.
const CHARSET_TYPES: [&[u8]; 6] = [
    b"text/html",
    b"text/xml",
    b"text/plain",
    b"text/vnd.wap.wml",
    b"application/javascript",
    b"application/rss+xml",
];

/// `charset NAME`: `; charset=NAME` on a Content-Type of the
/// `charset_types` that has none, unless the body is content-encoded or
/// the answer is a 301/302 (nginx leaves those alone, for Netscape 4).
pub(crate) fn add_charset(response: &mut Response, charset: &str) {
    if matches!(response.status, 301 | 302) {
        return;
    }
    let encoded = response
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case(b"content-encoding") && !v.is_empty());
    if encoded {
        return;
    }
    for (name, value) in &mut response.headers {
        if !name.eq_ignore_ascii_case(b"content-type") {
            continue;
        }
        let mime = value.split(|&b| b == b';').next().unwrap_or_default();
        let mime = mime.trim_ascii();
        let has_charset = value
            .windows(8)
            .any(|w| w.eq_ignore_ascii_case(b"charset="));
        if has_charset || !CHARSET_TYPES.iter().any(|t| mime.eq_ignore_ascii_case(t)) {
            return;
        }
        let mut typed = value.to_vec();
        typed.extend_from_slice(b"; charset=");
        typed.extend_from_slice(charset.as_bytes());
        *value = Bytes::from(typed);
        return;
    }
}

/// `absolute_redirect on` with `port_in_redirect on`: the prefix a
/// `Location` starting with `/` gets (`http://host[:port]`, the port left
/// out when it is the scheme's own).
pub(crate) fn redirect_base(scheme: &str, host: &[u8], port: Option<u16>) -> Vec<u8> {
    let mut out = Vec::with_capacity(host.len() + 16);
    out.extend_from_slice(scheme.as_bytes());
    out.extend_from_slice(b"://");
    out.extend_from_slice(host);
    let default = if scheme == "https" { 443 } else { 80 };
    if let Some(port) = port.filter(|&p| p != default) {
        out.extend_from_slice(format!(":{port}").as_bytes());
    }
    out
}

/// Make a relative `Location` absolute with `base` (see [`redirect_base`]).
pub(crate) fn absolutize_location(response: &mut Response, base: &[u8]) {
    for (name, value) in &mut response.headers {
        if name.eq_ignore_ascii_case(b"location") && value.first() == Some(&b'/') {
            let mut full = Vec::with_capacity(base.len() + value.len());
            full.extend_from_slice(base);
            full.extend_from_slice(value);
            *value = Bytes::from(full);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_577_934_245; // Thu, 02 Jan 2020 03:04:05 GMT

    #[test]
    fn expires_after_sets_the_date_and_max_age() {
        let v = expires_values(
            Expires::After {
                seconds: 3600,
                from_modified: false,
            },
            NOW,
            None,
        );
        assert_eq!(
            v,
            Some((
                "Thu, 02 Jan 2020 04:04:05 GMT".into(),
                "max-age=3600".into()
            ))
        );
    }

    #[test]
    fn negative_and_epoch_mean_no_cache() {
        let v = expires_values(
            Expires::After {
                seconds: -60,
                from_modified: false,
            },
            NOW,
            None,
        );
        assert_eq!(v.map(|v| v.1), Some("no-cache".to_string()));
        assert_eq!(
            expires_values(Expires::Epoch, NOW, None),
            Some((EXPIRES_EPOCH.into(), "no-cache".into()))
        );
        assert_eq!(
            expires_values(Expires::Max, NOW, None).map(|v| v.1),
            Some("max-age=315360000".into())
        );
        assert_eq!(expires_values(Expires::Off, NOW, None), None);
    }

    #[test]
    fn expires_modified_counts_from_the_mtime() {
        let modified = Expires::After {
            seconds: 7200,
            from_modified: true,
        };
        let v = expires_values(modified, NOW, Some(NOW - 3600));
        assert_eq!(
            v,
            Some((
                "Thu, 02 Jan 2020 04:04:05 GMT".into(),
                "max-age=3600".into()
            ))
        );
        // Without a Last-Modified it counts from now.
        assert_eq!(
            expires_values(modified, NOW, None).map(|v| v.1),
            Some("max-age=7200".into())
        );
        // Already past: no-cache.
        assert_eq!(
            expires_values(modified, NOW, Some(NOW - 10_000)).map(|v| v.1),
            Some("no-cache".into())
        );
    }

    #[test]
    fn daily_is_the_next_occurrence() {
        let v = expires_values(Expires::DailyAt { seconds_of_day: 0 }, NOW, None);
        let age: i64 = v
            .and_then(|(_, cc)| cc.strip_prefix("max-age=").and_then(|n| n.parse().ok()))
            .unwrap_or(-1);
        assert!((1..=86_400 + 3600).contains(&age), "{age}");
    }

    #[test]
    fn only_success_and_redirect_statuses_are_decorated() {
        for s in [200, 201, 204, 206, 301, 302, 303, 304, 307, 308] {
            assert!(decorates(s), "{s}");
        }
        for s in [202, 300, 400, 403, 404, 500] {
            assert!(!decorates(s), "{s}");
        }
    }

    #[test]
    fn charset_goes_on_text_types_without_one() {
        let typed = |ct: &'static str, extra: &[(&'static str, &'static str)]| {
            let mut r = Response::plain(200, "OK", "");
            r.headers = vec![(
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(ct.as_bytes()),
            )];
            for (n, v) in extra {
                r.headers.push((
                    Bytes::from_static(n.as_bytes()),
                    Bytes::from_static(v.as_bytes()),
                ));
            }
            add_charset(&mut r, "utf-8");
            String::from_utf8_lossy(&r.headers[0].1).into_owned()
        };
        assert_eq!(typed("text/html", &[]), "text/html; charset=utf-8");
        assert_eq!(typed("TEXT/plain", &[]), "TEXT/plain; charset=utf-8");
        assert_eq!(
            typed("text/html; charset=koi8-r", &[]),
            "text/html; charset=koi8-r"
        );
        assert_eq!(typed("image/png", &[]), "image/png");
        assert_eq!(
            typed("text/html", &[("Content-Encoding", "gzip")]),
            "text/html"
        );
        let mut moved = Response::plain(301, "Moved Permanently", "");
        moved.headers = vec![(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/html"),
        )];
        add_charset(&mut moved, "utf-8");
        assert_eq!(
            &moved.headers[0].1[..],
            b"text/html",
            "301/302 keep their type"
        );
    }

    #[test]
    fn redirect_base_leaves_out_the_default_port() {
        assert_eq!(redirect_base("http", b"ex.com", Some(80)), b"http://ex.com");
        assert_eq!(
            redirect_base("http", b"ex.com", Some(8080)),
            b"http://ex.com:8080"
        );
        assert_eq!(
            redirect_base("https", b"ex.com", Some(443)),
            b"https://ex.com"
        );
    }
}
