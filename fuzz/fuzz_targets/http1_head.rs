//! Fuzz the HTTP/1.1 request-head parser: any bytes, fed whole and in two
//! pieces, must give the same answer and never panic; an error leaves the
//! buffer untouched.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portico_proto::http1::{HeadLimits, parse_request_head};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits::default();
    let mut whole = BytesMut::from(data);
    let one_shot = parse_request_head(&mut whole, &limits).map(|h| h.map(|h| h.head_len));
    if one_shot.is_err() {
        assert_eq!(&whole[..], data, "an error must not consume bytes");
    }
    let split = data.len() / 2;
    let mut pieces = BytesMut::from(&data[..split]);
    let first = parse_request_head(&mut pieces, &limits);
    if let Ok(None) = first {
        pieces.extend_from_slice(&data[split..]);
        let second = parse_request_head(&mut pieces, &limits).map(|h| h.map(|h| h.head_len));
        if one_shot.is_ok() && second.is_ok() {
            assert_eq!(one_shot, second, "split input must parse like whole input");
        }
    }
});
