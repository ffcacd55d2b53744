//! A minimal JSON tree and writer for the stats document: uWSGI's pretty
//! layout (tabs, `"key":value`) or minified, with every string escaped
//! (uWSGI 2.0 leaves `cwd`, `name` and friends unescaped).

use std::fmt::Write;

/// A JSON value; objects keep their keys in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Int(i64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn obj<K: Into<String>>(fields: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Obj(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub(crate) fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub(crate) fn uint(n: u64) -> Json {
        Json::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// The document as text: indented with tabs, or on one line if `minified`.
    pub(crate) fn render(&self, minified: bool) -> String {
        let mut out = String::with_capacity(4096);
        self.write(&mut out, if minified { None } else { Some(0) });
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>) {
        match self {
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => escape(out, s),
            Json::Arr(items) if items.is_empty() => out.push_str("[]"),
            Json::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent.map(|d| d + 1));
                    item.write(out, indent.map(|d| d + 1));
                }
                newline(out, indent);
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent.map(|d| d + 1));
                    escape(out, key);
                    out.push(':');
                    value.write(out, indent.map(|d| d + 1));
                }
                newline(out, indent);
                out.push('}');
            }
        }
    }
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(depth) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push('\t');
        }
    }
}

/// A JSON string literal for `s`.
fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_layouts_match_uwsgi() {
        let doc = Json::obj([
            ("cwd", Json::str("/srv/\"odd\"\\dir\n\u{1}")),
            ("n", Json::Int(-3)),
            ("list", Json::Arr(vec![Json::obj([("a", Json::Int(1))])])),
            ("empty", Json::Arr(vec![])),
        ]);
        assert_eq!(
            doc.render(true),
            r#"{"cwd":"/srv/\"odd\"\\dir\n\u0001","n":-3,"list":[{"a":1}],"empty":[]}"#
        );
        assert_eq!(
            doc.render(false),
            "{\n\t\"cwd\":\"/srv/\\\"odd\\\"\\\\dir\\n\\u0001\",\n\t\"n\":-3,\n\t\"list\":[\n\t\t{\n\t\t\t\"a\":1\n\t\t}\n\t],\n\t\"empty\":[]\n}"
        );
    }
}
