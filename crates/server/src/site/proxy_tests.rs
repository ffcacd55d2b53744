//! The request building of `proxy.rs` against nginx's rules: the URI
//! mapping table, the header list, `proxy_redirect`.

use bytes::Bytes;
use portico_config::site::{ProxySettings, Template, TemplatePart, Variable};
use portico_proto::http1::Headers;

use super::*;

fn facts<'a>(pass_uri: Option<&'a str>, location: &'a str, uri: &'a str) -> UriFacts<'a> {
    UriFacts {
        pass_uri: pass_uri.map(str::as_bytes),
        dynamic: false,
        location: location.as_bytes(),
        valid_location: true,
        valid_unparsed: true,
        escape: false,
        uri: uri.as_bytes(),
        args: b"",
        unparsed: uri.as_bytes(),
    }
}

/// (proxy_pass URI part, location, $uri, $args, sent target, changes) →
/// the upstream target; each row is nginx's `create_request` result (the
/// rows with a client target were checked against nginx 1.22.1).
#[test]
fn upstream_uris_follow_nginx_create_request() {
    struct Row {
        pass: Option<&'static str>,
        location: &'static str,
        uri: &'static str,
        args: &'static str,
        unparsed: &'static str,
        /// (valid_location, valid_unparsed, escape)
        flags: (bool, bool, bool),
        want: &'static str,
    }
    let plain = (true, true, false);
    let rows = [
        // No URI part: the target as the client sent it, byte for byte.
        Row {
            pass: None,
            location: "/app/",
            uri: "/app/a b",
            args: "x=1",
            unparsed: "/app/a%20b?x=1",
            flags: (true, true, true),
            want: "/app/a%20b?x=1",
        },
        Row {
            pass: None,
            location: "/",
            uri: "/a/b",
            args: "",
            unparsed: "//a/./b",
            flags: plain,
            want: "//a/./b",
        },
        // A URI part replaces the location's prefix of the normalised URI.
        Row {
            pass: Some("/other/"),
            location: "/uri/",
            uri: "/uri/a/b",
            args: "q=1",
            unparsed: "/uri/a/b?q=1",
            flags: plain,
            want: "/other/a/b?q=1",
        },
        Row {
            pass: Some("/"),
            location: "/app/",
            uri: "/app/x",
            args: "",
            unparsed: "/app/x",
            flags: plain,
            want: "/x",
        },
        Row {
            pass: Some("/base"),
            location: "/app",
            uri: "/app/x",
            args: "",
            unparsed: "/app/x",
            flags: plain,
            want: "/base/x",
        },
        Row {
            pass: Some("/new/"),
            location: "/exact",
            uri: "/exact",
            args: "a=b",
            unparsed: "/exact?a=b",
            flags: plain,
            want: "/new/?a=b",
        },
        // Not quoted, not internal: the decoded URI goes as it is (merged slashes).
        Row {
            pass: Some("/b/"),
            location: "/a/",
            uri: "/a/x/y",
            args: "",
            unparsed: "/a//x/./y",
            flags: plain,
            want: "/b/x/y",
        },
        // Quoted (a % in the path): the rest is escaped back.
        Row {
            pass: Some("/b/"),
            location: "/a/",
            uri: "/a/x y\u{e9}?#%",
            args: "k=%20",
            unparsed: "/a/x%20y%C3%A9%3F%23%25?k=%20",
            flags: (true, true, true),
            want: "/b/x%20y%C3%A9%3F%23%25?k=%20",
        },
        Row {
            pass: Some("/b/"),
            location: "/a/",
            uri: "/a/<>\"\\^`{|}~!$&'()*+,;=:@[]",
            args: "",
            unparsed: "",
            flags: (true, true, true),
            want: "/b/%3C%3E%22%5C%5E%60%7B%7C%7D~!$&'()*+,;=:@[]",
        },
        // Rewritten (internal, no longer the client's): escaped, URI part kept.
        Row {
            pass: Some("/b/"),
            location: "/a/",
            uri: "/a/new path",
            args: "n=1",
            unparsed: "/a/old",
            flags: (true, false, true),
            want: "/b/new%20path?n=1",
        },
        Row {
            pass: None,
            location: "/a/",
            uri: "/a/new path",
            args: "n=1",
            unparsed: "/a/old",
            flags: (true, false, true),
            want: "/a/new%20path?n=1",
        },
        // rewrite ... break: the URI part is ignored, the whole URI goes.
        Row {
            pass: Some("/b/"),
            location: "/name/",
            uri: "/users",
            args: "name=x",
            unparsed: "/name/x",
            flags: (false, false, true),
            want: "/users?name=x",
        },
        // `rewrite ^ /s break` in `location /short/prefix/` (nginx 1.22.1).
        Row {
            pass: Some("/b/"),
            location: "/short/prefix/",
            uri: "/s",
            args: "",
            unparsed: "/short/prefix/x",
            flags: (false, false, true),
            want: "/s",
        },
        // A URI shorter than the prefix (internal, location still valid)
        // loses all of it, as nginx's ngx_min.
        Row {
            pass: Some("/b/"),
            location: "/long/prefix/",
            uri: "/l",
            args: "",
            unparsed: "/long/prefix/x",
            flags: (true, false, true),
            want: "/b/",
        },
    ];
    for row in rows {
        let (valid_location, valid_unparsed, escape) = row.flags;
        let f = UriFacts {
            args: row.args.as_bytes(),
            unparsed: row.unparsed.as_bytes(),
            valid_location,
            valid_unparsed,
            escape,
            ..facts(row.pass, row.location, row.uri)
        };
        assert_eq!(
            String::from_utf8_lossy(&upstream_uri(&f)),
            row.want,
            "{:?} {} {}",
            row.pass,
            row.location,
            row.uri
        );
    }
}

#[test]
fn a_proxy_pass_with_variables_sends_its_uri_as_evaluated() {
    let f = UriFacts {
        dynamic: true,
        args: b"a=1",
        ..facts(Some("/fixed path"), "/x/", "/x/y")
    };
    assert_eq!(upstream_uri(&f), b"/fixed path");
    let f = UriFacts {
        dynamic: true,
        ..facts(None, "/x/", "/x/y")
    };
    assert_eq!(upstream_uri(&f), b"/x/y");
}

fn client(list: &[(&str, &str)]) -> Headers {
    list.iter().copied().collect()
}

fn lines(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .map(|h| {
            format!(
                "{}: {}",
                String::from_utf8_lossy(h.name),
                String::from_utf8_lossy(h.value)
            )
        })
        .collect()
}

fn set(list: &[(&'static str, &str)]) -> Vec<(&'static str, Bytes)> {
    list.iter()
        .map(|(n, v)| (*n, Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

/// `request_headers` with the client's headers passed.
fn sent(set_list: &[(&'static str, &str)], from: &Headers, body: BodyOut) -> Vec<String> {
    lines(&request_headers(
        &set(set_list),
        &Bytes::from_static(b"app:8000"),
        from,
        true,
        body,
    ))
}

#[test]
fn set_headers_go_first_in_order_then_the_clients_minus_nginx_own() {
    // nginx 1.22.1 observed (reference §2.2, and the e2e pinned order):
    // the configured lines, its defaults (Host, Connection), the body
    // framing, then the client's own minus the ones it owns or set; the
    // other hop-by-hop fields (X-Secret named by Connection, Trailer,
    // Proxy-Connection) go on, as nginx sends them.
    let from = client(&[
        ("Host", "example.com:8080"),
        ("User-Agent", "curl/7.88.1"),
        ("Accept", "*/*"),
        ("Connection", "keep-alive, Upgrade, X-Secret"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "websocket"),
        ("X-Secret", "hop"),
        ("Trailer", "X-T"),
        ("Proxy-Connection", "keep-alive"),
        ("Expect", "100-continue"),
        ("Content-Length", "5"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Custom", "yes"),
    ]);
    let list = [
        ("X-Real-IP", "10.0.0.1"),
        ("Host", "127.0.0.1:19091"),
        ("Connection", "close"),
    ];
    assert_eq!(
        sent(&list, &from, BodyOut::Length(5)),
        [
            "X-Real-IP: 10.0.0.1",
            "Host: 127.0.0.1:19091",
            "Connection: close",
            "Content-Length: 5",
            "User-Agent: curl/7.88.1",
            "Accept: */*",
            "X-Secret: hop",
            "Trailer: X-T",
            "Proxy-Connection: keep-alive",
            "X-Forwarded-For: 1.2.3.4",
            "X-Custom: yes",
        ]
    );
}

#[test]
fn set_headers_override_and_empty_values_drop() {
    let from = client(&[
        ("Host", "example.com"),
        ("Accept-Encoding", "gzip"),
        ("X-Real-IP", "forged"),
        ("x-forwarded-for", "1.2.3.4"),
        ("Cookie", "a=b"),
    ]);
    let list = [
        ("Host", "example.com"),
        ("X-Real-IP", "10.0.0.1"),
        ("X-Forwarded-For", "1.2.3.4, 10.0.0.1"),
        ("Accept-Encoding", ""),
        ("Connection", ""),
    ];
    assert_eq!(
        sent(&list, &from, BodyOut::None),
        [
            "Host: example.com",
            "X-Real-IP: 10.0.0.1",
            "X-Forwarded-For: 1.2.3.4, 10.0.0.1",
            "Cookie: a=b",
        ]
    );
}

#[test]
fn host_is_proxy_host_unless_set_and_an_empty_one_is_not_sent() {
    assert_eq!(
        sent(&[], &Headers::new(), BodyOut::None),
        ["Host: app:8000"]
    );
    let from = client(&[("Host", "client.example")]);
    assert_eq!(
        sent(&[("Host", ""), ("X-A", "1")], &from, BodyOut::None),
        ["X-A: 1"]
    );
}

#[test]
fn body_framing_is_remade_and_client_headers_can_be_withheld() {
    let from = client(&[("Transfer-Encoding", "chunked"), ("X-A", "1")]);
    assert_eq!(
        sent(&[], &from, BodyOut::Chunked),
        ["Host: app:8000", "Transfer-Encoding: chunked", "X-A: 1"]
    );
    let withheld = request_headers(
        &[],
        &Bytes::from_static(b"h"),
        &from,
        false,
        BodyOut::Length(0),
    );
    assert_eq!(lines(&withheld), ["Host: h", "Content-Length: 0"]);
    // proxy_set_header Content-Length "" wins over the re-made one.
    assert_eq!(
        sent(
            &[("Content-Length", "")],
            &Headers::new(),
            BodyOut::Length(3)
        ),
        ["Host: app:8000"]
    );
}

#[test]
fn uri_escaping_matches_ngx_escape_uri() {
    let mut out = Vec::new();
    escape_uri(
        b"/a b\x01\x7f\xff%?#\"<>\\^`{|}~-._!$&'()*+,;=:@[]/",
        &mut out,
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "/a%20b%01%7F%FF%25%3F%23%22%3C%3E%5C%5E%60%7B%7C%7D~-._!$&'()*+,;=:@[]/"
    );
}

fn prefix(from: &str, to: &str) -> Redirect<'static> {
    Redirect::Prefix {
        from: from.as_bytes().to_vec(),
        to: to.as_bytes().to_vec(),
    }
}

#[test]
fn redirects_rewrite_the_first_matching_rule() {
    let rules = [
        prefix("http://app:8000/", "/"),
        prefix("http://other/", "/o/"),
    ];
    let cases: &[(&str, Option<&str>)] = &[
        ("http://app:8000/x?y=1", Some("/x?y=1")),
        ("http://app:8000/", Some("/")),
        ("http://other/z", Some("/o/z")),
        ("http://APP:8000/x", None),
        ("/relative", None),
        ("http://app:8000", None),
    ];
    for &(value, want) in cases {
        let got = rewrite_redirect(value.as_bytes(), 0, &rules, &eval);
        assert_eq!(
            got.as_deref().map(String::from_utf8_lossy),
            want.map(Into::into),
            "{value}"
        );
    }
}

/// Literal parts and `$N` captures (what the redirect tests need).
fn eval(t: &Template, caps: &Captures) -> Vec<u8> {
    let mut out = Vec::new();
    for part in &t.parts {
        match part {
            TemplatePart::Literal(text) => out.extend_from_slice(text.as_bytes()),
            TemplatePart::Var(Variable::Capture(n)) => {
                out.extend_from_slice(caps.get(*n).unwrap_or_default())
            }
            TemplatePart::Var(_) => {}
        }
    }
    out
}

#[test]
fn regex_redirects_replace_the_whole_value_with_captures() {
    let regex =
        regex::bytes::Regex::new("^http://[^/]+:(\\d+)/(.*)$").unwrap_or_else(|e| panic!("{e}"));
    let to = Template::parse("/port$1/$2").unwrap_or_default();
    let rules = [Redirect::Regex {
        regex: &regex,
        to: &to,
    }];
    assert_eq!(
        rewrite_redirect(b"http://app:81/a/b", 0, &rules, &eval).as_deref(),
        Some(&b"/port81/a/b"[..])
    );
    assert_eq!(rewrite_redirect(b"/x", 0, &rules, &eval), None);
}

#[test]
fn refresh_urls_are_rewritten_after_url_equals() {
    let value = b"5; URL=http://app:8000/next";
    let at = refresh_url_at(value);
    assert_eq!(at, Some(7));
    let rules = [prefix("http://app:8000/", "/")];
    assert_eq!(
        rewrite_redirect(value, at.unwrap_or_default(), &rules, &eval).as_deref(),
        Some(&b"5; URL=/next"[..])
    );
    assert_eq!(refresh_url_at(b"5"), None);
}

#[test]
fn hidden_headers_follow_nginx_defaults_and_settings() {
    let mut headers: Vec<(Bytes, Bytes)> = [
        "Date",
        "Server",
        "X-Accel-Redirect",
        "X-Pad",
        "X-Powered-By",
        "Content-Type",
    ]
    .iter()
    .map(|n| (Bytes::from_static(n.as_bytes()), Bytes::from_static(b"v")))
    .collect();
    let settings = ProxySettings {
        hide_headers: vec!["x-powered-by".into()],
        pass_headers: vec!["server".into()],
        ..ProxySettings::default()
    };
    hide_headers(&mut headers, &settings);
    let names: Vec<_> = headers
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names, ["Server", "Content-Type"]);
}

/// The head as the proxy crate writes one from a field list without a
/// body: the request line, every field but a framing one, the blank line.
fn written(line: [&str; 3], headers: &Headers) -> String {
    let mut out = format!("{} {} {}\r\n", line[0], line[1], line[2]);
    for h in headers {
        let name = String::from_utf8_lossy(h.name);
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        out.push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(h.value)));
    }
    out + "\r\n"
}

#[test]
fn a_bodiless_head_is_written_as_the_field_list_would_be() {
    let from = client(&[
        ("Host", "example.com"),
        ("User-Agent", "t/1"),
        ("Connection", "keep-alive, X-Secret"),
        ("X-Secret", "s"),
        ("Content-Length", "0"),
        ("Transfer-Encoding", "chunked"),
        ("Keep-Alive", "300"),
        ("X-Real-IP", "spoofed"),
        ("Accept", "*/*"),
    ]);
    let host = Bytes::from_static(b"app:8000");
    let sets: &[&[(&'static str, &str)]] = &[
        &[],
        &[("Host", "$host"), ("Connection", "")],
        &[("Connection", "close"), ("X-Real-IP", "10.0.0.1")],
        &[("Host", ""), ("Content-Length", "9"), ("X-A", "1")],
        &[("x-real-ip", "1"), ("HOST", "h"), ("host", "second")],
    ];
    for list in sets {
        for pass_client in [true, false] {
            let fields = request_headers(&set(list), &host, &from, pass_client, BodyOut::None);
            let line = ["GET", "/a?b=1", "HTTP/1.1"];
            let got = encode_bodiless_head(
                [b"GET", b"/a?b=1", b"HTTP/1.1"],
                &set(list),
                &host,
                &from,
                pass_client,
            );
            let want = written(line, &fields);
            assert_eq!(String::from_utf8_lossy(&got.bytes), want, "{list:?}");
            let want_host = fields
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(b"host"))
                .map(|h| h.value);
            assert_eq!(got.host.as_deref(), want_host, "{list:?}");
            let closes = list
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("connection") && *v == "close");
            assert_eq!(got.closes, closes, "{list:?}");
        }
    }
}
