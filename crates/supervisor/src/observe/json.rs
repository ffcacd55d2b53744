//! The stats document as a small ordered JSON tree, written by `serde_json`
//! in uWSGI's pretty layout (tabs, `"key":value`, through [`UwsgiPretty`])
//! or minified (serde_json's compact layout, which is uWSGI's). Every string
//! is escaped (uWSGI 2.0 leaves `cwd`, `name` and friends unescaped).

use std::io;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::ser::{CompactFormatter, Formatter};

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
        let mut out = Vec::with_capacity(4096);
        let written = if minified {
            self.serialize(&mut serde_json::Serializer::with_formatter(
                &mut out,
                CompactFormatter,
            ))
        } else {
            self.serialize(&mut serde_json::Serializer::with_formatter(
                &mut out,
                UwsgiPretty::default(),
            ))
        };
        // Writing to a Vec cannot fail, and the tree has only string keys.
        debug_assert!(written.is_ok());
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Int(n) => s.serialize_i64(*n),
            Json::Str(v) => s.serialize_str(v),
            Json::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Obj(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// uWSGI's pretty layout: serde_json's `PrettyFormatter` with a tab for the
/// indent and no space after the colon.
#[derive(Debug, Default)]
struct UwsgiPretty {
    depth: usize,
    has_value: bool,
}

impl UwsgiPretty {
    fn newline<W: ?Sized + io::Write>(&self, w: &mut W, depth: usize) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..depth {
            w.write_all(b"\t")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + io::Write>(&mut self, w: &mut W, c: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(c)
    }

    fn close<W: ?Sized + io::Write>(&mut self, w: &mut W, c: &[u8]) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if self.has_value {
            self.newline(w, self.depth)?;
        }
        w.write_all(c)
    }

    fn item<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w, self.depth)
    }
}

impl Formatter for UwsgiPretty {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b":")
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
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
