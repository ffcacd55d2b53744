//! The JSON reader, as uWSGI's `core/json.c` reads: `{"uwsgi": {...}}` (or
//! another top-level key as the section); in it, each key is an option:
//! strings as they are, numbers as written, `true` as true, `false` and
//! `null` as false, and an array as the key repeated once per element.
//!
//! A small strict RFC 8259 parser; errors carry line and column.

use super::{Entry, FormatError};

/// A parsed value, with the line where it starts.
#[derive(Debug)]
enum Value {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    String(String),
    Array(Vec<(Value, usize)>),
    /// Members in file order (duplicates kept): (key, value, line of the key).
    Object(Vec<(String, Value, usize)>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Deepest nesting accepted; a config needs three levels.
const MAX_DEPTH: usize = 64;

pub(super) fn parse(text: &str, section: &str) -> Result<Vec<Entry>, FormatError> {
    let mut p = Parser {
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.ws();
    let root = p.value(0)?;
    p.ws();
    if p.pos < p.bytes.len() {
        return p.err("expected the end of the file");
    }
    let Value::Object(sections) = root else {
        return Err(FormatError::at(
            1,
            format!(
                "expected an object such as {{\"uwsgi\": {{...}}}}, found {}",
                root.kind()
            ),
        ));
    };
    let mut found = Vec::new();
    let mut entries = Vec::new();
    let mut seen = false;
    for (name, value, line) in sections {
        super::note_section(&mut found, &name);
        if name != section {
            continue;
        }
        seen = true;
        let Value::Object(members) = value else {
            return Err(FormatError::at(
                line,
                format!("expected an object for \"{name}\", found {}", value.kind()),
            ));
        };
        for (key, value, line) in members {
            match value {
                Value::Array(items) => {
                    for (item, item_line) in items {
                        entries.push(Entry::new(
                            key.clone(),
                            Some(scalar(&key, item, item_line)?),
                            item_line,
                        ));
                    }
                }
                other => entries.push(Entry::new(
                    key.clone(),
                    Some(scalar(&key, other, line)?),
                    line,
                )),
            }
        }
    }
    if !seen {
        return Err(FormatError::NoSection { found });
    }
    Ok(entries)
}

fn scalar(key: &str, value: Value, line: usize) -> Result<String, FormatError> {
    Ok(match value {
        Value::Null | Value::Bool(false) => "false".into(),
        Value::Bool(true) => "true".into(),
        Value::Number(n) => n,
        Value::String(s) => s,
        other => {
            return Err(FormatError::at(
                line,
                format!(
                    "expected a string, number, boolean or array of them for \"{key}\", found {}",
                    other.kind()
                ),
            ));
        }
    })
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    /// 1-based (line, column) of `pos`; the column counts characters.
    fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.bytes[..pos.min(self.bytes.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
        (line, col)
    }

    fn line(&self) -> usize {
        self.line_col(self.pos).0
    }

    fn err<T>(&self, expected: &str) -> Result<T, FormatError> {
        let (line, col) = self.line_col(self.pos);
        let found = match self.bytes.get(self.pos) {
            None => "the end of the file".to_string(),
            Some(b'"') => "a string".to_string(),
            Some(_) => {
                let rest = String::from_utf8_lossy(&self.bytes[self.pos..]);
                format!("'{}'", rest.chars().next().unwrap_or(' '))
            }
        };
        Err(FormatError::Syntax {
            line,
            col: Some(col),
            message: format!("{expected}, found {found}"),
        })
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, FormatError> {
        if depth > MAX_DEPTH {
            return self.err("expected at most 64 levels of nesting");
        }
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') if self.bytes[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.bytes[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Bool(false))
            }
            Some(b'n') if self.bytes[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(Value::Null)
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("expected a value"),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, FormatError> {
        self.pos += 1;
        let mut members = Vec::new();
        self.ws();
        if self.eat(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return self.err("expected a key in double quotes");
            }
            let line = self.line();
            let key = self.string()?;
            self.ws();
            if !self.eat(b':') {
                return self.err("expected \":\"");
            }
            self.ws();
            let value = self.value(depth + 1)?;
            members.push((key, value, line));
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(Value::Object(members));
            }
            return self.err("expected \",\" or \"}\"");
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, FormatError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            let line = self.line();
            items.push((self.value(depth + 1)?, line));
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            return self.err("expected \",\" or \"]\"");
        }
    }

    fn number(&mut self) -> Result<Value, FormatError> {
        let start = self.pos;
        self.eat(b'-');
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.bytes.get(p.pos) {
                p.pos += 1;
            }
            p.pos > s
        };
        if !digits(self) {
            return self.err("expected a digit");
        }
        if self.eat(b'.') && !digits(self) {
            return self.err("expected a digit after \".\"");
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !digits(self) {
                return self.err("expected a digit in the exponent");
            }
        }
        Ok(Value::Number(
            String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned(),
        ))
    }

    fn string(&mut self) -> Result<String, FormatError> {
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.bytes.get(self.pos) {
                None => return self.err("expected '\"' to close the string"),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.bytes.get(self.pos) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => return self.err("expected an escape such as \\n or \\u0041"),
                    };
                    self.pos += 1;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(&b) if b < 0x20 => {
                    return self.err("expected '\"' before the end of the line");
                }
                Some(&b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// After `\u`: four hex digits, and a low surrogate after a high one.
    fn unicode_escape(&mut self) -> Result<char, FormatError> {
        let hex4 = |p: &mut Self| -> Option<u32> {
            let s = p.bytes.get(p.pos..p.pos + 4)?;
            let v = u32::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()?;
            p.pos += 4;
            Some(v)
        };
        let Some(hi) = hex4(self) else {
            return self.err("expected four hex digits after \\u");
        };
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !(self.eat(b'\\') && self.eat(b'u')) {
                return self.err("expected a \\u low surrogate");
            }
            match hex4(self) {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                }
                _ => return self.err("expected a \\u low surrogate"),
            }
        } else {
            hi
        };
        match char::from_u32(code) {
            Some(c) => Ok(c),
            None => self.err("expected a valid \\u escape"),
        }
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
}
