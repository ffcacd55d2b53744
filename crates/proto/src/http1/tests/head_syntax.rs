//! Table tests for the syntax of a request head: request line, field lines, size
//! limits, pipelining. One test per rule, valid and invalid cases.

use super::{assert_rejected, parse, parse_ok, parse_with, status_of};
use crate::http1::{
    BodyFraming, DEFAULT_MAX_FIELD, DEFAULT_MAX_FIELDS, DEFAULT_MAX_HEAD, DEFAULT_MAX_REQUEST_LINE,
    HeadLimits, Version,
};
use bytes::BytesMut;

#[test]
fn simple_get_is_parsed_into_all_fields() {
    let input = b"GET /a/b%20c?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  v \r\n\r\n";
    let head = parse_ok(input);
    assert_eq!(&head.method[..], b"GET");
    assert_eq!(&head.target[..], b"/a/b%20c?x=1&y=2");
    assert_eq!(&head.path[..], b"/a/b%20c");
    assert_eq!(&head.query[..], b"x=1&y=2");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.headers.len(), 2);
    assert_eq!(
        head.headers.get(1).map_or(&b"?"[..], |h| h.name),
        b"X-Thing"
    );
    assert_eq!(head.headers.get(1).map_or(&b"?"[..], |h| h.value), b"v");
    assert_eq!(head.framing, BodyFraming::None);
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
    assert_eq!(head.host.as_deref(), Some(&b"example.com"[..]));
    assert_eq!(head.head_len, input.len());
}

#[test]
fn version_as_bytes_is_the_wire_form() {
    assert_eq!(Version::Http10.as_bytes(), b"HTTP/1.0");
    assert_eq!(Version::Http11.as_bytes(), b"HTTP/1.1");
}

#[test]
fn default_limits_are_the_named_constants() {
    let l = HeadLimits::default();
    assert_eq!(
        (l.max_request_line, l.max_field, l.max_fields, l.max_head),
        (
            DEFAULT_MAX_REQUEST_LINE,
            DEFAULT_MAX_FIELD,
            DEFAULT_MAX_FIELDS,
            DEFAULT_MAX_HEAD
        )
    );
    assert_eq!(
        (l.max_request_line, l.max_field, l.max_fields, l.max_head),
        (8192, 8192, 100, 65536)
    );
}

#[test]
fn bare_lf_anywhere_in_the_head_is_rejected() {
    assert_rejected(&[
        (b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHo\nst: a\r\n\r\n", 400),
        (b"GET /a\nb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GE\nT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ]);
    let err = parse(b"GET / HTTP/1.1\r\nHost: a\n\r\n").expect_err("bare LF");
    assert_eq!(err.reason(), "bare LF in request head");
    // A lone CR is not a line end either.
    assert_rejected(&[
        (b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\rx", 400),
    ]);
}

#[test]
fn up_to_two_leading_empty_lines_are_skipped() {
    for (input, head_len) in [
        (&b"GET / HTTP/1.0\r\n\r\n"[..], 18),
        (b"\r\nGET / HTTP/1.0\r\n\r\n", 20),
        (b"\r\n\r\nGET / HTTP/1.0\r\n\r\n", 22),
    ] {
        let head = parse_ok(input);
        assert_eq!(head.head_len, head_len, "{input:?}");
        assert_eq!(&head.method[..], b"GET");
    }
    assert_rejected(&[
        (b"\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n", 400),
        (b"\r\n\r\n\r\n", 400),
        (b"\n\r\nGET / HTTP/1.0\r\n\r\n", 400),
        (b"\r\r\nGET / HTTP/1.0\r\n\r\n", 400),
        (b" GET / HTTP/1.0\r\n\r\n", 400),
    ]);
    assert!(matches!(parse(b"\r\n\r\n"), Ok(None)));
}

#[test]
fn method_must_be_a_token() {
    for method in [
        "GET",
        "POST",
        "M-SEARCH",
        "PROPFIND",
        "X!#$%&'*+.^_`|~9",
        "get",
    ] {
        let input = format!("{method} / HTTP/1.0\r\n\r\n");
        assert_eq!(&parse_ok(input.as_bytes()).method[..], method.as_bytes());
    }
    assert_rejected(&[
        (b"G(ET / HTTP/1.0\r\n\r\n", 400),
        (b"G\"ET / HTTP/1.0\r\n\r\n", 400),
        (b"GE\x00T / HTTP/1.0\r\n\r\n", 400),
        (b"G\xc3\xa9T / HTTP/1.0\r\n\r\n", 400),
        (b"GET\t/ HTTP/1.0\r\n\r\n", 400),
        (b"/ HTTP/1.0\r\n\r\n", 400),
    ]);
}

#[test]
fn request_line_parts_are_separated_by_exactly_one_space() {
    assert_rejected(&[
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
        (b"GET / \tHTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"GET / extra HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ]);
}

#[test]
fn version_must_be_http_1_0_or_1_1() {
    assert_eq!(parse_ok(b"GET / HTTP/1.0\r\n\r\n").version, Version::Http10);
    assert_eq!(
        parse_ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").version,
        Version::Http11
    );
    assert_rejected(&[
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/2\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/a.b\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400),
    ]);
}

#[test]
fn request_target_bytes_must_be_visible_ascii() {
    let head = parse_ok(b"GET /~a!$&'()*+,;=:@-._/%7E?q=/?x HTTP/1.0\r\n\r\n");
    assert_eq!(&head.path[..], b"/~a!$&'()*+,;=:@-._/%7E");
    assert_eq!(&head.query[..], b"q=/?x");
    assert_rejected(&[
        (b"GET /\xc3\xa9 HTTP/1.0\r\n\r\n", 400),
        (b"GET /\x80 HTTP/1.0\r\n\r\n", 400),
        (b"GET /\x7f HTTP/1.0\r\n\r\n", 400),
        (b"GET /\x00 HTTP/1.0\r\n\r\n", 400),
        (b"GET /\x01 HTTP/1.0\r\n\r\n", 400),
        (b"GET /a\tb HTTP/1.0\r\n\r\n", 400),
    ]);
}

#[test]
fn request_target_forms_are_origin_absolute_or_asterisk() {
    // (input, path, query)
    let valid: &[(&[u8], &[u8], &[u8])] = &[
        (b"GET / HTTP/1.0\r\n\r\n", b"/", b""),
        (b"GET /? HTTP/1.0\r\n\r\n", b"/", b""),
        (b"GET /p?a?b HTTP/1.0\r\n\r\n", b"/p", b"a?b"),
        (b"GET //double HTTP/1.0\r\n\r\n", b"//double", b""),
        (b"GET http://example.com/p?q HTTP/1.0\r\n\r\n", b"/p", b"q"),
        (
            b"GET HTTP://example.com:8080/p HTTP/1.0\r\n\r\n",
            b"/p",
            b"",
        ),
        (b"GET https://example.com HTTP/1.0\r\n\r\n", b"/", b""),
        (b"GET http://example.com?q=1 HTTP/1.0\r\n\r\n", b"/", b"q=1"),
        (b"OPTIONS * HTTP/1.0\r\n\r\n", b"*", b""),
        // Any token is a method, and asterisk-form is not only for OPTIONS (SSDP).
        (b"M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n", b"*", b""),
        (b"GET * HTTP/1.0\r\n\r\n", b"*", b""),
        (b"PROPFIND /d HTTP/1.0\r\n\r\n", b"/d", b""),
        (b"x.~!#$%&'*+^_`|-9 /m HTTP/1.0\r\n\r\n", b"/m", b""),
        // A fragment is cut off the path and query, as nginx does.
        (b"GET /a#frag HTTP/1.0\r\n\r\n", b"/a", b""),
        (b"GET /a?q=1#f?g#h HTTP/1.0\r\n\r\n", b"/a", b"q=1"),
        (b"GET http://h/p#f HTTP/1.0\r\n\r\n", b"/p", b""),
        (b"OPTIONS *#f HTTP/1.0\r\n\r\n", b"*", b""),
    ];
    for (input, path, query) in valid {
        let head = parse_ok(input);
        assert_eq!(
            (&head.path[..], &head.query[..]),
            (*path, *query),
            "{input:?}"
        );
    }
    assert_rejected(&[
        (b"GET a/b HTTP/1.0\r\n\r\n", 400),
        (b"GET ?q HTTP/1.0\r\n\r\n", 400),
        (b"GET #frag HTTP/1.0\r\n\r\n", 400),
        (b"OPTIONS *x HTTP/1.0\r\n\r\n", 400),
        (b"OPTIONS ** HTTP/1.0\r\n\r\n", 400),
        // CONNECT is a valid method this server does not implement (not a proxy).
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            501,
        ),
        (b"GET example.com:443 HTTP/1.0\r\n\r\n", 400),
        (b"CONNECT / HTTP/1.0\r\n\r\n", 501),
        (b"GET ftp://example.com/ HTTP/1.0\r\n\r\n", 400),
        (b"GET http:///p HTTP/1.0\r\n\r\n", 400),
        (b"GET http:// HTTP/1.0\r\n\r\n", 400),
        // RFC 9110 §4.2.4: userinfo is treated as an error (nginx: 400 too).
        (b"GET http://user@example.com/ HTTP/1.0\r\n\r\n", 400),
        (
            b"GET http://u:p@example.com/x HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
    ]);
}

#[test]
fn request_line_longer_than_the_limit_is_414() {
    let limits = HeadLimits {
        max_request_line: 20,
        ..HeadLimits::default()
    };
    // "GET /123456 HTTP/1.0" is exactly 20 bytes.
    assert!(matches!(
        parse_with(b"GET /123456 HTTP/1.0\r\n\r\n", &limits),
        Ok(Some(_))
    ));
    assert_eq!(status_of(b"GET /1234567 HTTP/1.0\r\n\r\n", &limits), 414);
    // Incomplete, but already over the limit without a line end.
    assert_eq!(status_of(b"GET /12345678901234567", &limits), 414);
    assert_eq!(status_of(b"GET /1234567890 HTTP/1", &limits), 414);
    // Incomplete and at the limit (a trailing CR does not count): keep reading.
    assert!(matches!(
        parse_with(b"GET /123456 HTTP/1.0\r", &limits),
        Ok(None)
    ));
    assert!(matches!(
        parse_with(b"GET /123456 HTTP/1.0", &limits),
        Ok(None)
    ));
    // The default limit.
    let long = format!(
        "GET /{} HTTP/1.0\r\n\r\n",
        "a".repeat(DEFAULT_MAX_REQUEST_LINE)
    );
    assert_eq!(status_of(long.as_bytes(), &HeadLimits::default()), 414);
}

#[test]
fn header_name_must_be_a_token_directly_followed_by_a_colon() {
    let head = parse_ok(b"GET / HTTP/1.0\r\nX-Mixed_Case.1!~: v\r\nA:b\r\n\r\n");
    assert_eq!(
        head.headers.get(0).map_or(&b"?"[..], |h| h.name),
        b"X-Mixed_Case.1!~"
    );
    assert_eq!(
        (
            head.headers.get(1).map_or(&b"?"[..], |h| h.name),
            head.headers.get(1).map_or(&b"?"[..], |h| h.value)
        ),
        (&b"A"[..], &b"b"[..])
    );
    assert_rejected(&[
        (b"GET / HTTP/1.0\r\nName : v\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nName\t: v\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\n: v\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nNo colon\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nNocolon\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nNa(me: v\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nNa/me: v\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nN\xc3\xa9: v\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nN\x00: v\r\n\r\n", 400),
    ]);
}

#[test]
fn obs_fold_is_rejected() {
    assert_rejected(&[
        (b"GET / HTTP/1.0\r\nA: b\r\n c\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: b\r\n\tc\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\n A: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n \r\n\r\n", 400),
    ]);
}

#[test]
fn header_value_allows_tab_visible_ascii_and_obs_text_only() {
    let head = parse_ok(b"GET / HTTP/1.0\r\nA: x\ty z\xc3\xa9\xff~\r\nB:\r\nC:   \r\n\r\n");
    assert_eq!(
        head.headers.get(0).map_or(&b"?"[..], |h| h.value),
        b"x\ty z\xc3\xa9\xff~"
    );
    assert_eq!(head.headers.get(1).map_or(&b"?"[..], |h| h.value), b"");
    assert_eq!(head.headers.get(2).map_or(&b"?"[..], |h| h.value), b"");
    assert_rejected(&[
        (b"GET / HTTP/1.0\r\nA: x\x00y\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: \x01\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: x\x7f\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: x\x1b[0m\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: x\x0b\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nA: x\x0c\r\n\r\n", 400),
    ]);
}

#[test]
fn header_value_surrounding_ows_is_trimmed_and_name_case_kept() {
    let head = parse_ok(b"GET / HTTP/1.0\r\nCoNtEnT-tYpE: \t text/plain ; a=b \t\r\n\r\n");
    assert_eq!(
        head.headers.get(0).map_or(&b"?"[..], |h| h.name),
        b"CoNtEnT-tYpE"
    );
    assert_eq!(
        head.headers.get(0).map_or(&b"?"[..], |h| h.value),
        b"text/plain ; a=b"
    );
}

#[test]
fn headers_are_kept_in_order_including_framing_fields() {
    let head = parse_ok(
        b"POST / HTTP/1.1\r\nB: 1\r\nHost: h\r\nA: 2\r\nContent-Length: 3\r\nB: 3\r\n\r\nabc",
    );
    let names: Vec<&[u8]> = head.headers.iter().map(|h| h.name).collect();
    assert_eq!(names, [&b"B"[..], b"Host", b"A", b"Content-Length", b"B"]);
}

#[test]
fn field_line_longer_than_the_limit_is_431() {
    let limits = HeadLimits {
        max_field: 10,
        ..HeadLimits::default()
    };
    // "A: 1234567" is exactly 10 bytes.
    assert!(matches!(
        parse_with(b"GET / HTTP/1.0\r\nA: 1234567\r\n\r\n", &limits),
        Ok(Some(_))
    ));
    assert_eq!(
        status_of(b"GET / HTTP/1.0\r\nA: 12345678\r\n\r\n", &limits),
        431
    );
    assert_eq!(status_of(b"GET / HTTP/1.0\r\nA: 123456789", &limits), 431);
    assert!(matches!(
        parse_with(b"GET / HTTP/1.0\r\nA: 1234567\r", &limits),
        Ok(None)
    ));
}

#[test]
fn more_fields_than_the_limit_is_431() {
    let limits = HeadLimits {
        max_fields: 3,
        ..HeadLimits::default()
    };
    assert!(matches!(
        parse_with(b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &limits),
        Ok(Some(_))
    ));
    assert_eq!(
        status_of(
            b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
            &limits
        ),
        431
    );
    assert_eq!(
        status_of(
            b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n",
            &limits
        ),
        431
    );
    let mut many = String::from("GET / HTTP/1.0\r\n");
    for i in 0..=DEFAULT_MAX_FIELDS {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(status_of(many.as_bytes(), &HeadLimits::default()), 431);
}

#[test]
fn many_fields_spill_past_the_inline_positions() {
    let mut input = String::from("GET / HTTP/1.0\r\n");
    for i in 0..80 {
        input.push_str(&format!("X-{i}: value-{i}\r\n"));
    }
    input.push_str("\r\n");
    let head = parse_ok(input.as_bytes());
    assert_eq!(head.headers.len(), 80);
    for (i, h) in head.headers.iter().enumerate() {
        assert_eq!(h.name, format!("X-{i}").as_bytes());
        assert_eq!(h.value, format!("value-{i}").as_bytes());
    }
}

#[test]
fn head_larger_than_the_limit_is_431_even_while_incomplete() {
    let limits = HeadLimits {
        max_head: 40,
        ..HeadLimits::default()
    };
    // Exactly 40 bytes.
    let exact = b"GET / HTTP/1.0\r\nA: 12345678901234567\r\n\r\n";
    assert_eq!(exact.len(), 40);
    assert!(matches!(parse_with(exact, &limits), Ok(Some(_))));
    assert_eq!(
        status_of(b"GET / HTTP/1.0\r\nA: 123456789012345678\r\n\r\n", &limits),
        431
    );
    assert_eq!(
        status_of(
            b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5",
            &limits
        ),
        431
    );
    // A complete head followed by a big body is fine: only the head counts.
    let mut with_body = exact.to_vec();
    with_body.extend_from_slice(&[b'x'; 100]);
    let mut buf = BytesMut::from(&with_body[..]);
    let head = crate::http1::parse_request_head(&mut buf, &limits).expect("valid");
    assert!(head.is_some());
    assert_eq!(buf.len(), 100);
}

#[test]
fn pipelined_heads_parse_back_to_back() {
    let mut buf = BytesMut::from(
        &b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /three HTTP/1.1\r\nHost: a\r\n"[..],
    );
    let limits = HeadLimits::default();
    let first = crate::http1::parse_request_head(&mut buf, &limits)
        .expect("valid")
        .expect("complete");
    assert_eq!(&first.path[..], b"/one");
    assert_eq!(first.head_len, 30);
    let second = crate::http1::parse_request_head(&mut buf, &limits)
        .expect("valid")
        .expect("complete");
    assert_eq!(&second.path[..], b"/two");
    assert_eq!(second.framing, BodyFraming::Length(2));
    assert!(buf.starts_with(b"hiGET /three"));
    let _ = buf.split_to(2);
    assert!(matches!(
        crate::http1::parse_request_head(&mut buf, &limits),
        Ok(None)
    ));
    buf.extend_from_slice(b"\r\n");
    let third = crate::http1::parse_request_head(&mut buf, &limits)
        .expect("valid")
        .expect("complete");
    assert_eq!(&third.path[..], b"/three");
    assert!(buf.is_empty());
}

#[test]
fn errors_leave_the_buffer_untouched_and_incomplete_heads_too() {
    for input in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\n",
    ] {
        let mut buf = BytesMut::from(input);
        let _ = crate::http1::parse_request_head(&mut buf, &HeadLimits::default());
        assert_eq!(&buf[..], input);
    }
}

#[test]
fn head_error_displays_status_and_reason() {
    let err = parse(b"GET / HTTP/1.1\r\n\r\n").expect_err("no host");
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.to_string(),
        "bad request head (400): missing Host header on HTTP/1.1"
    );
}
