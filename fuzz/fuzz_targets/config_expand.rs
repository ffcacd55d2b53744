//! Fuzz the expansion passes alone (`$(NAME)`, `@(PATH)`, `%(NAME)` and
//! `%(a + b)` math) with fuzzer-chosen variables, and chains of
//! placeholders through the loader (`set-placeholder = aN=%(aN-1)…`, the
//! doubling that ran for seconds and hundreds of MB before the limits):
//! never a panic, an overflow in the math, or a value past the limit.
//!
//! Input: lines (amplified as the config targets' are: `common::amplified`).
//! The first is the value to expand; the others are `NAME=VALUE` variables
//! (also set as `$()` environment variables). Then every line but the
//! first becomes a `set-placeholder` of an ini file.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use portico_config::fuzz::{
    MAX_EXPANDED_TOTAL, MAX_EXPANDED_VALUE, Memory, expand_value, load_in_memory,
};

fuzz_target!(|data: &[u8]| {
    let data = common::amplified(data);
    let Ok(text) = std::str::from_utf8(&data) else {
        return;
    };
    let mut lines = text.split('\n');
    let value = lines.next().unwrap_or_default();
    let vars: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once('=')).collect();
    let files = Memory::new()
        .with("a", b"contents of a\n")
        .with("big", &vec![b'b'; 70 * 1024]);
    for keep in [false, true] {
        if let Ok(out) = expand_value(value, &vars, &vars, &files, keep) {
            assert!(out.len() <= MAX_EXPANDED_VALUE.max(value.len()));
        }
    }
    let mut ini = String::from("[uwsgi]\n");
    for (name, v) in &vars {
        ini.push_str(&format!("set-placeholder = {name}={v}\n"));
    }
    ini.push_str(&format!("set-placeholder = result={value}\n"));
    let files = files.with("f.ini", ini.as_bytes());
    if let Ok(loaded) = load_in_memory(&["f.ini"], &files) {
        let total: usize = loaded.settings.iter().map(|s| s.value.len()).sum();
        assert!(total <= MAX_EXPANDED_TOTAL + ini.len());
    }
});
