//! Fuzz the HTTP/1.x response-head parser: any bytes, fed whole and in two
//! pieces, must give the same answer and never panic; an error leaves the
//! buffer untouched; a head consumes exactly its `head_len`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portico_proto::http1::{ResponseLimits, parse_response_head};

fuzz_target!(|data: &[u8]| {
    let limits = ResponseLimits::default();
    let head_request = data.first().is_some_and(|b| b & 1 == 1);
    let mut whole = BytesMut::from(data);
    let one_shot = parse_response_head(&mut whole, &limits, head_request)
        .map(|h| h.map(|h| (h.head_len, h.status, h.framing, h.keep_alive)));
    match one_shot {
        Err(_) => assert_eq!(&whole[..], data, "an error must not consume bytes"),
        Ok(Some((len, ..))) => assert_eq!(len + whole.len(), data.len()),
        Ok(None) => assert_eq!(whole.len(), data.len()),
    }
    let split = data.len() / 2;
    let mut pieces = BytesMut::from(&data[..split]);
    if let Ok(None) = parse_response_head(&mut pieces, &limits, head_request) {
        pieces.extend_from_slice(&data[split..]);
        let second = parse_response_head(&mut pieces, &limits, head_request)
            .map(|h| h.map(|h| (h.head_len, h.status, h.framing, h.keep_alive)));
        if one_shot.is_ok() && second.is_ok() {
            assert_eq!(one_shot, second, "split input must parse like whole input");
        }
    }
});
