//! Fuzz the chunked body decoder: it must never panic, never return an
//! empty data piece, and always make progress or ask for more.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portico_proto::http1::{ChunkedDecoder, ChunkedStep};

fuzz_target!(|data: &[u8]| {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(data);
    for _ in 0..data.len() + 2 {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(ChunkedStep::Data(d)) => assert!(!d.is_empty(), "empty data piece"),
            Ok(ChunkedStep::NeedMore) | Ok(ChunkedStep::Done) | Err(_) => break,
        }
        assert!(buf.len() < before, "no progress");
    }
});
