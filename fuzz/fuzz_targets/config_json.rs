//! Fuzz the uWSGI-style json config reader and the loader behind it (magic
//! variables, `$()`, `@()`, `%()`, includes): never a panic, a stack
//! overflow, unbounded memory or time; lines within the file; values within
//! the expansion limits. Files come from memory (`portico_config::fuzz`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::check_config("json", data));
