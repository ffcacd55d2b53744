//! Table tests for what header fields mean: Host, Content-Length, Transfer-Encoding,
//! body framing, keep-alive and `Expect: 100-continue`.

use super::{assert_rejected, parse, parse_ok, status_of};
use crate::http1::{BodyFraming, HeadLimits};

#[test]
fn host_is_required_once_on_http_1_1_and_optional_on_http_1_0() {
    assert_eq!(parse_ok(b"GET / HTTP/1.0\r\n\r\n").host, None);
    assert_eq!(
        parse_ok(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
            .host
            .as_deref(),
        Some(&b"a"[..])
    );
    assert_eq!(
        parse_ok(b"GET / HTTP/1.1\r\nhOsT:  a:80 \r\n\r\n")
            .host
            .as_deref(),
        Some(&b"a:80"[..])
    );
    assert_eq!(
        parse_ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").host.as_deref(),
        Some(&b""[..])
    );
    assert_rejected(&[
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET http://a/ HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ]);
}

#[test]
fn content_length_must_be_a_single_plain_decimal() {
    let valid: &[(&[u8], u64)] = &[
        (b"0", 0),
        (b"5", 5),
        (b"007", 7),
        (b" 42 ", 42),
        (b"18446744073709551615", u64::MAX),
    ];
    for (value, n) in valid {
        let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ".to_vec();
        input.extend_from_slice(value);
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_ok(&input).framing,
            BodyFraming::Length(*n),
            "{value:?}"
        );
    }
    let invalid: &[&[u8]] = &[
        b"",
        b"+5",
        b"-5",
        b"5 5",
        b"5,5",
        b"5, 5",
        b"1_000",
        b"0x10",
        b"a",
        b"5.0",
        b"1e3",
        b"18446744073709551616",
        b"99999999999999999999999",
        b"\xd9\xa5",
    ];
    for value in invalid {
        let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ".to_vec();
        input.extend_from_slice(value);
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status_of(&input, &HeadLimits::default()), 400, "{value:?}");
    }
    assert_rejected(&[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.0\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            400,
        ),
    ]);
}

#[test]
fn transfer_encoding_must_be_exactly_chunked() {
    for value in [&b"chunked"[..], b"Chunked", b"CHUNKED", b" \tchunked\t "] {
        let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".to_vec();
        input.extend_from_slice(value);
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_ok(&input).framing, BodyFraming::Chunked, "{value:?}");
    }
    let cases: &[(&[u8], u16)] = &[
        (b"gzip, chunked", 501),
        (b"deflate,chunked", 501),
        (b"x-custom , chunked", 501),
        (b"identity", 400),
        (b"gzip", 400),
        (b"chunked, gzip", 400),
        (b"chunked, chunked", 400),
        (b"chunkedx", 400),
        (b"xchunked", 400),
        (b"chunked;q=1", 400),
        (b"", 400),
        (b",chunked", 400),
        (b"chunked,", 400),
        (b"gzip,,chunked", 400),
        (b"\"chunked\"", 400),
        (b"chunked\xff", 400),
    ];
    for (value, want) in cases {
        let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".to_vec();
        input.extend_from_slice(value);
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            status_of(&input, &HeadLimits::default()),
            *want,
            "{value:?}"
        );
    }
    assert_rejected(&[
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ]);
    let err = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .expect_err("conflict");
    assert_eq!(
        err.reason(),
        "conflicting Content-Length and Transfer-Encoding"
    );
}

#[test]
fn framing_follows_transfer_encoding_then_content_length_else_no_body() {
    let cases: &[(&[u8], BodyFraming)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", BodyFraming::None),
        (b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", BodyFraming::None),
        (b"POST / HTTP/1.0\r\n\r\n", BodyFraming::None),
        (
            b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
            BodyFraming::Length(3),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            BodyFraming::Length(0),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            BodyFraming::Chunked,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parse_ok(input).framing, *want, "{input:?}");
    }
}

#[test]
fn keep_alive_depends_on_version_and_connection_tokens() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, Close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Connection: close\r\n\r\n",
            true,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: foo ,\tkeep-alive \r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\nConnection: keep-alivex\r\n\r\n", false),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_ok(input).keep_alive,
            *want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn expect_continue_is_recognised_on_http_1_1_only() {
    let cases: &[(&[u8], bool)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            true,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nexpect:  100-Continue \r\n\r\n",
            true,
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", false),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n",
            false,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
            false,
        ),
        (b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", false),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_ok(input).expect_continue,
            *want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}
