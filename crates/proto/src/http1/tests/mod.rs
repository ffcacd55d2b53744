//! Unit tests of the HTTP/1 codecs, split by concern: head rules, chunked rules, response heads,
//! byte-by-byte partial input, and a deterministic mutation loop that must never panic.
//! Helpers shared by those files live here.

mod chunked;
mod head_framing;
mod head_syntax;
mod no_panic;
mod partial;
mod response;

use bytes::{Bytes, BytesMut};

use super::{ChunkedDecoder, ChunkedError, ChunkedStep, HeadError, HeadLimits, RequestHead};

/// Parses `input` with default limits.
fn parse(input: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    parse_with(input, &HeadLimits::default())
}

fn parse_with(input: &[u8], limits: &HeadLimits) -> Result<Option<RequestHead>, HeadError> {
    let mut buf = BytesMut::from(input);
    super::parse_request_head(&mut buf, limits)
}

/// Parses a complete, valid head; fails the test with the input otherwise.
fn parse_ok(input: &[u8]) -> RequestHead {
    match parse(input) {
        Ok(Some(head)) => head,
        other => panic!(
            "expected a head for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// The status of the error `input` must produce.
fn status_of(input: &[u8], limits: &HeadLimits) -> u16 {
    match parse_with(input, limits) {
        Err(e) => e.status(),
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// Checks a table of `(input, status)` rejections with default limits.
fn assert_rejected(cases: &[(&[u8], u16)]) {
    for (input, want) in cases {
        assert_eq!(
            status_of(input, &HeadLimits::default()),
            *want,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Decodes a whole chunked body in one buffer: the payload and what is left over.
fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Bytes), ChunkedError> {
    let mut buf = BytesMut::from(input);
    let mut decoder = ChunkedDecoder::new();
    let mut payload = Vec::new();
    loop {
        match decoder.decode(&mut buf)? {
            ChunkedStep::Data(data) => {
                assert!(!data.is_empty(), "Data must never be empty");
                payload.extend_from_slice(&data);
            }
            ChunkedStep::NeedMore => {
                return Err(ChunkedError::new("test: body ended before Done"));
            }
            ChunkedStep::Done => {
                assert!(decoder.is_done());
                return Ok((payload, buf.freeze()));
            }
        }
    }
}
