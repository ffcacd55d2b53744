//! Byte-by-byte feeding: every prefix of a valid head is "incomplete", and feeding a
//! request one byte at a time gives exactly the one-shot result.

use super::decode_all;
use crate::http1::{ChunkedDecoder, ChunkedStep, HeadLimits, RequestHead, parse_request_head};
use bytes::BytesMut;

const REQUESTS: &[&[u8]] = &[
    b"GET / HTTP/1.0\r\n\r\n",
    b"\r\n\r\nGET /a?b=c HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    b"POST http://h:1/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nX-Empty:\r\nX-Obs: \xc3\xa9\t!\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n",
];

/// Comparable summary of a head (RequestHead holds no PartialEq on purpose).
fn summary(h: &RequestHead) -> String {
    format!("{h:?}")
}

#[test]
fn every_prefix_of_a_valid_head_is_incomplete_and_byte_feeding_matches_one_shot() {
    let limits = HeadLimits::default();
    for request in REQUESTS {
        let mut whole = BytesMut::from(*request);
        let one_shot = parse_request_head(&mut whole, &limits)
            .expect("valid")
            .expect("complete");
        assert!(whole.is_empty());
        assert_eq!(one_shot.head_len, request.len());

        let mut buf = BytesMut::new();
        let mut parsed = None;
        for (i, &byte) in request.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            match parse_request_head(&mut buf, &limits) {
                Ok(None) => assert!(i + 1 < request.len(), "complete head reported incomplete"),
                Ok(Some(head)) => {
                    assert_eq!(i + 1, request.len(), "head completed early at byte {i}");
                    parsed = Some(head);
                }
                Err(e) => panic!("prefix {:?} rejected: {e}", &request[..=i]),
            }
        }
        let parsed = parsed.expect("head completed");
        assert_eq!(summary(&parsed), summary(&one_shot));
        assert!(buf.is_empty());
    }
}

#[test]
fn chunked_body_fed_byte_by_byte_matches_one_shot() {
    let bodies: &[&[u8]] = &[
        b"0\r\n\r\n",
        b"5\r\nhello\r\n6;ext=\"a b\";x\r\n world\r\n0\r\nX-Trailer: v\r\n\r\n",
        b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0;end\r\nA: 1\r\nB: 2\r\n\r\n",
    ];
    for body in bodies {
        let mut with_next = body.to_vec();
        with_next.extend_from_slice(b"NEXT");
        let (want, rest) = decode_all(&with_next).expect("valid");
        assert_eq!(&rest[..], b"NEXT");

        let mut decoder = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for (i, &byte) in with_next.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(ChunkedStep::Data(d)) => got.extend_from_slice(&d),
                    Ok(ChunkedStep::NeedMore) => break,
                    Ok(ChunkedStep::Done) => {
                        assert_eq!(i + 1, body.len(), "done at the wrong byte");
                        break;
                    }
                    Err(e) => panic!("prefix {:?} rejected: {e}", &with_next[..=i]),
                }
            }
            if decoder.is_done() {
                assert!(buf.is_empty());
                // Bytes after the body are left alone.
                buf.extend_from_slice(&with_next[i + 1..]);
                break;
            }
        }
        assert!(decoder.is_done());
        assert_eq!(got, want);
        assert_eq!(&buf[..], b"NEXT");
    }
}
