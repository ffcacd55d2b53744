//! Fuzz the nginx.conf reader (tokens, blocks, the directive table, `-g`):
//! it must never panic, must give the same answer twice, and a tree it
//! returns dumps the input verbatim. Inputs that name `include` are skipped:
//! they would read whatever files the pattern names on this machine.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use portico_config::nginx::{dump, read_text};

fuzz_target!(|data: &[u8]| {
    if data.windows(7).any(|w| w.eq_ignore_ascii_case(b"include")) {
        return;
    }
    // the first line, if any, is the -g text
    let (globals, text) = match data.iter().position(|&b| b == b'\n') {
        Some(i) if data.first() == Some(&b'!') => {
            (std::str::from_utf8(&data[1..i]).ok(), &data[i + 1..])
        }
        _ => (None, data),
    };
    let conf = Path::new("/nonexistent/portico-fuzz/nginx.conf");
    let first = read_text(conf, text, globals);
    let second = read_text(conf, text, globals);
    assert_eq!(first, second, "not deterministic");
    if let Ok(tree) = first {
        assert!(dump(&tree).contains(&*String::from_utf8_lossy(text)));
    }
});
