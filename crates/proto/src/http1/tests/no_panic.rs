//! A deterministic mutation loop: thousands of mangled variants of a few seed requests
//! go through the head parser, the chunked decoder and percent-decoding. Nothing may
//! panic, and every outcome must be consistent (errors carry a known status, Data is
//! never empty, buffers only shrink). Not a fuzzer, but it catches the obvious slips.

use crate::http1::{ChunkedDecoder, ChunkedStep, HeadLimits, parse_request_head};
use crate::percent::percent_decode;
use bytes::BytesMut;

const SEEDS: &[&[u8]] = &[
    b"GET /a%20b?c=d HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\"y\"\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"POST http://h/p HTTP/1.0\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
];

/// Bytes that matter to the grammar, so mutations hit interesting paths often.
const INTERESTING: &[u8] = b"\r\n \t:;,=\"\\%?#/*0129afAFxX\x00\x7f\x80\xff";

/// xorshift64*: small, deterministic, good enough to pick mutations.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

pub(super) fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if at < input.len() => input[at] = INTERESTING[rng.below(INTERESTING.len())],
            1 => input.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < input.len() => {
                input.remove(at);
            }
            3 if at < input.len() => input[at] = (rng.next() & 0xff) as u8,
            4 => input.truncate(at),
            _ => {
                let end = (at + rng.below(16)).min(input.len());
                let copy = input[at..end].to_vec();
                let to = rng.below(input.len() + 1);
                input.splice(to..to, copy);
            }
        }
    }
}

fn exercise(input: &[u8], limits: &HeadLimits) {
    let mut buf = BytesMut::from(input);
    let _ = percent_decode(input);
    for _ in 0..4 {
        let before = buf.len();
        match parse_request_head(&mut buf, limits) {
            Ok(Some(head)) => {
                assert_eq!(before - buf.len(), head.head_len);
                let _ = percent_decode(&head.path);
                if head.framing == crate::http1::BodyFraming::Chunked {
                    let mut decoder = ChunkedDecoder::new();
                    loop {
                        let len = buf.len();
                        match decoder.decode(&mut buf) {
                            Ok(ChunkedStep::Data(d)) => assert!(!d.is_empty()),
                            Ok(ChunkedStep::NeedMore) | Err(_) => return,
                            Ok(ChunkedStep::Done) => break,
                        }
                        assert!(buf.len() < len, "decoder made no progress");
                    }
                }
            }
            Ok(None) => return,
            Err(e) => {
                assert!(matches!(e.status(), 400 | 414 | 431 | 501 | 505), "{e}");
                assert_eq!(buf.len(), before, "errors must not consume");
                return;
            }
        }
    }
}

#[test]
fn mutated_requests_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let small = HeadLimits {
        max_request_line: 24,
        max_field: 16,
        max_fields: 3,
        max_head: 96,
    };
    for round in 0..20_000 {
        let mut input = SEEDS[round % SEEDS.len()].to_vec();
        mutate(&mut rng, &mut input);
        exercise(&input, &HeadLimits::default());
        exercise(&input, &small);
        // The chunked decoder on its own, on the mutated tail of the chunked seed.
        let mut buf = BytesMut::from(&input[input.len() / 2..]);
        let mut decoder = ChunkedDecoder::new();
        for _ in 0..64 {
            match decoder.decode(&mut buf) {
                Ok(ChunkedStep::Data(d)) => assert!(!d.is_empty()),
                _ => break,
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..5_000 {
        let len = rng.below(200);
        let input: Vec<u8> = (0..len)
            .map(|_| INTERESTING[rng.below(INTERESTING.len())])
            .collect();
        exercise(&input, &HeadLimits::default());
        let mut buf = BytesMut::from(&input[..]);
        let _ = ChunkedDecoder::new().decode(&mut buf);
    }
}
