//! The config-file formats uWSGI reads (ini, xml, yaml, json), each reduced
//! to the same flat list of `key = value` [`Entry`]s for one section.
//!
//! These readers work on text only: they never open files, look options up
//! or expand placeholders (that is `load.rs`), so they can be table-tested.

mod ini;
mod json;
mod xml;
mod yaml;
mod yaml_scalar;

use std::path::Path;

/// One `key = value` of the chosen section, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    /// `None` for a key given without a value (`master` alone in ini,
    /// `<master/>`, `master:`), which uWSGI reads as true.
    pub value: Option<String>,
    /// 1-based line of the key.
    pub line: usize,
}

impl Entry {
    fn new(key: impl Into<String>, value: Option<String>, line: usize) -> Entry {
        Entry {
            key: key.into(),
            value,
            line,
        }
    }
}

/// Why a file could not be read as its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// Not well formed: where, and what was expected there.
    Syntax {
        line: usize,
        col: Option<usize>,
        message: String,
    },
    /// The file is well formed but has no such section; these are the ones it has.
    NoSection { found: Vec<String> },
}

impl FormatError {
    fn at(line: usize, message: impl Into<String>) -> FormatError {
        FormatError::Syntax {
            line,
            col: None,
            message: message.into(),
        }
    }
}

/// A config-file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Ini,
    Xml,
    Yaml,
    Json,
}

impl Format {
    /// The format of the option that loads a file (`ini`, `xml`, `yaml`, `json`).
    pub(crate) fn of_option(name: &str) -> Option<Format> {
        match name {
            "ini" => Some(Format::Ini),
            "xml" => Some(Format::Xml),
            "yaml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The format chosen by a file's extension, as uWSGI chooses it for a
    /// positional argument: `.ini`, `.xml`, `.yml`/`.yaml`, `.json`/`.js`.
    pub(crate) fn of_path(path: &str) -> Option<Format> {
        match Path::new(path).extension()?.to_str()? {
            "ini" => Some(Format::Ini),
            "xml" => Some(Format::Xml),
            "yml" | "yaml" => Some(Format::Yaml),
            "json" | "js" => Some(Format::Json),
            _ => None,
        }
    }

    /// What a section is called in this format, for messages.
    pub(crate) fn section_word(self) -> &'static str {
        match self {
            Format::Xml => "<uwsgi> element with id",
            _ => "section",
        }
    }

    /// The section read when none is named (`None` for XML: the first `<uwsgi>`).
    pub(crate) fn default_section(self) -> Option<&'static str> {
        match self {
            Format::Xml => None,
            _ => Some(DEFAULT_SECTION),
        }
    }

    /// Read `text` and return the entries of `section` (the default one if `None`).
    pub(crate) fn parse(
        self,
        text: &str,
        section: Option<&str>,
    ) -> Result<Vec<Entry>, FormatError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let named = section.or(self.default_section());
        match self {
            Format::Ini => ini::parse(text, named.unwrap_or(DEFAULT_SECTION)),
            Format::Xml => xml::parse(text, section),
            Format::Yaml => yaml::parse(text, named.unwrap_or(DEFAULT_SECTION)),
            Format::Json => json::parse(text, named.unwrap_or(DEFAULT_SECTION)),
        }
    }
}

/// The section every format reads by default, as in uWSGI.
pub(crate) const DEFAULT_SECTION: &str = "uwsgi";

/// Push `name` to `found` unless it is already there (sections may repeat).
fn note_section(found: &mut Vec<String>, name: &str) {
    if !found.iter().any(|f| f == name) {
        found.push(name.to_string());
    }
}

/// Entries as (key, value, line) tuples, for the readers' table tests.
#[cfg(test)]
pub(crate) fn kv(entries: &[Entry]) -> Vec<(&str, Option<&str>, usize)> {
    entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_deref(), e.line))
        .collect()
}
