//! The JSON reader, as uWSGI's `core/json.c` reads: `{"uwsgi": {...}}` (or
//! another top-level key as the section); in it, each key is an option:
//! strings as they are, numbers as written, `true` as true, `false` and
//! `null` as false, and an array as the key repeated once per element.
//!
//! `serde_json` parses (strict RFC 8259; a skipped `RawValue` is walked
//! without recursion, so deep nesting cannot exhaust the stack);
//! objects are read through a visitor that keeps every member in file order,
//! duplicates included (uWSGI's jansson-free reader does), and values stay
//! [`RawValue`]s, so numbers are kept as written and each value's line is
//! found from where its text sits in the file.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{Entry, FormatError};

/// An object's members in file order, duplicates kept.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// What kind of JSON value `raw` is, for messages and dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    True,
    False,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    fn of(raw: &RawValue) -> Kind {
        // A RawValue is valid JSON without surrounding whitespace.
        match raw.get().as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't') => Kind::True,
            Some(b'f') => Kind::False,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::True | Kind::False => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

pub(super) fn parse(text: &str, section: &str) -> Result<Vec<Entry>, FormatError> {
    let root: &RawValue = serde_json::from_str(text).map_err(|e| syntax(text, &e))?;
    let line = |raw: &RawValue| line_of(text, raw);
    if Kind::of(root) != Kind::Object {
        return Err(FormatError::at(
            1,
            format!(
                "expected an object such as {{\"uwsgi\": {{...}}}}, found {}",
                Kind::of(root).words()
            ),
        ));
    }
    let sections = members(text, root)?;
    let mut found = Vec::new();
    let mut entries = Vec::new();
    let mut seen = false;
    for (name, value) in sections {
        super::note_section(&mut found, &name);
        if name != section {
            continue;
        }
        seen = true;
        if Kind::of(value) != Kind::Object {
            return Err(FormatError::at(
                line(value),
                format!(
                    "expected an object for \"{name}\", found {}",
                    Kind::of(value).words()
                ),
            ));
        }
        for (key, value) in members(text, value)? {
            if Kind::of(value) == Kind::Array {
                let items: Vec<&RawValue> =
                    serde_json::from_str(value.get()).map_err(|e| syntax(text, &e))?;
                for item in items {
                    entries.push(Entry::new(
                        key.clone(),
                        Some(scalar(text, &key, item)?),
                        line(item),
                    ));
                }
            } else {
                entries.push(Entry::new(
                    key.clone(),
                    Some(scalar(text, &key, value)?),
                    line(value),
                ));
            }
        }
    }
    if !seen {
        return Err(FormatError::NoSection { found });
    }
    Ok(entries)
}

/// The members of an object value, in order.
fn members<'a>(text: &str, raw: &'a RawValue) -> Result<Vec<(String, &'a RawValue)>, FormatError> {
    serde_json::from_str::<Members<'a>>(raw.get())
        .map(|m| m.0)
        .map_err(|e| syntax(text, &e))
}

fn scalar(text: &str, key: &str, value: &RawValue) -> Result<String, FormatError> {
    Ok(match Kind::of(value) {
        Kind::Null | Kind::False => "false".into(),
        Kind::True => "true".into(),
        Kind::Number => value.get().to_string(),
        Kind::String => serde_json::from_str(value.get()).map_err(|e| syntax(text, &e))?,
        other => {
            return Err(FormatError::at(
                line_of(text, value),
                format!(
                    "expected a string, number, boolean or array of them for \"{key}\", found {}",
                    other.words()
                ),
            ));
        }
    })
}

/// The 1-based line where `raw` starts; it is a slice of `text`.
fn line_of(text: &str, raw: &RawValue) -> usize {
    let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    let before = text.get(..offset).unwrap_or("");
    before.matches('\n').count() + 1
}

/// serde_json's error in this reader's words: "expected X, found Y" at the
/// line and column it names.
fn syntax(text: &str, e: &serde_json::Error) -> FormatError {
    let (line, col) = (e.line(), e.column());
    let full = e.to_string();
    let what = full
        .strip_suffix(&format!(" at line {line} column {col}"))
        .unwrap_or(&full);
    let expected = match what {
        "key must be a string" => "expected a key in double quotes".to_string(),
        "trailing characters" => "expected the end of the file".to_string(),
        "trailing comma" => "expected another value after \",\"".to_string(),
        "expected value" => "expected a value".to_string(),
        "expected ident" => "expected true, false or null".to_string(),
        w if w.starts_with("EOF while parsing") => {
            return FormatError::Syntax {
                line,
                col: Some(col),
                message: "expected more, found the end of the file".into(),
            };
        }
        w => w.replace('`', "\""),
    };
    // serde_json's column is the byte it stopped at (1-based); name it.
    let at = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.get(col.saturating_sub(1)..))
        .and_then(|rest| rest.chars().next());
    let found = match at {
        None => "the end of the line".to_string(),
        Some('"') => "a string".to_string(),
        Some(c) => format!("'{c}'"),
    };
    FormatError::Syntax {
        line,
        col: Some(col),
        message: format!("{expected}, found {found}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::kv;

    #[test]
    fn converts_scalars_and_repeats_arrays_as_uwsgi_does() {
        let text = "{\"other\": {\"x\": 1},\n \"uwsgi\": {\n  \"socket\": [\"a\", \"b\"],\n  \
                    \"master\": true,\n  \"vacuum\": false, \"lazy-apps\": null,\n  \
                    \"processes\": 4,\n  \"env\": \"A=\\u00e9\\n\"\n }}";
        assert_eq!(
            kv(&parse(text, "uwsgi").expect("valid")),
            vec![
                ("socket", Some("a"), 3),
                ("socket", Some("b"), 3),
                ("master", Some("true"), 4),
                ("vacuum", Some("false"), 5),
                ("lazy-apps", Some("false"), 5),
                ("processes", Some("4"), 6),
                ("env", Some("A=\u{e9}\n"), 7),
            ]
        );
    }

    #[test]
    fn invalid_json_names_line_column_and_what_was_expected() {
        let text = "{\"uwsgi\": {\n  \"master\": true\n  \"processes\": 4\n}}";
        assert_eq!(
            parse(text, "uwsgi"),
            Err(FormatError::Syntax {
                line: 3,
                col: Some(3),
                message: "expected \",\" or \"}\", found a string".into()
            })
        );
        assert_eq!(
            parse("{\"uwsgi\": {\"a\": 1,}}", "uwsgi"),
            Err(FormatError::Syntax {
                line: 1,
                col: Some(19),
                message: "expected a key in double quotes, found '}'".into()
            })
        );
        assert_eq!(
            parse("{\"uwsgi\": {}} x", "uwsgi"),
            Err(FormatError::Syntax {
                line: 1,
                col: Some(15),
                message: "expected the end of the file, found 'x'".into()
            })
        );
        assert_eq!(
            parse("[1]", "uwsgi"),
            Err(FormatError::Syntax {
                line: 1,
                col: None,
                message: "expected an object such as {\"uwsgi\": {...}}, found an array".into()
            })
        );
        assert_eq!(
            parse("{\"uwsgi\": {\"a\": {\"b\": 1}}}", "uwsgi"),
            Err(FormatError::Syntax {
                line: 1,
                col: None,
                message:
                    "expected a string, number, boolean or array of them for \"a\", found an object"
                        .into()
            })
        );
    }

    #[test]
    fn a_missing_section_lists_the_top_level_keys() {
        assert_eq!(
            parse("{\"dev\": {}}", "uwsgi"),
            Err(FormatError::NoSection {
                found: vec!["dev".into()]
            })
        );
    }

    #[test]
    fn duplicate_keys_stay_in_order_and_numbers_as_written() {
        let text = "{\"uwsgi\": {\"env\": \"A=1\", \"limit\": 1.50,\n\"env\": \"B=2\", \
                    \"big\": 123456789012345678901234567890, \"e\": -1E+3},\n\
                    \"uwsgi\": {\"env\": \"C=3\"}}";
        assert_eq!(
            kv(&parse(text, "uwsgi").expect("valid")),
            vec![
                ("env", Some("A=1"), 1),
                ("limit", Some("1.50"), 1),
                ("env", Some("B=2"), 2),
                ("big", Some("123456789012345678901234567890"), 2),
                ("e", Some("-1E+3"), 2),
                ("env", Some("C=3"), 3),
            ]
        );
    }

    /// serde_json skips a `RawValue` without recursion, and this reader
    /// descends three levels only: deep nesting is an error, not a crash.
    #[test]
    fn deep_nesting_fails_cleanly_not_a_crash() {
        let open = format!("{{\"uwsgi\": {{\"a\": {}", "[".repeat(100_000));
        assert_eq!(
            parse(&open, "uwsgi"),
            Err(FormatError::Syntax {
                line: 1,
                col: Some(open.len()),
                message: "expected more, found the end of the file".into()
            })
        );
        let closed = format!("{open}{}}}}}", "]".repeat(100_000));
        assert_eq!(
            parse(&closed, "uwsgi"),
            Err(FormatError::at(
                1,
                "expected a string, number, boolean or array of them for \"a\", found an array"
            ))
        );
    }

    #[test]
    fn what_rfc_8259_forbids_is_refused() {
        for bad in [
            "{\"uwsgi\": {\"a\": 01}}",
            "{\"uwsgi\": {\"a\": \"\\x\"}}",
            "{\"uwsgi\": {\"a\": \"\\ud800\"}}",
            "{\"uwsgi\": {\"a\": 'x'}}",
            "{\"uwsgi\": {\"a\": \"tab\there\"}}",
        ] {
            assert!(
                matches!(
                    parse(bad, "uwsgi"),
                    Err(FormatError::Syntax {
                        line: 1,
                        col: Some(_),
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
