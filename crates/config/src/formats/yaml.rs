//! The YAML reader: the flat subset uWSGI's embedded parser (`core/yaml.c`)
//! reads, made strict. A top-level `section:` line (default `uwsgi:`) holds
//! indented `key: value` lines, all at one indentation; `#` comments; a key
//! repeated for each value of a list.
//!
//! Where uWSGI's parser silently ends the section at a `- item` line or a
//! flow collection (dropping every later key), this one reads block lists
//! (`key:` then `- item` lines) and flow lists (`key: [a, b]`) as repeated
//! keys, and reports anything else it cannot read with its line.

use super::{Entry, FormatError, note_section, yaml_scalar};

pub(super) fn parse(text: &str, section: &str) -> Result<Vec<Entry>, FormatError> {
    let mut entries = Vec::new();
    let mut found = Vec::new();
    // The current top-level section, and the indentation of its keys (from its first key).
    let mut current: Option<String> = None;
    let mut key_indent: Option<(usize, usize)> = None; // (spaces, line that set it)
    // A `key:` with no value yet: list items may follow.
    let mut open_key: Option<Entry> = None;
    let mut list_items = 0;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = strip_comment(raw).trim_end();
        let content = line.trim_start();
        if content.is_empty() || line == "---" || line == "..." {
            continue;
        }
        let indent_text = &line[..line.len() - content.len()];
        if indent_text.contains('\t') {
            return Err(FormatError::at(
                number,
                "bad indentation: expected spaces, found a tab",
            ));
        }
        let indent = indent_text.len();
        let wanted = current.as_deref() == Some(section);

        if let Some(item) = content
            .strip_prefix("- ")
            .or((content == "-").then_some(""))
        {
            let Some(key) = open_key.as_ref() else {
                return Err(FormatError::at(
                    number,
                    format!(
                        "expected \"key: value\", found the list item \"{content}\" with no \"key:\" before it"
                    ),
                ));
            };
            if indent == 0 {
                return Err(FormatError::at(
                    number,
                    "bad indentation: a list item must be indented under its key",
                ));
            }
            if wanted {
                entries.push(Entry::new(
                    key.key.clone(),
                    Some(scalar(item, number)?),
                    number,
                ));
            }
            list_items += 1;
            continue;
        }
        // Any other line closes a pending `key:`; with no items it is a bare key.
        if let Some(key) = open_key.take().filter(|_| list_items == 0 && wanted) {
            entries.push(key);
        }
        list_items = 0;

        let (key, value) = split_key(content).ok_or_else(|| {
            FormatError::at(
                number,
                format!("expected \"key: value\", found \"{content}\""),
            )
        })?;
        if indent == 0 {
            if !value.is_empty() {
                return Err(FormatError::at(
                    number,
                    format!("expected a section such as \"uwsgi:\", found \"{content}\""),
                ));
            }
            note_section(&mut found, &key);
            current = Some(key);
            key_indent = None;
            continue;
        }
        if current.is_none() {
            return Err(FormatError::at(
                number,
                "bad indentation: expected a section such as \"uwsgi:\" first",
            ));
        }
        match key_indent {
            None => key_indent = Some((indent, number)),
            Some((spaces, first)) if spaces != indent => {
                return Err(FormatError::at(
                    number,
                    format!(
                        "bad indentation: expected {spaces} spaces like line {first}, found {indent}"
                    ),
                ));
            }
            Some(_) => {}
        }
        if value.is_empty() {
            open_key = Some(Entry::new(key, None, number));
            continue;
        }
        if !wanted {
            continue;
        }
        if let Some(inner) = value.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| {
                FormatError::at(
                    number,
                    format!("expected \"]\" to close the list \"{value}\""),
                )
            })?;
            for item in yaml_scalar::flow_items(inner) {
                entries.push(Entry::new(key.clone(), Some(scalar(item, number)?), number));
            }
        } else if value.starts_with('{') || value.starts_with('|') || value.starts_with('>') {
            return Err(FormatError::at(
                number,
                format!(
                    "expected a plain value for \"{key}\", found \"{value}\" (nested mappings and block scalars are not supported)"
                ),
            ));
        } else {
            entries.push(Entry::new(key, Some(scalar(value, number)?), number));
        }
    }
    if let Some(key) = open_key.filter(|_| list_items == 0 && current.as_deref() == Some(section)) {
        entries.push(key);
    }
    if !found.iter().any(|f| f == section) {
        return Err(FormatError::NoSection { found });
    }
    Ok(entries)
}

/// `key: value` (or `key:`) → (key, value); the colon must end the key.
fn split_key(content: &str) -> Option<(String, &str)> {
    let (key, value) = match content.find(": ") {
        Some(i) if !content[..i].contains(['"', '\'']) || is_quoted(&content[..i]) => {
            (&content[..i], content[i + 2..].trim())
        }
        _ => (content.strip_suffix(':')?, ""),
    };
    let key = unquote(key.trim());
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some((key.to_string(), value))
}

fn is_quoted(s: &str) -> bool {
    s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
}

fn unquote(s: &str) -> &str {
    if is_quoted(s) { &s[1..s.len() - 1] } else { s }
}

/// A scalar's value (`yaml_scalar`), or the error on `line`.
fn scalar(value: &str, line: usize) -> Result<String, FormatError> {
    yaml_scalar::scalar(value).map_err(|message| FormatError::at(line, message))
}

/// The line without a `#` comment.
fn strip_comment(line: &str) -> &str {
    match yaml_scalar::comment_start(line) {
        Some(i) => &line[..i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::kv;

    #[test]
    fn reads_flat_keys_lists_quotes_and_comments() {
        let text = "# top\nother:\n  socket: :1\nuwsgi:\n  socket: 127.0.0.1:3031  # uwsgi\n  \
                    master:\n  env:\n    - A=1\n    - \"B=2 # kept\"\n  pythonpath: [a, 'b']\n  \
                    module: app:application\n";
        assert_eq!(
            kv(&parse(text, "uwsgi").expect("valid")),
            vec![
                ("socket", Some("127.0.0.1:3031"), 5),
                ("master", None, 6),
                ("env", Some("A=1"), 8),
                ("env", Some("B=2 # kept"), 9),
                ("pythonpath", Some("a"), 10),
                ("pythonpath", Some("b"), 10),
                ("module", Some("app:application"), 11),
            ]
        );
    }

    #[test]
    fn a_key_indented_differently_from_its_siblings_names_both_lines() {
        let text = "uwsgi:\n  master: true\n    processes: 4\n";
        assert_eq!(
            parse(text, "uwsgi"),
            Err(FormatError::at(
                3,
                "bad indentation: expected 2 spaces like line 2, found 4"
            ))
        );
    }

    #[test]
    fn tabs_top_level_values_and_lines_without_colon_are_errors() {
        assert_eq!(
            parse("uwsgi:\n\tmaster: true\n", "uwsgi"),
            Err(FormatError::Syntax {
                line: 2,
                col: None,
                message: "bad indentation: expected spaces, found a tab".into()
            })
        );
        assert_eq!(
            parse("socket: :1\n", "uwsgi"),
            Err(FormatError::Syntax {
                line: 1,
                col: None,
                message: "expected a section such as \"uwsgi:\", found \"socket: :1\"".into()
            })
        );
        assert_eq!(
            parse("uwsgi:\n  master true\n", "uwsgi"),
            Err(FormatError::at(
                2,
                "expected \"key: value\", found \"master true\""
            ))
        );
        assert_eq!(
            parse("uwsgi:\n  env: {a: 1}\n", "uwsgi"),
            Err(FormatError::Syntax { line: 2, col: None, message: "expected a plain value for \"env\", found \"{a: 1}\" (nested mappings and block scalars are not supported)".into() })
        );
    }

    #[test]
    fn a_missing_section_lists_the_sections_found() {
        assert_eq!(
            parse("dev:\n  master: 1\n", "uwsgi"),
            Err(FormatError::NoSection {
                found: vec!["dev".into()]
            })
        );
    }
}
