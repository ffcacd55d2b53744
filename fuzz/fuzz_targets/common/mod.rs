//! Shared by the config fuzz targets: run one input through a reader and
//! the loader, on a thread with a small stack, and check what holds for
//! every input.
//!
//! Depth and size bugs need big inputs, which libFuzzer reaches slowly (it
//! grows its length limit from a few bytes), so an input may be amplified
//! ([`amplified`]): a first byte below 0x10 repeats the rest 2^byte times,
//! and `<a>` or `set-placeholder = a=%(a)%(a)` a few thousand times is
//! a few bytes of input. The small stack (256 KiB) makes unbounded
//! recursion crash at those sizes, where the main thread's 8 MiB would hide
//! it until tens of thousands of levels (issue 16 item 4: 20,000 nested XML
//! elements aborted the real binary). Memory and time blow-ups (item 5)
//! show up through libFuzzer's `-rss_limit_mb`, `-malloc_limit_mb` and
//! `-timeout`, and the size checks below. Both bugs, with the limits taken
//! out, are found in seconds this way (fuzz/README.md).

#![allow(dead_code)] // each target uses its part

use portico_config::fuzz::{
    MAX_CONFIG_FILE, MAX_EXPANDED_TOTAL, MAX_EXPANDED_VALUE, Memory, load_in_memory, read_entries,
};

const STACK: usize = 256 * 1024;

/// Largest amplified input (256 KiB).
const MAX_AMPLIFIED: usize = 256 * 1024;

/// `data`, or when its first byte `n` is below 0x10 the rest repeated 2^n
/// times (at most [`MAX_AMPLIFIED`] bytes).
pub fn amplified(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match data.split_first() {
        Some((&n, rest)) if n < 0x10 && !rest.is_empty() => {
            let times = (1usize << n).min(MAX_AMPLIFIED / rest.len()).max(1);
            std::borrow::Cow::Owned(rest.repeat(times))
        }
        _ => std::borrow::Cow::Borrowed(data),
    }
}

/// Read `data` as a config file of format `ext`: the reader alone, then the
/// whole loader (magic variables, `$()`, `@()`, `%()`, includes).
pub fn check_config(ext: &'static str, data: &[u8]) {
    let data = amplified(data);
    let Ok(text) = std::str::from_utf8(&data) else {
        return;
    };
    let text = text.to_string();
    let run = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || check_text(ext, &text));
    match run.map(|h| h.join()) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => panic!("cannot start the fuzz thread: {e}"),
    }
}

fn check_text(ext: &str, text: &str) {
    let lines = text.split('\n').count();
    match read_entries(ext, text, None) {
        Ok(entries) => {
            for (key, value, line) in &entries {
                assert!(
                    (1..=lines).contains(line),
                    "entry {key:?} on line {line} of {lines}"
                );
                assert!(key.len() <= text.len());
                assert!(value.as_ref().is_none_or(|v| v.len() <= text.len()));
            }
        }
        Err((Some(line), message)) => {
            assert!(
                (1..=lines + 1).contains(&line),
                "error on line {line} of {lines}: {message}"
            );
            assert!(!message.is_empty());
        }
        Err((None, _)) => {}
    }
    assert_eq!(
        read_entries(ext, text, None),
        read_entries(ext, text, None),
        "not deterministic"
    );
    // The loader: the file as a positional argument, and once more
    // included from an ini, so includes (of itself, too) are exercised.
    let name = format!("f.{ext}");
    let files = Memory::new()
        .with(&name, text.as_bytes())
        .with("other.ini", b"[uwsgi]\nset-placeholder = o=%(o)%(o)\n");
    if let Ok(loaded) = load_in_memory(&[&name], &files) {
        let total: usize = loaded.settings.iter().map(|s| s.value.len()).sum();
        assert!(
            total as u64 <= MAX_EXPANDED_TOTAL as u64 + MAX_CONFIG_FILE,
            "expansion produced {total} bytes"
        );
        for s in &loaded.settings {
            assert!(
                s.value.len() <= MAX_EXPANDED_VALUE.max(text.len()),
                "{} has {} bytes",
                s.origin,
                s.value.len()
            );
            assert!(!s.origin.is_empty());
        }
    }
}
