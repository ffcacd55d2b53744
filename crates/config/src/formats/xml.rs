//! The XML reader, as uWSGI's `core/xmlconf.c` reads: a `<uwsgi>` element
//! (the root, or `<uwsgi id="ID">` anywhere when an id is asked for) whose
//! child elements are options, one per element, repeated for lists;
//! `<master/>` is a key without a value (true).
//!
//! The parser is a small well-formedness checker, not a general XML library:
//! elements, attributes, text, comments, CDATA, the prolog and a DOCTYPE
//! without an internal subset; the five named entities and `&#N;`/`&#xN;`.

use super::{Entry, FormatError, note_section};

/// Deepest element nesting accepted; a config needs two levels (three with a
/// wrapper around several `<uwsgi id=...>` elements). The parser recurses once
/// per level, so the limit is what keeps a hostile file off the stack's end.
const MAX_DEPTH: usize = 64;

/// An element, with what the config needs of it.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    /// The element's own text (CDATA included), children's text excluded.
    text: String,
    line: usize,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn parse(text: &str, id: Option<&str>) -> Result<Vec<Entry>, FormatError> {
    let root = Parser::new(text).document()?;
    let mut candidates = Vec::new();
    collect_uwsgi(&root, &mut candidates);
    let chosen = match id {
        None => candidates.first().copied(),
        Some(id) => candidates
            .iter()
            .copied()
            .find(|e| e.attr("id") == Some(id)),
    };
    let Some(uwsgi) = chosen else {
        let mut found = Vec::new();
        for c in &candidates {
            if let Some(id) = c.attr("id") {
                note_section(&mut found, id);
            }
        }
        if id.is_none() {
            return Err(FormatError::at(
                root.line,
                format!("expected a <uwsgi> element, found <{}>", root.name),
            ));
        }
        return Err(FormatError::NoSection { found });
    };
    uwsgi
        .children
        .iter()
        .map(|option| {
            if let Some(inner) = option.children.first() {
                return Err(FormatError::at(
                    inner.line,
                    format!(
                        "expected text inside <{}>, found the element <{}>",
                        option.name, inner.name
                    ),
                ));
            }
            let value = option.text.trim();
            Ok(Entry::new(
                option.name.clone(),
                (!value.is_empty()).then(|| value.to_string()),
                option.line,
            ))
        })
        .collect()
}

/// Every `<uwsgi>` element, depth first in document order.
fn collect_uwsgi<'a>(e: &'a Element, out: &mut Vec<&'a Element>) {
    if e.name == "uwsgi" {
        out.push(e);
        return;
    }
    for c in &e.children {
        collect_uwsgi(c, out);
    }
}

struct Parser<'a> {
    rest: &'a str,
    line: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            rest: text,
            line: 1,
        }
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, FormatError> {
        Err(FormatError::at(self.line, message))
    }

    fn advance(&mut self, n: usize) -> &'a str {
        let (taken, rest) = self.rest.split_at(n);
        self.line += taken.matches('\n').count();
        self.rest = rest;
        taken
    }

    fn skip_ws(&mut self) {
        let n = self.rest.len() - self.rest.trim_start().len();
        self.advance(n);
    }

    /// Consume up to and including `end`; return what came before it.
    fn until(&mut self, end: &str, what: &str) -> Result<&'a str, FormatError> {
        match self.rest.find(end) {
            Some(i) => {
                let body = self.advance(i);
                self.advance(end.len());
                Ok(body)
            }
            None => self.err(format!(
                "expected \"{end}\" to close {what}, found the end of the file"
            )),
        }
    }

    /// Skip a comment, processing instruction or DOCTYPE if one starts here.
    fn skip_misc(&mut self) -> Result<bool, FormatError> {
        if self.rest.starts_with("<!--") {
            self.advance(4);
            self.until("-->", "the comment")?;
        } else if self.rest.starts_with("<?") {
            self.until("?>", "the processing instruction")?;
        } else if self.rest.starts_with("<!DOCTYPE") || self.rest.starts_with("<!doctype") {
            self.until(">", "the DOCTYPE")?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    fn document(&mut self) -> Result<Element, FormatError> {
        loop {
            self.skip_ws();
            if !self.skip_misc()? {
                break;
            }
        }
        if !self.rest.starts_with('<') {
            return match self.rest.chars().next() {
                None => self.err("expected the <uwsgi> element, found an empty file"),
                Some(c) => self.err(format!("expected the <uwsgi> element, found \"{c}\"")),
            };
        }
        let root = self.element(1)?;
        loop {
            self.skip_ws();
            if self.rest.is_empty() {
                return Ok(root);
            }
            if !self.skip_misc()? {
                return self.err(format!(
                    "expected the end of the file after </{}>, found \"{}\"",
                    root.name,
                    first_token(self.rest)
                ));
            }
        }
    }

    fn name(&mut self) -> Result<String, FormatError> {
        let n = self
            .rest
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '>' | '=' | '<'))
            .unwrap_or(self.rest.len());
        if n == 0 {
            return self.err(format!(
                "expected a name, found \"{}\"",
                first_token(self.rest)
            ));
        }
        Ok(self.advance(n).to_string())
    }

    /// An element at nesting level `depth` (the root is 1); `self.rest` starts with `<`.
    fn element(&mut self, depth: usize) -> Result<Element, FormatError> {
        if depth > MAX_DEPTH {
            return self.err(format!(
                "expected at most {MAX_DEPTH} levels of nested elements"
            ));
        }
        let line = self.line;
        self.advance(1);
        let name = self.name()?;
        let mut element = Element {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
            text: String::new(),
            line,
        };
        loop {
            self.skip_ws();
            if self.rest.starts_with("/>") {
                self.advance(2);
                return Ok(element);
            }
            if self.rest.starts_with('>') {
                self.advance(1);
                break;
            }
            if self.rest.is_empty() {
                return self.err(format!(
                    "expected \">\" to end <{}>, found the end of the file",
                    element.name
                ));
            }
            let attr = self.name()?;
            self.skip_ws();
            if !self.rest.starts_with('=') {
                return self.err(format!("expected \"=\" after the attribute {attr}"));
            }
            self.advance(1);
            self.skip_ws();
            let quote = match self.rest.chars().next() {
                Some(q @ ('"' | '\'')) => q,
                _ => return self.err(format!("expected a quoted value for the attribute {attr}")),
            };
            self.advance(1);
            let raw = self.until(&quote.to_string(), "the attribute value")?;
            let value = self.decode(raw)?;
            element.attrs.push((attr, value));
        }
        self.content(&mut element, depth)?;
        Ok(element)
    }

    /// Text, children and the closing tag of `element`.
    fn content(&mut self, element: &mut Element, depth: usize) -> Result<(), FormatError> {
        loop {
            let text_end = self.rest.find('<').unwrap_or(self.rest.len());
            let raw = self.advance(text_end);
            element.text.push_str(&self.decode(raw)?);
            if self.rest.is_empty() {
                return self.err(format!(
                    "expected </{}>, found the end of the file",
                    element.name
                ));
            }
            if self.rest.starts_with("</") {
                self.advance(2);
                let close = self.name()?;
                self.skip_ws();
                if close != element.name {
                    return self.err(format!("expected </{}>, found </{close}>", element.name));
                }
                if !self.rest.starts_with('>') {
                    return self.err(format!("expected \">\" to end </{close}>"));
                }
                self.advance(1);
                return Ok(());
            }
            if self.rest.starts_with("<![CDATA[") {
                self.advance(9);
                let data = self.until("]]>", "the CDATA section")?;
                element.text.push_str(data);
                continue;
            }
            if self.skip_misc()? {
                continue;
            }
            let child = self.element(depth + 1)?;
            element.children.push(child);
        }
    }

    /// Replace entity references in `raw`.
    fn decode(&self, raw: &str) -> Result<String, FormatError> {
        if !raw.contains('&') {
            return Ok(raw.to_string());
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let end = after.find(';').filter(|&e| e <= 10);
            let decoded = end.and_then(|e| match &after[..e] {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                num => {
                    let code = if let Some(hex) = num.strip_prefix("#x") {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        num.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    code.and_then(char::from_u32)
                }
            });
            match (decoded, end) {
                (Some(c), Some(e)) => {
                    out.push(c);
                    rest = &after[e + 1..];
                }
                _ => {
                    return self.err(format!(
                        "expected an entity such as &amp; or &#60;, found \"&{}\"",
                        first_token(after)
                    ));
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The start of `s`, for messages.
fn first_token(s: &str) -> String {
    s.split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(20)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::kv;

    #[test]
    fn reads_the_seeds_config_with_empty_elements_as_bare_keys() {
        let text = "<?xml version=\"1.0\"?>\n<uwsgi>\n  <pythonpath>/srv/app</pythonpath>\n  \
                    <socket>127.0.0.1:5000</socket>\n  <master/>\n  <!-- note -->\n  \
                    <processes> 4 </processes>\n  <env>A=&lt;b&gt; &amp; &#65;</env>\n</uwsgi>\n";
        assert_eq!(
            kv(&parse(text, None).expect("valid")),
            vec![
                ("pythonpath", Some("/srv/app"), 3),
                ("socket", Some("127.0.0.1:5000"), 4),
                ("master", None, 5),
                ("processes", Some("4"), 7),
                ("env", Some("A=<b> & A"), 8),
            ]
        );
    }

    #[test]
    fn an_id_picks_one_of_several_uwsgi_elements() {
        let text = "<all>\n<uwsgi id=\"a\"><processes>1</processes></uwsgi>\n\
                    <uwsgi id='b'><processes>2</processes></uwsgi>\n</all>";
        assert_eq!(
            kv(&parse(text, Some("b")).expect("valid")),
            vec![("processes", Some("2"), 3)]
        );
        assert_eq!(
            kv(&parse(text, None).expect("valid")),
            vec![("processes", Some("1"), 2)]
        );
        assert_eq!(
            parse(text, Some("c")),
            Err(FormatError::NoSection {
                found: vec!["a".into(), "b".into()]
            })
        );
    }

    #[test]
    fn a_mismatched_close_tag_names_both_tags_and_the_line() {
        let text = "<uwsgi>\n  <master/>\n  <processes>4</uwsgi>\n";
        assert_eq!(
            parse(text, None),
            Err(FormatError::at(3, "expected </processes>, found </uwsgi>"))
        );
    }

    #[test]
    fn an_unclosed_root_is_reported_at_the_end() {
        assert_eq!(
            parse("<uwsgi>\n<master/>\n", None),
            Err(FormatError::at(
                3,
                "expected </uwsgi>, found the end of the file"
            ))
        );
    }

    #[test]
    fn nested_elements_in_an_option_and_a_wrong_root_are_errors() {
        assert_eq!(
            parse("<uwsgi><socket><a/></socket></uwsgi>", None),
            Err(FormatError::Syntax {
                line: 1,
                col: None,
                message: "expected text inside <socket>, found the element <a>".into()
            })
        );
        assert_eq!(
            parse("<config/>", None),
            Err(FormatError::at(
                1,
                "expected a <uwsgi> element, found <config>"
            ))
        );
        assert_eq!(
            parse("<uwsgi></uwsgi>junk", None),
            Err(FormatError::Syntax {
                line: 1,
                col: None,
                message: "expected the end of the file after </uwsgi>, found \"junk\"".into()
            })
        );
        assert_eq!(
            parse("<uwsgi><env>a &nbsp; b</env></uwsgi>", None),
            Err(FormatError::Syntax {
                line: 1,
                col: None,
                message: "expected an entity such as &amp; or &#60;, found \"&nbsp;\"".into()
            })
        );
    }

    #[test]
    fn nesting_deeper_than_the_limit_fails_with_the_line_and_the_limit() {
        let deep = |levels: usize| {
            let mut text = String::from("<uwsgi>\n");
            for _ in 1..levels {
                text.push_str("<a>\n");
            }
            text
        };
        // 20,000 levels used to overflow the stack (SIGABRT).
        assert_eq!(
            parse(&deep(20_000), None),
            Err(FormatError::at(
                MAX_DEPTH + 1,
                "expected at most 64 levels of nested elements"
            ))
        );
        let mut ok = String::from("<x>");
        // <x> at level 1, <y> at 2..=62, <uwsgi> at 63, <master/> at 64.
        for _ in 2..MAX_DEPTH - 1 {
            ok.push_str("<y>");
        }
        ok.push_str("<uwsgi><master/></uwsgi>");
        for _ in 2..MAX_DEPTH - 1 {
            ok.push_str("</y>");
        }
        ok.push_str("</x>");
        assert_eq!(
            kv(&parse(&ok, None).expect("64 levels")),
            vec![("master", None, 1)]
        );
    }
}
