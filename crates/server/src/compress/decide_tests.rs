//! The decision rules, table by table: which answers qualify, which
//! requests get a coding, `gzip_proxied` on requests with `Via`, and the
//! header rewriting of [`super::apply`].

use bytes::Bytes;
use portico_config::site::{CompressSettings, CompressTypes, GzipProxied, MinHttpVersion, Pattern};

use super::decide::{Coding, RequestFacts, ResponseView, decide, http_version};
use crate::handler::{Response, ResponseBody, ResponseMeta};

fn gzip_on() -> CompressSettings {
    CompressSettings {
        gzip: true,
        gzip_types: CompressTypes::from_values(["application/json", "text/plain"]),
        ..CompressSettings::default()
    }
}

fn h(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
    pairs
        .iter()
        .map(|(n, v)| {
            (
                Bytes::copy_from_slice(n.as_bytes()),
                Bytes::copy_from_slice(v.as_bytes()),
            )
        })
        .collect()
}

fn client(ae: &'static str) -> RequestFacts<'static> {
    RequestFacts {
        accept_encoding: Some(ae.as_bytes()),
        version: 1001,
        ..RequestFacts::default()
    }
}

const NOW: i64 = 1_800_000_000;

fn coding(
    status: u16,
    headers: &[(&str, &str)],
    length: Option<u64>,
    request: &RequestFacts<'_>,
    settings: &CompressSettings,
) -> (Option<Coding>, bool) {
    let headers = h(headers);
    let d = decide(
        &ResponseView {
            status,
            headers: &headers,
            length,
        },
        request,
        settings,
        NOW,
    );
    (d.coding, d.vary)
}

#[test]
fn answers_qualify_as_nginx_gzip_filter_decides() {
    let s = gzip_on();
    let html = ("Content-Type", "text/html");
    let gz = Some(Coding::Gzip);
    type Case<'a> = (
        u16,
        &'a [(&'a str, &'a str)],
        Option<u64>,
        (Option<Coding>, bool),
    );
    let cases: &[Case] = &[
        (200, &[html], Some(100), (gz, true)),
        (200, &[html], None, (gz, true)),
        (404, &[html], Some(100), (gz, true)),
        (403, &[html], Some(100), (gz, true)),
        (500, &[html], Some(100), (None, false)),
        (206, &[html], Some(100), (None, false)),
        (204, &[html], Some(0), (None, false)),
        (304, &[html], Some(0), (None, false)),
        (301, &[html], Some(100), (None, false)),
        // gzip_min_length 20: only a known length below it refuses.
        (200, &[html], Some(19), (None, false)),
        (200, &[html], Some(20), (gz, true)),
        (200, &[html], Some(0), (None, false)),
        // Already encoded (an empty Content-Encoding does not count).
        (
            200,
            &[html, ("Content-Encoding", "gzip")],
            Some(100),
            (None, false),
        ),
        (
            200,
            &[html, ("Content-Encoding", "")],
            Some(100),
            (gz, true),
        ),
        // Types: text/html always, the list, a charset parameter cut.
        (
            200,
            &[("Content-Type", "application/json")],
            Some(100),
            (gz, true),
        ),
        (
            200,
            &[("Content-Type", "Text/Plain; charset=utf-8")],
            Some(100),
            (gz, true),
        ),
        (
            200,
            &[("Content-Type", "text/plain;charset=utf-8")],
            Some(100),
            (gz, true),
        ),
        // nginx cuts the type only before a charset parameter.
        (
            200,
            &[("Content-Type", "text/plain; format=flowed")],
            Some(100),
            (None, false),
        ),
        (
            200,
            &[("Content-Type", "image/png")],
            Some(100),
            (None, false),
        ),
        (200, &[], Some(100), (None, false)),
    ];
    for (status, headers, length, want) in cases {
        let got = coding(*status, headers, *length, &client("gzip"), &s);
        assert_eq!(got, *want, "{status} {headers:?} {length:?}");
    }
}

#[test]
fn star_types_take_answers_without_a_content_type() {
    let s = CompressSettings {
        gzip: true,
        gzip_types: CompressTypes::Any,
        ..CompressSettings::default()
    };
    let got = coding(200, &[], Some(100), &client("gzip"), &s);
    assert_eq!(got, (Some(Coding::Gzip), true));
}

#[test]
fn requests_get_gzip_by_accept_encoding_version_and_agent() {
    let mut s = gzip_on();
    s.gzip_disable_msie6 = true;
    s.gzip_disable = vec![Pattern::new("^curl/7", true).unwrap_or_else(|e| panic!("{e}"))];
    let html = [("Content-Type", "text/html")];
    let cases: &[(Option<&str>, u32, Option<&str>, bool)] = &[
        (Some("gzip"), 1001, None, true),
        (Some("gzip;q=0"), 1001, None, false),
        (Some("identity"), 1001, None, false),
        (None, 1001, None, false),
        (Some("gzip"), 1000, None, false),
        (Some("gzip"), 2000, None, true),
        (Some("gzip"), 1001, Some("CURL/7.88"), false),
        (Some("gzip"), 1001, Some("curl/8.0"), true),
        (
            Some("gzip"),
            1001,
            Some("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"),
            false,
        ),
    ];
    for (ae, version, ua, want) in cases {
        let request = RequestFacts {
            accept_encoding: ae.map(str::as_bytes),
            user_agent: ua.map(str::as_bytes),
            version: *version,
            ..RequestFacts::default()
        };
        let (got, vary) = coding(200, &html, Some(100), &request, &s);
        assert_eq!(got.is_some(), *want, "{ae:?} {version} {ua:?}");
        assert!(vary, "a qualifying answer varies whoever asks");
    }
    s.gzip_http_version = MinHttpVersion::Http10;
    let old = RequestFacts {
        version: 1000,
        ..client("gzip")
    };
    assert!(coding(200, &html, Some(100), &old, &s).0.is_some());
}

#[test]
fn brotli_is_preferred_when_both_are_accepted() {
    let s = CompressSettings {
        brotli: true,
        ..gzip_on()
    };
    let html = [("Content-Type", "text/html")];
    let cases: &[(&str, Option<Coding>)] = &[
        ("gzip, deflate, br", Some(Coding::Brotli)),
        ("br;q=0.1, gzip;q=1", Some(Coding::Brotli)),
        ("br;q=0, gzip", Some(Coding::Gzip)),
        ("br", Some(Coding::Brotli)),
        ("gzip", Some(Coding::Gzip)),
        ("br;q=0, gzip;q=0", None),
        ("deflate", None),
    ];
    for (ae, want) in cases {
        assert_eq!(
            coding(200, &html, Some(100), &client(ae), &s).0,
            *want,
            "{ae}"
        );
    }
    // brotli off: gzip only.
    assert_eq!(
        coding(200, &html, Some(100), &client("br"), &gzip_on()).0,
        None
    );
}

#[test]
fn proxied_requests_follow_gzip_proxied() {
    let html = ("Content-Type", "text/html");
    let via = RequestFacts {
        via: true,
        ..client("gzip")
    };
    let past = ("Expires", "Thu, 01 Jan 1970 00:00:01 GMT");
    let future = ("Expires", "Thu, 31 Dec 2037 23:55:55 GMT");
    let p = GzipProxied::keyword;
    let bits =
        |words: &[&str]| GzipProxied(words.iter().filter_map(|w| p(w)).fold(0, |a, b| a | b));
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], bool);
    let cases: &[Case] = &[
        (&["off"], &[html], false),
        (&["any"], &[html], true),
        (&["expired"], &[html, past], true),
        (&["expired"], &[html, future], false),
        (&["no-cache"], &[html, past], false),
        (
            &["no-cache"],
            &[html, ("Cache-Control", "private, no-cache")],
            true,
        ),
        (&["no-store"], &[html, ("Cache-Control", "no-cache")], false),
        (
            &["private"],
            &[html, ("Cache-Control", "max-age=0, private")],
            true,
        ),
        (&["no_last_modified"], &[html], true),
        (
            &["no_last_modified"],
            &[html, ("Last-Modified", "Thu, 01 Jan 1970 00:00:01 GMT")],
            false,
        ),
        (&["no_etag"], &[html, ("ETag", "\"x\"")], false),
        (&["no_etag"], &[html], true),
        (&["auth"], &[html], true),
    ];
    for (words, headers, want) in cases {
        let s = CompressSettings {
            gzip_proxied: bits(words),
            ..gzip_on()
        };
        let got = coding(200, headers, Some(100), &via, &s).0.is_some();
        assert_eq!(got, *want, "{words:?} {headers:?}");
    }
    // A file's Last-Modified is a time to nginx until it is written: the
    // test does not see it.
    let own = RequestFacts {
        own_answer: true,
        ..via
    };
    let nolm = CompressSettings {
        gzip_proxied: bits(&["no_last_modified"]),
        ..gzip_on()
    };
    let lm = [html, ("Last-Modified", "Thu, 01 Jan 1970 00:00:01 GMT")];
    assert!(coding(200, &lm, Some(100), &own, &nolm).0.is_some());
    assert!(coding(200, &lm, Some(100), &via, &nolm).0.is_none());
    // auth: only with an Authorization header; without Via, nothing applies.
    let auth_only = CompressSettings {
        gzip_proxied: bits(&["auth"]),
        ..gzip_on()
    };
    let with_auth = RequestFacts {
        authorization: true,
        ..via
    };
    let cc = [html, ("Cache-Control", "no-store")];
    assert!(
        coding(200, &cc, Some(100), &with_auth, &auth_only)
            .0
            .is_some()
    );
    assert!(coding(200, &cc, Some(100), &via, &auth_only).0.is_none());
    assert!(
        coding(200, &cc, Some(100), &client("gzip"), &gzip_on())
            .0
            .is_some()
    );
}

#[test]
fn versions_are_numbered_as_nginx_numbers_them() {
    let cases: &[(&str, u32)] = &[
        ("HTTP/1.1", 1001),
        ("HTTP/1.0", 1000),
        ("HTTP/2.0", 2000),
        ("HTTP/2", 2000),
        ("HTTP/0.9", 9),
        ("", 9),
        ("junk", 9),
    ];
    for (text, want) in cases {
        assert_eq!(http_version(text.as_bytes()), *want, "{text}");
    }
}

fn response(headers: &[(&'static str, &'static str)], body: &'static [u8]) -> Response {
    Response {
        status: 200,
        reason: Bytes::from_static(b"OK"),
        headers: h(headers),
        body: ResponseBody::Full(Bytes::from_static(body)),
        meta: ResponseMeta::default(),
    }
}

fn header<'r>(r: &'r Response, name: &str) -> Vec<&'r [u8]> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_ref())
        .collect()
}

const PAGE: &[u8] = b"<html><body>hello hello hello hello hello</body></html>";

#[test]
fn a_compressed_answer_loses_its_length_and_ranges_and_its_etag_weakens() {
    let cases: &[(&str, Option<&str>)] = &[
        ("\"abc\"", Some("W/\"abc\"")),
        ("W/\"abc\"", Some("W/\"abc\"")),
        ("abc", None),
    ];
    for (etag, want) in cases {
        let r = response(
            &[
                ("Content-Type", "text/html"),
                ("Content-Length", "55"),
                ("Accept-Ranges", "bytes"),
                ("ETag", etag),
            ],
            PAGE,
        );
        let out = super::apply(r, &client("gzip"), &gzip_on(), true);
        assert!(header(&out, "content-length").is_empty());
        assert!(header(&out, "accept-ranges").is_empty());
        assert_eq!(header(&out, "content-encoding"), [b"gzip"]);
        assert_eq!(header(&out, "vary"), [b"Accept-Encoding"]);
        let want: Vec<&[u8]> = want.iter().map(|w| w.as_bytes()).collect();
        assert_eq!(header(&out, "etag"), want, "{etag}");
        assert!(matches!(out.body, ResponseBody::Stream(_)));
    }
}

#[test]
fn an_answer_left_alone_keeps_its_headers_but_varies_under_gzip_vary() {
    let r = response(&[("Content-Type", "text/html"), ("ETag", "\"abc\"")], PAGE);
    let out = super::apply(r, &client("identity"), &gzip_on(), true);
    assert_eq!(header(&out, "etag"), [b"\"abc\""]);
    assert_eq!(header(&out, "vary"), [b"Accept-Encoding"]);
    assert!(matches!(out.body, ResponseBody::Full(_)));
    let r = response(&[("Content-Type", "text/html")], PAGE);
    let out = super::apply(r, &client("identity"), &gzip_on(), false);
    assert!(header(&out, "vary").is_empty());
    // One Vary line, even when gzip_static added one already.
    let r = response(
        &[("Content-Type", "text/html"), ("Vary", "Accept-Encoding")],
        PAGE,
    );
    let out = super::apply(r, &client("gzip"), &gzip_on(), true);
    assert_eq!(header(&out, "vary").len(), 1);
}
