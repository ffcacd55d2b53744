//! Entry points for the cargo-fuzz targets in `fuzz/` (hidden from the
//! docs; not an API for anything else). They run the real readers and the
//! real loader, with files read from memory ([`Memory`]) so a fuzz input
//! can never make the target read the machine's files or block on one.

use crate::files::Memory as MemoryFiles;
use crate::formats::{Format, FormatError};
use crate::{ConfigError, Loaded, expand, load};

pub use crate::files::Memory;

/// Longest value expansion may produce ([`expand::MAX_EXPANDED_VALUE`]).
pub const MAX_EXPANDED_VALUE: usize = expand::MAX_EXPANDED_VALUE;
/// Most bytes expansion may add to a whole configuration.
pub const MAX_EXPANDED_TOTAL: usize = load::MAX_EXPANDED_TOTAL;
/// Largest config file read.
pub const MAX_CONFIG_FILE: u64 = load::MAX_CONFIG_FILE;

/// Load `args` (the command line without the program name) as `portico`
/// does, with an empty environment and every file taken from `files`.
pub fn load_in_memory(args: &[&str], files: &MemoryFiles) -> Result<Loaded, ConfigError> {
    load::load_from(args.iter().copied(), &[], files)
}

/// One reader alone: `text` read as the format of a file ending in `.ext`
/// (`ini`, `xml`, `yaml`, `json`), section `section` (the default if
/// `None`): `(key, value, line)` entries, or the error's line (`None` for a
/// missing section) and message.
#[allow(clippy::type_complexity)]
pub fn read_entries(
    ext: &str,
    text: &str,
    section: Option<&str>,
) -> Result<Vec<(String, Option<String>, usize)>, (Option<usize>, String)> {
    let Some(format) = Format::of_option(ext) else {
        return Err((None, format!("no format for .{ext}")));
    };
    match format.parse(text, section) {
        Ok(entries) => Ok(entries
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()),
        Err(FormatError::Syntax { line, message, .. }) => Err((Some(line), message)),
        Err(FormatError::NoSection { found }) => Err((None, format!("no section; {found:?}"))),
    }
}

/// The `$()`, `@()` and `%()` passes over one value, as the loader runs
/// them: `env` for `$(NAME)`, `files` for `@(PATH)`, `vars` for `%(NAME)`;
/// `keep_unresolved` is the `log-format` rule (an unknown `%(name)` stays).
pub fn expand_value(
    value: &str,
    env: &[(&str, &str)],
    vars: &[(&str, &str)],
    files: &MemoryFiles,
    keep_unresolved: bool,
) -> Result<String, ConfigError> {
    let origin = "fuzz.ini:1";
    let find = |list: &[(&str, &str)], name: &str| {
        list.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let value = expand::env_pass(value, origin, |name| find(env, name))?;
    let value = expand::file_pass(&value, origin, files)?;
    let unresolved = if keep_unresolved {
        expand::Unresolved::Keep
    } else {
        expand::Unresolved::Fail
    };
    expand::placeholder_pass(&value, origin, unresolved, |name| find(vars, name))
}
