//! Lookups in request bytes that several variables share, each as nginx
//! does it: a header by its variable name (`$http_x_real_ip`), a cookie
//! (`$cookie_NAME`), an argument (`$arg_NAME`), the user of a Basic
//! `Authorization` (`$remote_user`). Nothing is decoded that nginx keeps raw.

use portico_proto::http1::{Header, Headers};

use crate::request_view::{has_http_var, header_matches_var};

/// Whether nginx keeps a request header: with `underscores_in_headers off`
/// and `ignore_invalid_headers on` (the defaults) a name with `_` is
/// dropped, which is the rule for having an `HTTP_*` variable.
fn header_kept(header: &Header<'_>) -> bool {
    has_http_var(header.name)
}

/// `$http_<var>`: every header of that name, joined with `", "` (nginx
/// 1.23+; `$http_cookie` joins with `"; "`). `false` when there is none.
pub(crate) fn append_header(headers: &Headers, var: &str, out: &mut Vec<u8>) -> bool {
    let sep: &[u8] = if var.eq_ignore_ascii_case("cookie") {
        b"; "
    } else {
        b", "
    };
    let mut found = false;
    for header in headers
        .iter()
        .filter(|h| header_kept(h) && header_matches_var(h.name, var.as_bytes()))
    {
        if found {
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(header.value);
        found = true;
    }
    found
}

/// The first header named `name` (case-insensitive), as sent.
pub(crate) fn first_header<'h>(headers: &'h Headers, name: &str) -> Option<&'h [u8]> {
    // A field of this name has its underscores: kept exactly when the name
    // is; fields of another length are passed over unread.
    if !has_http_var(name.as_bytes()) {
        return None;
    }
    headers.first(name.as_bytes())
}

/// `$cookie_NAME` (`ngx_http_parse_multi_header_lines`): in the `Cookie`
/// headers, the first `NAME=value` (name case-insensitive, spaces allowed
/// around `=`, pairs split at `;` or `,`); the value runs to the next `;`.
pub(crate) fn cookie<'h>(headers: &'h Headers, name: &str) -> Option<&'h [u8]> {
    let name = name.as_bytes();
    for header in headers
        .iter()
        .filter(|h| header_kept(h) && h.name.eq_ignore_ascii_case(b"cookie"))
    {
        let value = header.value;
        let mut at = 0;
        while at < value.len() {
            let rest = &value[at..];
            if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
                let after = skip_spaces(&rest[name.len()..]);
                if let Some(after) = after.strip_prefix(b"=") {
                    let after = skip_spaces(after);
                    let end = after.iter().position(|&b| b == b';').unwrap_or(after.len());
                    return Some(&after[..end]);
                }
            }
            // Skip to after the next `;` or `,`, then past spaces.
            let next = rest
                .iter()
                .position(|&b| b == b';' || b == b',')
                .map_or(value.len(), |i| at + i + 1);
            at = value.len() - skip_spaces(&value[next..]).len();
        }
    }
    None
}

fn skip_spaces(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|&&b| b == b' ').count();
    &bytes[n..]
}

/// `$arg_NAME` (`ngx_http_arg`): the raw value of the first `NAME=` that
/// starts the args or follows a `&`, name compared case-insensitively.
pub(crate) fn arg<'a>(args: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let name = name.as_bytes();
    if name.is_empty() {
        return None;
    }
    args.split(|&b| b == b'&').find_map(|pair| {
        let value = pair.get(name.len()..)?.strip_prefix(b"=")?;
        pair[..name.len()]
            .eq_ignore_ascii_case(name)
            .then_some(value)
    })
}

/// `$remote_user`: the user of an `Authorization: Basic` header (before
/// the first `:` of the decoded credentials); `None` if absent or invalid.
pub(crate) fn basic_user(headers: &Headers) -> Option<Vec<u8>> {
    let value = first_header(headers, "authorization")?;
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let encoded = skip_spaces(&value[6..]);
    let mut decoded = base64_decode(encoded)?;
    let end = decoded.iter().position(|&b| b == b':')?;
    if end == 0 {
        return None;
    }
    decoded.truncate(end);
    Some(decoded)
}

/// Standard base64 with `=` padding optional; `None` on a stray byte.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in text {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Headers {
        list.iter().copied().collect()
    }

    #[test]
    fn headers_are_joined_and_names_with_underscores_dropped() {
        let h = headers(&[
            ("X-Foo", "one"),
            ("x-foo", "two"),
            ("X_Foo", "under"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ]);
        let get = |var: &str| {
            let mut out = Vec::new();
            append_header(&h, var, &mut out).then_some(String::from_utf8_lossy(&out).into_owned())
        };
        assert_eq!(get("x_foo").as_deref(), Some("one, two"));
        assert_eq!(get("cookie").as_deref(), Some("a=1; b=2"));
        assert_eq!(get("x_bar"), None);
    }

    #[test]
    fn cookies_are_found_as_nginx_finds_them() {
        // nginx 1.22 answered `$cookie_Sid` with "v1 " for these headers.
        let h = headers(&[("Cookie", "a=1; SID = v1 ;x=2"), ("Cookie", "sid=v2")]);
        let cases: &[(&str, Option<&str>)] = &[
            ("Sid", Some("v1 ")),
            ("a", Some("1")),
            ("x", Some("2")),
            ("si", None),
            ("nope", None),
        ];
        for &(name, want) in cases {
            assert_eq!(cookie(&h, name), want.map(str::as_bytes), "{name}");
        }
        let h = headers(&[("Cookie", "k=1, m=2")]);
        assert_eq!(cookie(&h, "m"), Some(&b"2"[..]), "a comma splits too");
    }

    #[test]
    fn args_are_found_raw_and_case_insensitively() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("q=1&Q=2", "Q", Some("1")),
            ("a&a=1", "a", Some("1")),
            ("xa=1&a=%20", "a", Some("%20")),
            ("a=", "a", Some("")),
            ("b=a=1", "a", None),
            ("", "a", None),
            ("a=1", "", None),
        ];
        for &(args, name, want) in cases {
            assert_eq!(
                arg(args.as_bytes(), name),
                want.map(str::as_bytes),
                "{args} {name}"
            );
        }
    }

    #[test]
    fn basic_auth_gives_the_user() {
        let cases: &[(&str, Option<&str>)] = &[
            ("basic dXNlcjpwYXNz", Some("user")),
            ("Basic dXNlcjpwYXNz", Some("user")),
            ("Bearer dXNlcjpwYXNz", None),
            ("Basic !!!", None),
            ("Basic dXNlcg==", None),
            ("Basic OnBhc3M=", None),
        ];
        for &(value, want) in cases {
            let h = headers(&[("Authorization", value)]);
            assert_eq!(
                basic_user(&h).as_deref(),
                want.map(str::as_bytes),
                "{value}"
            );
        }
    }
}
