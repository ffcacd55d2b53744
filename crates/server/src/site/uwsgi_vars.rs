//! The vars of the uwsgi packet `uwsgi_pass` sends, as nginx's uwsgi
//! module builds them (`ngx_http_uwsgi_create_request`): every
//! `uwsgi_param` in configuration order with its value evaluated (an
//! empty one skipped only under `if_not_empty`, duplicates kept), then
//! every client header as `HTTP_` + the name upper-cased with `-` → `_`,
//! unless a `uwsgi_param` of that `HTTP_` name exists. Headers whose name
//! holds `_` are dropped (nginx's `underscores_in_headers off` ignores
//! them). Repeated headers are joined into one var with `", "` (`"; "` for
//! Cookie), as nginx ≥ 1.23.0 does (1.22 sent one var each; uWSGI kept the
//! last, so the join loses nothing an app saw).

use bytes::Bytes;
use portico_config::site::{Template, UwsgiParam};
use portico_proto::http1::{Header, Headers};
use portico_proto::uwsgi::UwsgiPacket;

use crate::request_view::{has_http_var, http_var_name, is_http_var_of};

/// Build the packet for `params` and the client's `headers` (in order);
/// `eval` gives a template its value for this request.
pub(crate) fn build_packet(
    params: &[UwsgiParam],
    headers: &Headers,
    eval: &mut dyn FnMut(&Template) -> Vec<u8>,
) -> UwsgiPacket {
    let mut vars: Vec<(Bytes, Bytes)> = Vec::with_capacity(params.len() + headers.len());
    for param in params {
        let value = eval(&param.value);
        if value.is_empty() && param.if_not_empty {
            continue;
        }
        vars.push((
            Bytes::copy_from_slice(param.key.as_bytes()),
            Bytes::from(value),
        ));
    }
    let first_header = vars.len();
    for (i, Header { name, value }) in headers.iter().enumerate() {
        if !has_http_var(name) {
            continue;
        }
        if params
            .iter()
            .any(|p| is_http_var_of(p.key.as_bytes(), name))
        {
            continue;
        }
        if let Some((_, joined)) = vars[first_header..]
            .iter_mut()
            .find(|(k, _)| is_http_var_of(k, name))
        {
            let separator: &[u8] = if is_http_var_of(b"HTTP_COOKIE", name) {
                b"; "
            } else {
                b", "
            };
            let mut both = Vec::with_capacity(joined.len() + separator.len() + value.len());
            both.extend_from_slice(joined);
            both.extend_from_slice(separator);
            both.extend_from_slice(value);
            *joined = Bytes::from(both);
            continue;
        }
        let mut key = Vec::new();
        http_var_name(name, &mut key);
        // A parsed field's value is a slice of the head, not a copy.
        let value = headers.value_bytes(i).unwrap_or_default();
        vars.push((Bytes::from(key), value));
    }
    let datasize = vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
    UwsgiPacket::from_vars(0, 0, vars, datasize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(key: &str, value: &str, if_not_empty: bool) -> UwsgiParam {
        UwsgiParam {
            key: key.into(),
            value: Template::literal(value),
            if_not_empty,
        }
    }

    fn h<'a>(name: &'a str, value: &'a str) -> (&'a str, &'a str) {
        (name, value)
    }

    fn vars(p: &UwsgiPacket) -> Vec<(String, String)> {
        p.vars()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    fn build(params: &[UwsgiParam], headers: &[(&str, &str)]) -> UwsgiPacket {
        let mut eval = |t: &Template| t.as_literal().unwrap_or_default().into_bytes();
        let headers: Headers = headers.iter().copied().collect();
        build_packet(params, &headers, &mut eval)
    }

    #[test]
    fn params_in_order_then_headers() {
        let p = build(
            &[
                param("QUERY_STRING", "", false),
                param("CONTENT_TYPE", "", true),
                param("REQUEST_METHOD", "GET", false),
                param("REQUEST_METHOD", "GET", false),
            ],
            &[
                h("Host", "ex.com"),
                h("User-Agent", "curl"),
                h("Content-Type", "a/b"),
            ],
        );
        let want = [
            ("QUERY_STRING", ""),
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_METHOD", "GET"),
            ("HTTP_HOST", "ex.com"),
            ("HTTP_USER_AGENT", "curl"),
            ("HTTP_CONTENT_TYPE", "a/b"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(vars(&p), want);
        let size: usize = want.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
        assert_eq!(p.datasize, size);
    }

    #[test]
    fn a_param_of_the_same_http_name_replaces_the_header() {
        let p = build(
            &[param("HTTP_HOST", "fixed", false)],
            &[h("host", "client")],
        );
        assert_eq!(vars(&p), vec![("HTTP_HOST".into(), "fixed".into())]);
    }

    #[test]
    fn repeated_headers_are_joined_and_underscored_ones_dropped() {
        let p = build(
            &[],
            &[
                h("Accept", "a"),
                h("Cookie", "x=1"),
                h("X_Bad", "no"),
                h("accept", "b"),
                h("Cookie", "y=2"),
            ],
        );
        assert_eq!(
            vars(&p),
            vec![
                ("HTTP_ACCEPT".into(), "a, b".into()),
                ("HTTP_COOKIE".into(), "x=1; y=2".into()),
            ]
        );
    }
}
