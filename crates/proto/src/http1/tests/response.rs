//! The response head parser: table tests of status lines, framing and
//! keep-alive, every prefix of a valid head is "need more", and mangled
//! heads never panic.

use bytes::BytesMut;

use super::no_panic::{Rng, mutate};
use crate::http1::{
    ResponseError, ResponseFraming, ResponseHead, ResponseLimits, Version, parse_response_head,
};

fn parse(input: &[u8], head_request: bool) -> Result<Option<ResponseHead>, ResponseError> {
    let mut buf = BytesMut::from(input);
    parse_response_head(&mut buf, &ResponseLimits::default(), head_request)
}

/// Every one of `cases` is refused as a response head (no HEAD request).
fn assert_all_refused(cases: &[&[u8]]) {
    for input in cases {
        assert!(
            parse(input, false).is_err(),
            "{:?} accepted",
            String::from_utf8_lossy(input)
        );
    }
}

fn parse_ok(input: &[u8]) -> ResponseHead {
    match parse(input, false) {
        Ok(Some(head)) => head,
        other => panic!(
            "expected a head for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[test]
fn status_lines_give_version_status_and_reason() {
    let cases: &[(&[u8], Version, u16, &[u8])] = &[
        (b"HTTP/1.1 200 OK\r\n\r\n", Version::Http11, 200, b"OK"),
        (
            b"HTTP/1.0 404 Not Found\r\n\r\n",
            Version::Http10,
            404,
            b"Not Found",
        ),
        (b"HTTP/1.1 200\r\n\r\n", Version::Http11, 200, b""),
        (b"HTTP/1.1 200 \r\n\r\n", Version::Http11, 200, b""),
        (
            b"HTTP/1.1 599 x y\tz\r\n\r\n",
            Version::Http11,
            599,
            b"x y\tz",
        ),
        (
            b"HTTP/1.1 200 \xc3\xa9\r\n\r\n",
            Version::Http11,
            200,
            b"\xc3\xa9",
        ),
    ];
    for (input, version, status, reason) in cases {
        let head = parse_ok(input);
        assert_eq!(
            (head.version, head.status, &head.reason[..]),
            (*version, *status, *reason),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(head.head_len, input.len());
    }
}

#[test]
fn malformed_heads_are_refused() {
    let cases: &[&[u8]] = &[
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"HTTP/1.1  200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 200 OK\n\r\n",
        b"HTTP/1.1 200 O\x01K\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: \x00\r\n\r\n",
    ];
    assert_all_refused(cases);
}

#[test]
fn framing_follows_rfc_9112_section_6_3() {
    let cases: &[(&[u8], bool, ResponseFraming)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            false,
            ResponseFraming::Length(5),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
            false,
            ResponseFraming::Chunked,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", false, ResponseFraming::Close),
        (b"HTTP/1.0 200 OK\r\n\r\n", false, ResponseFraming::Close),
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            false,
            ResponseFraming::None,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            ResponseFraming::None,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\n",
            false,
            ResponseFraming::None,
        ),
        (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            false,
            ResponseFraming::None,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            true,
            ResponseFraming::None,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", true, ResponseFraming::None),
    ];
    for (input, head_request, framing) in cases {
        let got = parse(input, *head_request).map(|h| h.map(|h| h.framing));
        assert_eq!(
            got,
            Ok(Some(*framing)),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn ambiguous_framing_is_refused_even_without_a_body() {
    let cases: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 204 OK\r\nContent-Length: x\r\n\r\n",
    ];
    assert_all_refused(cases);
}

#[test]
fn keep_alive_needs_http_1_1_or_an_explicit_token_and_a_delimited_body() {
    let cases: &[(&[u8], bool)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", false),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            true,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", true),
    ];
    for (input, keep_alive) in cases {
        assert_eq!(
            parse_ok(input).keep_alive,
            *keep_alive,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn headers_keep_order_and_case_and_the_body_stays_in_the_buffer() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Empty:\r\nset-cookie:  b=2 \r\nContent-Length: 4\r\n\r\nbody"[..],
    );
    let head = parse_response_head(&mut buf, &ResponseLimits::default(), false)
        .ok()
        .flatten()
        .expect("a head");
    let fields: Vec<(&[u8], &[u8])> = head.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    assert_eq!(
        fields,
        [
            (&b"Set-Cookie"[..], &b"a=1"[..]),
            (b"X-Empty", b""),
            (b"set-cookie", b"b=2"),
            (b"Content-Length", b"4"),
        ]
    );
    assert_eq!(&buf[..], b"body");
}

#[test]
fn limits_give_too_large_errors_complete_or_not() {
    let small = ResponseLimits {
        max_status_line: 20,
        max_field: 10,
        max_fields: 2,
        max_head: 64,
    };
    let cases: &[&[u8]] = &[
        b"HTTP/1.1 200 a very long reason phrase\r\n\r\n",
        b"HTTP/1.1 200 a very long reason phrase",
        b"HTTP/1.1 200 OK\r\nX: 0123456789\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: 0123456789",
        b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n",
    ];
    for input in &cases[..5] {
        let mut buf = BytesMut::from(*input);
        let got = parse_response_head(&mut buf, &small, false);
        assert!(
            matches!(got, Err(ref e) if e.is_too_large()),
            "{:?}: {got:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(&buf[..], *input, "an error consumes nothing");
    }
    // Two fields are fine; the head is only incomplete.
    let mut buf = BytesMut::from(cases[5]);
    assert!(matches!(
        parse_response_head(&mut buf, &small, false),
        Ok(None)
    ));
    let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
    long.extend(std::iter::repeat_n(b'x', 60));
    let mut buf = BytesMut::from(&long[..]);
    let tight = ResponseLimits {
        max_head: 64,
        ..ResponseLimits::default()
    };
    assert!(matches!(parse_response_head(&mut buf, &tight, false), Err(e) if e.is_too_large()));
}

const RESPONSES: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.0 302 Found\r\nLocation: /x\r\nConnection: keep-alive\r\n\r\n",
    b"HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\nX-Obs: \xc3\xa9\t!\r\nX-Empty:\r\n\r\n",
];

#[test]
fn every_prefix_of_a_valid_head_is_incomplete() {
    for response in RESPONSES {
        let whole = format!("{:?}", parse_ok(response));
        for end in 0..response.len() {
            let got = parse(&response[..end], false);
            assert!(
                matches!(got, Ok(None)),
                "prefix {:?}: {got:?}",
                String::from_utf8_lossy(&response[..end])
            );
        }
        let mut buf = BytesMut::new();
        let mut done = None;
        for &byte in *response {
            buf.extend_from_slice(&[byte]);
            if let Some(head) = parse_response_head(&mut buf, &ResponseLimits::default(), false)
                .ok()
                .flatten()
            {
                done = Some(head);
            }
        }
        assert_eq!(done.map(|h| format!("{h:?}")), Some(whole));
    }
}

#[test]
fn mutated_responses_never_panic() {
    let mut rng = Rng(0x5151_7a7a_0102_0304);
    let small = ResponseLimits {
        max_status_line: 24,
        max_field: 16,
        max_fields: 3,
        max_head: 96,
    };
    for round in 0..20_000 {
        let mut input = RESPONSES[round % RESPONSES.len()].to_vec();
        mutate(&mut rng, &mut input);
        for limits in [ResponseLimits::default(), small] {
            for head_request in [false, true] {
                let mut buf = BytesMut::from(&input[..]);
                match parse_response_head(&mut buf, &limits, head_request) {
                    Ok(Some(head)) => assert_eq!(head.head_len + buf.len(), input.len()),
                    Ok(None) => assert_eq!(buf.len(), input.len()),
                    Err(_) => assert_eq!(&buf[..], &input[..], "errors must not consume"),
                }
            }
        }
    }
}
