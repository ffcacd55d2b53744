//! Table tests for the chunked body rules: sizes, extensions, line ends, data CRLF,
//! trailers, limits, and what is left in the buffer after the body.

use super::decode_all;
use crate::http1::{
    ChunkedDecoder, ChunkedStep, FORBIDDEN_TRAILERS, MAX_CHUNK_SIZE_LINE, MAX_TRAILER_SECTION,
};
use bytes::{Bytes, BytesMut};

#[test]
fn valid_chunked_bodies_decode_to_their_payload() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"0\r\n\r\n", b""),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (
            b"00000000000000a\r\n0123456789\r\n0000\r\n\r\n",
            b"0123456789",
        ),
        (b"1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", b"\r\n"),
        (b"3\r\n\x00\xff\x80\r\n0\r\n\r\n", b"\x00\xff\x80"),
    ];
    for (input, payload) in cases {
        let (got, rest) = decode_all(input).expect("valid body");
        assert_eq!(&got[..], *payload, "{input:?}");
        assert!(rest.is_empty());
    }
}

#[test]
fn chunk_size_must_be_plain_hex_of_at_most_16_digits() {
    let valid: &[&[u8]] = &[b"1", b"01", b"0000000000000001"];
    for size in valid {
        let mut input = size.to_vec();
        input.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(decode_all(&input).expect("valid").0, b"x", "{size:?}");
    }
    let invalid: &[&[u8]] = &[
        b"",
        b" 1",
        b"1 ",
        b"\t1",
        b"1\t",
        b"+1",
        b"-1",
        b"0x1",
        b"1_0",
        b"g",
        b"1g",
        b"00000000000000001",
        b"ffffffffffffffff0",
        b"\xef\xbc\x91",
    ];
    for size in invalid {
        let mut input = size.to_vec();
        input.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert!(decode_all(&input).is_err(), "{size:?}");
    }
    // Hex digits are case-insensitive.
    for (size, len) in [("F", 15), ("f", 15), ("1A", 26), ("1a", 26)] {
        let input = format!("{size}\r\n{}\r\n0\r\n\r\n", "z".repeat(len));
        assert_eq!(decode_all(input.as_bytes()).expect("valid").0.len(), len);
    }
    // The largest size is accepted (and then simply waits for data).
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nabc"[..]);
    let mut decoder = ChunkedDecoder::new();
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(ChunkedStep::Data(Bytes::from_static(b"abc")))
    );
    assert_eq!(decoder.decode(&mut buf), Ok(ChunkedStep::NeedMore));
}

#[test]
fn chunk_extensions_are_validated_and_ignored() {
    let valid: &[&[u8]] = &[
        b"5;a",
        b"5;a=b",
        b"5;a=b;c",
        b"5;name=\"quoted value\"",
        b"5;n=\"esc\\\"aped\";m=tok",
        b"5;n=\"\"",
        b"5;n=\"\xc3\xa9\"",
    ];
    // RFC 9112 §7.1.1: bad whitespace (BWS) is allowed around ";" and "=".
    let valid: Vec<&[u8]> = valid
        .iter()
        .copied()
        .chain([&b"5 ;a"[..], b"5; a", b"5;a =b", b"5;a= b", b"5 ; a = b"])
        .collect();
    for line in valid {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\nhello\r\n0;last\r\n\r\n");
        assert_eq!(decode_all(&input).expect("valid").0, b"hello", "{line:?}");
    }
    let invalid: &[&[u8]] = &[
        b"5;",
        b"5;;a",
        b"5;a ",
        b"5 ",
        b"5;a=",
        b"5;=b",
        b"5;a=b c",
        b"5;a=\"unterminated",
        b"5;a=\"x\"y",
        b"5;a=\"\x00\"",
        b"5;a=\"\\\x01\"",
        b"5;a\x00",
        b"5;a\rb",
        b"5;a=b=c",
    ];
    for line in invalid {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert!(decode_all(&input).is_err(), "{line:?}");
    }
}

#[test]
fn chunk_lines_must_end_with_crlf() {
    let invalid: &[&[u8]] = &[
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r\n0\n\r\n",
        b"5\r\nhello\r\n0\r\n\n",
        b"5\rhello\r\n0\r\n\r\n",
        b"\n5\r\nhello\r\n0\r\n\r\n",
    ];
    for input in invalid {
        assert!(decode_all(input).is_err(), "{input:?}");
    }
}

#[test]
fn chunk_data_must_be_followed_by_exactly_crlf() {
    let invalid: &[&[u8]] = &[
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello world\r\n0\r\n\r\n",
        b"5\r\nhell\r\n0\r\n\r\n",
        b"5\r\nhello\r\r\n0\r\n\r\n",
        b"5\r\nhello \r\n0\r\n\r\n",
        b"5\r\nhello0\r\n\r\n",
    ];
    for input in invalid {
        assert!(decode_all(input).is_err(), "{input:?}");
    }
    // An early wrong byte is reported without waiting for the second one.
    let mut buf = BytesMut::from(&b"1\r\nxy"[..]);
    let mut decoder = ChunkedDecoder::new();
    assert!(matches!(decoder.decode(&mut buf), Ok(ChunkedStep::Data(_))));
    assert!(decoder.decode(&mut buf).is_err());
}

#[test]
fn trailers_are_validated_like_fields_and_discarded() {
    let valid: &[&[u8]] = &[
        b"0\r\nX-Checksum: abc\r\n\r\n",
        b"0\r\nA: 1\r\nB:\t2 \r\n\r\n",
        b"0\r\nA: \xc3\xa9\r\n\r\n",
    ];
    for input in valid {
        let mut with_next = input.to_vec();
        with_next.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (payload, rest) = decode_all(&with_next).expect("valid trailers");
        assert!(payload.is_empty());
        assert_eq!(
            &rest[..],
            b"GET / HTTP/1.1\r\n",
            "trailers must not leak: {input:?}"
        );
    }
    let invalid: &[&[u8]] = &[
        b"0\r\nX-A: b\n\r\n",
        b"0\r\nX-A: b\r\n\n",
        b"0\r\nX-A : b\r\n\r\n",
        b"0\r\n X-A: b\r\n\r\n",
        b"0\r\nX-A: b\r\n c\r\n\r\n",
        b"0\r\nX-A\r\n\r\n",
        b"0\r\n: b\r\n\r\n",
        b"0\r\nX-A: \x00\r\n\r\n",
        b"0\r\n\rX",
    ];
    for input in invalid {
        assert!(decode_all(input).is_err(), "{input:?}");
    }
}

#[test]
fn trailers_with_fields_forbidden_there_are_rejected() {
    for name in FORBIDDEN_TRAILERS {
        for spelled in [name.to_string(), name.to_ascii_uppercase()] {
            let input = format!("0\r\nX-Ok: 1\r\n{spelled}: 5\r\n\r\n");
            assert!(decode_all(input.as_bytes()).is_err(), "{input:?}");
        }
    }
    for allowed in [
        "X-Checksum",
        "Server-Timing",
        "Digest",
        "Content-Lengthy",
        "Hosts",
    ] {
        let input = format!("0\r\n{allowed}: 5\r\n\r\n");
        assert!(decode_all(input.as_bytes()).is_ok(), "{input:?}");
    }
}

#[test]
fn bytes_after_the_body_stay_in_the_buffer() {
    let (payload, rest) =
        decode_all(b"3\r\nabc\r\n0\r\n\r\nPOST /next HTTP/1.1\r\n").expect("valid");
    assert_eq!(payload, b"abc");
    assert_eq!(&rest[..], b"POST /next HTTP/1.1\r\n");
    // Done is sticky and consumes nothing more.
    let mut buf = BytesMut::from(&b"0\r\n\r\nXYZ"[..]);
    let mut decoder = ChunkedDecoder::new();
    assert_eq!(decoder.decode(&mut buf), Ok(ChunkedStep::Done));
    assert_eq!(decoder.decode(&mut buf), Ok(ChunkedStep::Done));
    assert_eq!(&buf[..], b"XYZ");
}

#[test]
fn data_is_returned_as_it_arrives_and_never_empty() {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"a\r\n0123"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(ChunkedStep::Data(Bytes::from_static(b"0123")))
    );
    assert_eq!(decoder.decode(&mut buf), Ok(ChunkedStep::NeedMore));
    buf.extend_from_slice(b"456789\r\n2\r\nab\r\n0\r\n\r\n");
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(ChunkedStep::Data(Bytes::from_static(b"456789")))
    );
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(ChunkedStep::Data(Bytes::from_static(b"ab")))
    );
    assert!(!decoder.is_done());
    assert_eq!(decoder.decode(&mut buf), Ok(ChunkedStep::Done));
    assert!(decoder.is_done());
}

#[test]
fn chunk_size_line_over_the_limit_is_rejected() {
    let ok_ext = format!("1;{}", "e".repeat(MAX_CHUNK_SIZE_LINE - 2));
    assert_eq!(ok_ext.len(), MAX_CHUNK_SIZE_LINE);
    let input = format!("{ok_ext}\r\nx\r\n0\r\n\r\n");
    assert_eq!(decode_all(input.as_bytes()).expect("at the limit").0, b"x");

    let long = format!(
        "1;{}\r\nx\r\n0\r\n\r\n",
        "e".repeat(MAX_CHUNK_SIZE_LINE - 1)
    );
    assert!(decode_all(long.as_bytes()).is_err());
    // Also while the line is still incomplete.
    let mut buf = BytesMut::from(format!("1;{}", "e".repeat(MAX_CHUNK_SIZE_LINE)).as_bytes());
    assert!(ChunkedDecoder::new().decode(&mut buf).is_err());
    let mut buf = BytesMut::from(format!("1;{}\r", "e".repeat(MAX_CHUNK_SIZE_LINE - 2)).as_bytes());
    assert_eq!(
        ChunkedDecoder::new().decode(&mut buf),
        Ok(ChunkedStep::NeedMore)
    );
}

#[test]
fn trailer_section_over_the_limit_is_rejected() {
    // Build trailers totalling exactly MAX_TRAILER_SECTION bytes including the final CRLF.
    let line = format!("X: {}\r\n", "v".repeat(95)); // 100 bytes
    let mut trailers = line.repeat((MAX_TRAILER_SECTION - 2) / 100);
    let pad = MAX_TRAILER_SECTION - 2 - trailers.len();
    trailers.push_str(&format!("Y:{}\r\n", "p".repeat(pad - 4)));
    trailers.push_str("\r\n");
    assert_eq!(trailers.len(), MAX_TRAILER_SECTION);
    let ok = format!("0\r\n{trailers}");
    assert!(decode_all(ok.as_bytes()).is_ok());

    // One byte over, in every position the last line can take.
    let over = format!("0\r\nZ:\r\n{trailers}");
    assert!(decode_all(over.as_bytes()).is_err());
    let over = format!(
        "0\r\n{}\r\n",
        &trailers[..trailers.len() - 2].replace("Y:", "Y:q")
    );
    assert_eq!(over.len() - 3, MAX_TRAILER_SECTION + 1);
    assert!(decode_all(over.as_bytes()).is_err());
    let over = format!("0\r\nZ: z\r\n{trailers}");
    assert!(decode_all(over.as_bytes()).is_err());
    let endless = format!("0\r\n{}", line.repeat(MAX_TRAILER_SECTION / 100 + 1));
    let mut buf = BytesMut::from(endless.as_bytes());
    let mut decoder = ChunkedDecoder::new();
    assert!(decoder.decode(&mut buf).is_err());
}

#[test]
fn errors_are_sticky_and_explain_themselves() {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(&b"zz\r\n"[..]);
    let err = decoder.decode(&mut buf).expect_err("not hex");
    assert_eq!(err.reason(), "chunk size is not a hex number");
    assert_eq!(
        err.to_string(),
        "bad chunked body: chunk size is not a hex number"
    );
    buf.clear();
    buf.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(decoder.decode(&mut buf), Err(err));
}
