//! Unit tests for the response-head parser. The "observed" cases were run
//! through nginx 1.22.1's `uwsgi_pass` against a fake uwsgi server.

use super::*;

fn parsed(raw: &[u8]) -> (ResponseHead, usize) {
    match parse_head(raw) {
        Ok(Some(done)) => done,
        other => panic!(
            "{:?} did not parse: {other:?}",
            String::from_utf8_lossy(raw)
        ),
    }
}

fn names(head: &ResponseHead) -> Vec<String> {
    head.headers
        .iter()
        .map(|(n, v)| {
            format!(
                "{}: {}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            )
        })
        .collect()
}

#[test]
fn status_and_reason_come_from_the_line_or_the_status_header_as_nginx_does() {
    // (raw head, status, reason) — each observed through nginx 1.22.1.
    let cases: &[(&[u8], u16, &str)] = &[
        (b"HTTP/1.1 200 OK\r\n\r\n", 200, "OK"),
        (b"HTTP/1.0 404 Not Found\r\nX: 1\r\n\r\n", 404, "Not Found"),
        (b"HTTP/1.1 201\r\nX-A: 1\r\n\r\n", 201, ""),
        (b"HTTP/1.1 403.1 Forbidden\r\n\r\n", 403, "Forbidden"),
        (b"HTTP/1.1    500 Oops  \r\n\r\n", 500, "Oops  "),
        (b"HTTP/1.0 200 OK\nX-A:  v  \n\n", 200, "OK"),
        (
            b"Status: 404 Nope\r\nContent-Type: text/plain\r\n\r\n",
            404,
            "Nope",
        ),
        // nginx 1.22 sends `HTTP/1.1 404` with no text; 1.23+ its own reason.
        (b"Status: 404\r\nX-A: 1\r\n\r\n", 404, "Not Found"),
        (b"X-A: 1\r\n\r\n", 200, "OK"),
        (b"Location: /x\r\n\r\n", 302, "Moved Temporarily"),
        (b"Location: /x\r\nStatus: 301 Moved\r\n\r\n", 301, "Moved"),
        // The status line wins over a Status header.
        (b"HTTP/1.1 200 OK\r\nStatus: 500 X\r\n\r\n", 200, "OK"),
        // The first Status header wins.
        (b"Status: 201 A\r\nStatus: 202 B\r\n\r\n", 201, "A"),
        // A repeated status line is skipped (nginx's IIS tolerance).
        (
            b"HTTP/1.1 200 OK\r\nHTTP/1.1 500 No\r\nX-A: 1\r\n\r\n",
            200,
            "OK",
        ),
        // Not a status line (no version digit): parsed as headers.
        (b"HTTP/x 500 No\r\n\r\n", 200, "OK"),
    ];
    for (raw, status, reason) in cases {
        let (head, used) = parsed(raw);
        assert_eq!(
            (
                head.status,
                String::from_utf8_lossy(&head.reason).into_owned()
            ),
            (*status, reason.to_string()),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(used, raw.len(), "the whole head is consumed");
    }
}

#[test]
fn body_bytes_after_the_head_are_left_alone() {
    let (head, used) = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody");
    assert_eq!(used, 38);
    assert_eq!(head.content_length, Some(4));
}

#[test]
fn every_prefix_of_a_head_needs_more() {
    for raw in [
        &b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n"[..],
        b"Status: 404 Nope\r\nX: y\r\n\r\n",
        b"HTTP/1.0 200 OK\nX-A: v\n\n",
    ] {
        for n in 0..raw.len() {
            assert_eq!(parse_head(&raw[..n]), Ok(None), "prefix {n} of {raw:?}");
        }
    }
}

#[test]
fn x_accel_headers_are_dropped_the_rest_kept_in_order_for_the_writer() {
    // Observed: nginx passed Server and Status, dropped Connection,
    // Keep-Alive and X-Accel-Buffering. Connection, Keep-Alive and Upgrade
    // stay here: the server's writer drops hop-by-hop fields of every
    // response (tested there and end to end).
    let (head, _) = parsed(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
          Server: fake\r\nX-Accel-Buffering: no\r\nStatus: 500 X\r\nSet-Cookie: a=1\r\n\
          Set-Cookie: b=2\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        names(&head),
        [
            "Connection: keep-alive",
            "Keep-Alive: timeout=5",
            "Server: fake",
            "Status: 500 X",
            "Set-Cookie: a=1",
            "Set-Cookie: b=2",
            "Upgrade: h2c",
            "Content-Length: 0"
        ]
    );
}

#[test]
fn header_lines_are_read_as_nginx_reads_them() {
    // (raw head, the headers passed on)
    let cases: &[(&[u8], &[&str])] = &[
        // No colon: a header with an empty value (observed `NoColon: `).
        (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", &["NoColon: "]),
        (b"HTTP/1.1 200 OK\r\nX-A:\r\n\r\n", &["X-A: "]),
        (b"HTTP/1.1 200 OK\r\nX-A:   a b  \r\n\r\n", &["X-A: a b"]),
        (b"HTTP/1.1 200 OK\r\nX-A:\tv\r\n\r\n", &["X-A: \tv"]),
        (b"HTTP/1.1 200 OK\r\nX_Under: 1\r\n\r\n", &["X_Under: 1"]),
        (
            b"HTTP/1.1 200 OK\r\nX.Odd@Name: 1\r\n\r\n",
            &["X.Odd@Name: 1"],
        ),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\r\n\r\n", &["X-A: 1"]),
    ];
    for (raw, want) in cases {
        let (head, _) = parsed(raw);
        assert_eq!(names(&head), *want, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn broken_heads_are_refused_with_nginx_messages() {
    let cases: &[(&[u8], &str)] = &[
        // Observed: `upstream sent invalid header: "X\x20..."`.
        (
            b"HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n",
            r#"upstream sent invalid header: "X\x20...""#,
        ),
        (
            b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
            r#"upstream sent invalid header: "\x20...""#,
        ),
        (
            b"HTTP/1.1 200 OK\r\n: v\r\n\r\n",
            r#"upstream sent invalid header: "\x3a...""#,
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n",
            r#"upstream sent invalid header: "X-A: a\x00...""#,
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: 1\rX\r\n\r\n",
            r#"upstream sent invalid header: "X-A: 1\x0d...""#,
        ),
        // Observed: `upstream sent invalid status "abc"`.
        (
            b"Status: abc\r\n\r\n",
            r#"upstream sent invalid status "abc""#,
        ),
        (
            b"Status: 20\r\n\r\n",
            r#"upstream sent invalid status "20""#,
        ),
        // nginx 1.22 passed `HTTP/1.1 099 Low` on; we refuse it.
        (
            b"HTTP/1.1 099 Low\r\n\r\n",
            r#"upstream sent invalid status "099""#,
        ),
        // nginx >= 1.23's framing checks (1.22 ignored these).
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            r#"upstream sent invalid "Content-Length" header: "Content-Length: x""#,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n",
            r#"upstream sent duplicate header line: "content-length: 4", previous value: "Content-Length: 4""#,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            r#"upstream sent "Content-Length" and "Transfer-Encoding" headers at the same time"#,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            r#"upstream sent unknown "Transfer-Encoding": "gzip, chunked""#,
        ),
    ];
    for (raw, message) in cases {
        match parse_head(raw) {
            Err(e) => assert_eq!(
                e.to_string(),
                *message,
                "{:?}",
                String::from_utf8_lossy(raw)
            ),
            other => panic!("{:?} was accepted: {other:?}", String::from_utf8_lossy(raw)),
        }
    }
}

#[test]
fn content_length_must_be_plain_digits() {
    for (value, want) in [
        (&b"0"[..], Some(0)),
        (b"1234", Some(1234)),
        (b"", None),
        (b"+1", None),
        (b"-1", None),
        (b"1 2", None),
        (b"99999999999999999999", None),
    ] {
        assert_eq!(parse_length(value), want, "{value:?}");
    }
}

#[test]
fn chunked_is_recognised_in_any_case() {
    let (head, _) = parsed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert!(head.chunked);
    assert_eq!(head.headers.len(), 1, "left for the writer to drop");
}

#[test]
fn random_bytes_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let alphabet = b"HTP/1.0 2:\r\n\0Status-Lengthx";
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 48) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| alphabet[((seed >> (i % 16 * 4)) as usize + i) % alphabet.len()])
            .collect();
        let _ = parse_head(&bytes);
    }
}
