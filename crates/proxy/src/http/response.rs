//! Which upstream response fields reach the client (nginx's proxy module):
//! nginx's default hidden set (`Date`, `Server`, `X-Pad`, `X-Accel-*`) does
//! not unless `proxy_pass_header` names it; `proxy_hide_header` adds names.
//! `Content-Length` stays: the server frames the client's response from it,
//! or chunks when there is none. The hop-by-hop fields (`Connection`,
//! `Transfer-Encoding`, ... and the names `Connection` lists) are left for
//! the server's writer, which drops them from every response
//! (`portico_server`'s `write.rs`, the one place for every handler).

use bytes::Bytes;
use portico_config::site::ProxySettings;

/// nginx's `ngx_http_proxy_hide_headers[]`: its own Date/Server replace the
/// upstream's, and the X-Accel-* controls are for nginx, not the client.
pub const DEFAULT_HIDDEN: &[&str] = &[
    "date",
    "server",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
];

/// The names a location hides (lower case).
#[derive(Debug, Clone, Default)]
pub struct HeaderFilter {
    hidden: Vec<Vec<u8>>,
    /// Bit `n` (`n` < 63): some hidden name is `n` bytes long; bit 63: one
    /// is 63 or longer. Most fields of an answer (`Content-Type`,
    /// `Content-Length`) are passed on this test alone, with no name
    /// compared.
    lengths: u64,
}

fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

impl HeaderFilter {
    /// nginx's defaults less `proxy_pass_header`, plus `proxy_hide_header`.
    pub fn new(settings: &ProxySettings) -> HeaderFilter {
        let passed = |name: &str| {
            settings
                .pass_headers
                .iter()
                .any(|p| p.eq_ignore_ascii_case(name))
        };
        let mut hidden: Vec<Vec<u8>> = DEFAULT_HIDDEN
            .iter()
            .filter(|name| !passed(name))
            .map(|name| name.as_bytes().to_vec())
            .collect();
        hidden.extend(
            settings
                .hide_headers
                .iter()
                .map(|name| name.to_ascii_lowercase().into_bytes()),
        );
        let lengths = hidden.iter().fold(0, |bits, n| bits | length_bit(n.len()));
        HeaderFilter { hidden, lengths }
    }

    /// The fields to pass on, in order.
    pub fn apply(&self, headers: &[(Bytes, Bytes)]) -> Vec<(Bytes, Bytes)> {
        headers
            .iter()
            .filter(|(name, _)| !self.hides(name))
            .cloned()
            .collect()
    }

    /// [`HeaderFilter::apply`] on fields given away: each name and value
    /// moves, no reference count goes up and down, and the list keeps its
    /// allocation.
    pub fn take(&self, mut headers: Vec<(Bytes, Bytes)>) -> Vec<(Bytes, Bytes)> {
        headers.retain(|(name, _)| !self.hides(name));
        headers
    }

    fn hides(&self, name: &[u8]) -> bool {
        self.lengths & length_bit(name.len()) != 0
            && self.hidden.iter().any(|n| name.eq_ignore_ascii_case(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&'static str, &'static str)]) -> Vec<(Bytes, Bytes)> {
        list.iter()
            .map(|(n, v)| {
                (
                    Bytes::from_static(n.as_bytes()),
                    Bytes::from_static(v.as_bytes()),
                )
            })
            .collect()
    }

    fn names(filter: &HeaderFilter, list: &[(&'static str, &'static str)]) -> Vec<String> {
        let applied = filter.apply(&fields(list));
        assert_eq!(applied, filter.take(fields(list)), "take agrees with apply");
        applied
            .into_iter()
            .map(|(n, _)| String::from_utf8_lossy(&n).into_owned())
            .collect()
    }

    #[test]
    fn hop_by_hop_fields_are_left_for_the_writer() {
        let filter = HeaderFilter::new(&ProxySettings::default());
        let got = names(
            &filter,
            &[
                ("Content-Type", "text/plain"),
                ("Connection", "keep-alive, X-Secret"),
                ("Keep-Alive", "timeout=5"),
                ("x-secret", "1"),
                ("Transfer-Encoding", "chunked"),
                ("TE", "trailers"),
                ("Trailer", "X"),
                ("Upgrade", "h2c"),
                ("Proxy-Authenticate", "Basic"),
                ("Proxy-Connection", "close"),
                ("Content-Length", "5"),
                ("Set-Cookie", "a=1"),
            ],
        );
        assert_eq!(got.len(), 12, "the writer drops hop-by-hop fields: {got:?}");
    }

    #[test]
    fn nginx_hidden_fields_pass_only_with_proxy_pass_header_and_hide_adds_more() {
        let list = [
            ("Date", "x"),
            ("Server", "gunicorn"),
            ("X-Pad", "avoid browser bug"),
            ("X-Accel-Redirect", "/internal"),
            ("X-Powered-By", "PHP"),
            ("ETag", "\"1\""),
        ];
        let defaults = HeaderFilter::new(&ProxySettings::default());
        assert_eq!(names(&defaults, &list), ["X-Powered-By", "ETag"]);
        let settings = ProxySettings {
            pass_headers: vec!["server".into()],
            hide_headers: vec!["x-powered-by".into()],
            ..ProxySettings::default()
        };
        assert_eq!(
            names(&HeaderFilter::new(&settings), &list),
            ["Server", "ETag"]
        );
    }

    #[test]
    fn long_hidden_names_are_compared_whatever_their_length() {
        let long = "x-".repeat(40);
        let settings = ProxySettings {
            hide_headers: vec![long.clone(), "X-Ab".into()],
            ..ProxySettings::default()
        };
        let filter = HeaderFilter::new(&settings);
        let other = "y-".repeat(40);
        let upper = long.to_ascii_uppercase();
        let list: Vec<(&'static str, &'static str)> = vec![
            (Box::leak(upper.into_boxed_str()), "1"),
            (Box::leak(other.into_boxed_str()), "2"),
            ("x-ab", "3"),
            ("x-abc", "4"),
        ];
        let got = names(&filter, &list);
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with("y-") && got[1] == "x-abc", "{got:?}");
    }
}
