//! One Python-free view of a request, whichever way it arrived: the rule
//! that maps a header name to its CGI variable (`User-Agent` →
//! `HTTP_USER_AGENT`), and the [`Request`] methods that read a header, the
//! percent-decoded path and the query the same way for an HTTP head and for
//! a uwsgi packet: the static files, the WSGI mount table, the environ and
//! the access log all read the same bytes.
//!
//! The decoded path is made where it is read, not kept: for a path without
//! `%` it is one `memchr` and borrows the raw path. Keeping it (a field
//! beside the head, or a `OnceLock`) made every request 16 bytes larger and
//! cost the hello app up to 300 instructions a request, mostly in malloc's
//! slow path, more than the few `memchr`s it saves (docs/design-notes.md §7).
//!
//! Everything that names a header by its `HTTP_*` variable (the environ,
//! the uwsgi vars `uwsgi_pass` sends, the access log's `%(var.HTTP_X)`,
//! nginx's `$http_x`, the headers read back from a uwsgi packet) goes
//! through the functions here; none allocates unless given a buffer.

use std::borrow::Cow;

use portico_proto::http1::RequestHead;
use portico_proto::percent::percent_decode;

use crate::handler::{Request, RequestSource};

/// The prefix of a header's CGI variable.
const HTTP_PREFIX: &[u8] = b"HTTP_";

/// A header name byte as it appears in the CGI variable: upper-case, `-` as `_`.
fn cgi_byte(b: u8) -> u8 {
    match b {
        b'-' => b'_',
        b => b.to_ascii_uppercase(),
    }
}

/// Append the CGI variable of header `name` to `out`: `HTTP_` + the name
/// upper-cased, `-` as `_` (`X-Real-IP` → `HTTP_X_REAL_IP`).
pub fn http_var_name(name: &[u8], out: &mut Vec<u8>) {
    out.reserve(HTTP_PREFIX.len() + name.len());
    out.extend_from_slice(HTTP_PREFIX);
    out.extend(name.iter().map(|&b| cgi_byte(b)));
}

/// Whether header `name` has a CGI variable: a name holding `_` has none,
/// since it would alias the same name with `-` (nginx's
/// `underscores_in_headers off`, and what the WSGI environ has always done).
pub fn has_http_var(name: &[u8]) -> bool {
    !name.contains(&b'_')
}

/// Whether `key` is exactly the CGI variable of header `name`, as
/// [`http_var_name`] would write it (no allocation).
pub fn is_http_var_of(key: &[u8], name: &[u8]) -> bool {
    key.strip_prefix(HTTP_PREFIX).is_some_and(|rest| {
        rest.len() == name.len() && rest.iter().zip(name).all(|(&k, &n)| k == cgi_byte(n))
    })
}

/// Whether header `name` is the one a variable suffix names, loosely:
/// case-insensitive, `-` and `_` alike. `suffix` is what follows `HTTP_`
/// in a log's `%(var.HTTP_X_ID)` or `http_` in nginx's `$http_x_id`.
pub fn header_matches_var(name: &[u8], suffix: &[u8]) -> bool {
    name.len() == suffix.len()
        && name.iter().zip(suffix).all(|(&n, &s)| {
            let n = if n == b'-' { b'_' } else { n };
            n.eq_ignore_ascii_case(&s)
        })
}

/// The header name a CGI variable stands for, appended to `out`: the part
/// after `HTTP_` (or the whole key, for `CONTENT_TYPE`), lower-case, `_`
/// as `-` (`HTTP_USER_AGENT` → `user-agent`).
pub fn header_name_of_var(suffix: &[u8], out: &mut Vec<u8>) {
    out.reserve(suffix.len());
    out.extend(suffix.iter().map(|&b| match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }));
}

/// An HTTP head's `PATH_INFO`: its path percent-decoded, borrowed when
/// there is nothing to decode.
pub fn path_info(head: &RequestHead) -> Cow<'_, [u8]> {
    percent_decode(&head.path)
}

impl RequestSource {
    /// A request header by name (case-insensitive): the first of that name
    /// in an HTTP head, or a uwsgi packet's `HTTP_*` var for it (the last,
    /// as [`portico_proto::uwsgi::UwsgiPacket::var`] reads vars).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        match self {
            RequestSource::Http(head) => head.headers.first(name),
            RequestSource::Uwsgi(packet) => {
                let mut found = None;
                for (key, value) in packet.vars() {
                    if is_http_var_of(key, name) {
                        found = Some(value);
                    }
                }
                found
            }
        }
    }

    /// The percent-decoded path (`PATH_INFO`): an HTTP head's, decoded
    /// (borrowed when it has no `%`); a uwsgi packet's PATH_INFO as the
    /// front server sent it.
    pub fn path(&self) -> Cow<'_, [u8]> {
        match self {
            RequestSource::Http(head) => path_info(head),
            RequestSource::Uwsgi(p) => Cow::Borrowed(p.var(b"PATH_INFO").unwrap_or_default()),
        }
    }

    /// The path as sent, not decoded (PATH_INFO for uwsgi).
    pub fn raw_path(&self) -> &[u8] {
        match self {
            RequestSource::Http(head) => &head.path,
            RequestSource::Uwsgi(p) => p.var(b"PATH_INFO").unwrap_or_default(),
        }
    }

    /// The query string, without `?` (QUERY_STRING for uwsgi).
    pub fn query(&self) -> &[u8] {
        match self {
            RequestSource::Http(head) => &head.query,
            RequestSource::Uwsgi(p) => p.var(b"QUERY_STRING").unwrap_or_default(),
        }
    }
}

/// The same view, from the request itself.
impl Request {
    /// See [`RequestSource::header`].
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.source.header(name)
    }

    /// See [`RequestSource::path`].
    pub fn path(&self) -> Cow<'_, [u8]> {
        self.source.path()
    }

    /// See [`RequestSource::raw_path`].
    pub fn raw_path(&self) -> &[u8] {
        self.source.raw_path()
    }

    /// See [`RequestSource::query`].
    pub fn query(&self) -> &[u8] {
        self.source.query()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_map_to_upper_case_http_vars_with_underscores() {
        for (name, want) in [
            (&b"Host"[..], &b"HTTP_HOST"[..]),
            (b"user-agent", b"HTTP_USER_AGENT"),
            (b"X-Real-IP", b"HTTP_X_REAL_IP"),
            (b"", b"HTTP_"),
            (b"\xe9-a", b"HTTP_\xe9_A"),
        ] {
            let mut out = b"kept".to_vec();
            http_var_name(name, &mut out);
            assert_eq!(&out[4..], want, "{name:?}");
            assert!(out.starts_with(b"kept"));
            assert!(is_http_var_of(want, name), "{name:?}");
        }
    }

    #[test]
    fn a_var_is_the_http_var_of_a_header_only_when_spelled_exactly() {
        assert!(is_http_var_of(b"HTTP_IF_NONE_MATCH", b"if-none-match"));
        assert!(!is_http_var_of(b"HTTP_if_none_match", b"if-none-match"));
        assert!(!is_http_var_of(b"HTTP_IF_NONE_MATC", b"if-none-match"));
        assert!(!is_http_var_of(b"IF_NONE_MATCH", b"if-none-match"));
        assert!(!is_http_var_of(b"HTTP_HOSTS", b"host"));
    }

    #[test]
    fn names_with_underscores_have_no_http_var() {
        assert!(has_http_var(b"X-Id"));
        assert!(!has_http_var(b"X_Id"));
    }

    #[test]
    fn variable_suffixes_match_headers_loosely() {
        assert!(header_matches_var(b"X-Request-Id", b"X_REQUEST_ID"));
        assert!(header_matches_var(b"X-Request-Id", b"x_request_id"));
        assert!(header_matches_var(b"x_request_id", b"X_REQUEST_ID"));
        assert!(!header_matches_var(b"X-Request-Id", b"X_REQUEST"));
        assert!(!header_matches_var(b"X-Request-Id", b"X-REQUEST-ID"));
    }

    #[test]
    fn vars_map_back_to_lower_case_header_names() {
        let mut out = Vec::new();
        header_name_of_var(b"USER_AGENT", &mut out);
        assert_eq!(out, b"user-agent");
    }

    fn request(raw: &[u8]) -> Request {
        Request::from_http_bytes(raw, None, None).expect("parses")
    }

    #[test]
    fn the_decoded_path_borrows_the_raw_path_when_nothing_is_escaped() {
        let r = request(b"GET /a%20b?q=%20 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(&*r.path(), b"/a b");
        assert_eq!(r.raw_path(), b"/a%20b");
        assert_eq!(r.query(), b"q=%20");
        let plain = request(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(plain.path(), Cow::Borrowed(p) if std::ptr::eq(p, plain.raw_path())));
    }

    #[test]
    fn headers_read_alike_from_a_head_and_from_a_uwsgi_packet() {
        let r = request(b"GET / HTTP/1.1\r\nHost: x\r\nIf-Match: a\r\nIf-Match: b\r\n\r\n");
        assert_eq!(r.header("if-match"), Some(&b"a"[..]));
        assert_eq!(r.header("IF-MATCH"), Some(&b"a"[..]));
        assert_eq!(r.header("range"), None);
        let mut r = r;
        r.source = RequestSource::Uwsgi(portico_proto::uwsgi::UwsgiPacket::from_vars(
            0,
            0,
            vec![
                ("HTTP_IF_MATCH".into(), "a".into()),
                ("HTTP_IF_MATCH".into(), "b".into()),
                ("PATH_INFO".into(), "/p q".into()),
            ],
            0,
        ));
        assert_eq!(r.header("if-match"), Some(&b"b"[..]));
        assert_eq!(r.header("If-Match"), Some(&b"b"[..]));
        assert_eq!(&*r.path(), b"/p q");
    }
}
