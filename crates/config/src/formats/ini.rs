//! The ini reader, as uWSGI's `core/ini.c` reads: `[section]` headers,
//! `key = value` lines trimmed, `;` and `#` comments only at the start of a
//! line, no quoting, a key repeated for each value of a list, and a bare
//! `key` meaning "no value" (true for a switch).
//!
//! Lines outside the wanted section are skipped unread, as in uWSGI.

use super::{Entry, FormatError, note_section};

pub(super) fn parse(text: &str, section: &str) -> Result<Vec<Entry>, FormatError> {
    let mut entries = Vec::new();
    let mut found = Vec::new();
    let mut current: Option<&str> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let name = header.strip_suffix(']').ok_or_else(|| {
                FormatError::at(number, format!("expected \"[section]\", found \"{line}\""))
            })?;
            let name = name.trim();
            note_section(&mut found, name);
            current = Some(name);
            continue;
        }
        if current != Some(section) {
            continue;
        }
        match line.split_once('=') {
            Some((key, value)) => {
                let key = key.trim();
                if key.is_empty() || key.contains(char::is_whitespace) {
                    return Err(FormatError::at(
                        number,
                        format!("expected \"key = value\", found \"{line}\""),
                    ));
                }
                entries.push(Entry::new(key, Some(value.trim().to_string()), number));
            }
            None if line.contains(char::is_whitespace) => {
                return Err(FormatError::at(
                    number,
                    format!("expected \"key = value\", found \"{line}\""),
                ));
            }
            None => entries.push(Entry::new(line, None, number)),
        }
    }
    if !found.iter().any(|f| f == section) {
        return Err(FormatError::NoSection { found });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::kv;

    #[test]
    fn reads_only_the_wanted_section_trimmed_with_repeats_and_bare_keys() {
        let text = "top = ignored\n[other]\nsocket = :1\n[uwsgi]\n; comment\n  # comment\n\
                    socket = :2 \nsocket=:3\nmaster\nenv = A=b ; not a comment\nempty =\n";
        let e = parse(text, "uwsgi").expect("valid");
        assert_eq!(
            kv(&e),
            vec![
                ("socket", Some(":2"), 7),
                ("socket", Some(":3"), 8),
                ("master", None, 9),
                ("env", Some("A=b ; not a comment"), 10),
                ("empty", Some(""), 11),
            ]
        );
    }

    #[test]
    fn a_section_may_appear_twice_and_both_parts_count() {
        let e = parse("[uwsgi]\na=1\n[x]\nb=2\n[uwsgi]\nc=3\n", "uwsgi").expect("valid");
        assert_eq!(kv(&e), vec![("a", Some("1"), 2), ("c", Some("3"), 6)]);
    }

    #[test]
    fn a_line_of_words_without_equals_names_the_line() {
        let err = parse("[uwsgi]\nprocesses 4\n", "uwsgi").expect_err("no =");
        assert_eq!(
            err,
            FormatError::at(2, "expected \"key = value\", found \"processes 4\"")
        );
    }

    #[test]
    fn an_unclosed_header_is_an_error() {
        assert!(matches!(
            parse("[uwsgi\n", "uwsgi"),
            Err(FormatError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn a_missing_section_lists_the_sections_found() {
        assert_eq!(
            parse("[dev]\na=1\n[prod]\n[dev]\n", "uwsgi"),
            Err(FormatError::NoSection {
                found: vec!["dev".into(), "prod".into()]
            })
        );
    }
}
