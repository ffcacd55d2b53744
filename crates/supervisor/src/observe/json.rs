//! A minimal JSON tree and writer for the stats document: uWSGI's pretty
//! layout (tabs, `"key":value`) or minified, with every string escaped
//! (uWSGI 2.0 leaves `cwd`, `name` and friends unescaped).

use std::fmt::Write;

use portico_server::json::{NonAscii, escape_json};

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

/// A JSON string literal for `s` (`portico_server::json`'s escaping).
fn escape(out: &mut String, s: &str) {
    let mut literal = Vec::with_capacity(s.len() + 2);
    literal.push(b'"');
    escape_json(&mut literal, s.as_bytes(), NonAscii::Utf8);
    literal.push(b'"');
    // ASCII escapes between the bytes of valid UTF-8: still valid UTF-8
    out.push_str(&String::from_utf8_lossy(&literal));
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
