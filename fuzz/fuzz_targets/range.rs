//! Fuzz the Range header parser (`portico_proto::http1::parse_ranges`):
//! never a panic or overflow, every range inside the file and in order
//! (start ≤ end < size), their sizes adding up to at most the file's (else
//! the whole file is sent), and the same answer twice.
//!
//! Input: 8 bytes of file size (little endian), then the header value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_proto::http1::{Ranges, parse_ranges};

fuzz_target!(|data: &[u8]| {
    let Some((size, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    // Small sizes as often as large ones: the edges are near 0.
    let size = match u64::from_le_bytes(*size) {
        s if s & 1 == 0 => (s >> 1) % 64,
        s => s >> 1,
    };
    match parse_ranges(header, size) {
        Ranges::Partial(parts) => {
            assert!(!parts.is_empty());
            let mut total: u128 = 0;
            for &(start, end) in &parts {
                assert!(start <= end && end < size, "{start}-{end} of {size}");
                total += u128::from(end - start + 1);
            }
            assert!(total <= u128::from(size), "{total} bytes of {size}");
        }
        Ranges::Full | Ranges::Unsatisfiable => {}
    }
    assert_eq!(parse_ranges(header, size), parse_ranges(header, size));
});
