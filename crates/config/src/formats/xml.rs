//! The XML reader, as uWSGI's `core/xmlconf.c` reads: a `<uwsgi>` element
//! (the root, or `<uwsgi id="ID">` anywhere when an id is asked for) whose
//! child elements are options, one per element, repeated for lists;
//! `<master/>` is a key without a value (true).
//!
//! Well-formedness is `roxmltree`'s (strict XML 1.0: names, attribute values,
//! character references, comments); this file adds uWSGI's rules on top and
//! turns the parser's errors into messages with the line and column.

use roxmltree::{Document, Node, ParsingOptions, TextPos};

use super::{Entry, FormatError, note_section};

/// Deepest element nesting accepted; a config needs two levels (three with a
/// wrapper around several `<uwsgi id=...>` elements). roxmltree parses
/// without recursion and has no depth limit of its own (only `u32::MAX`), and
/// this reader walks the tree without recursion too; the limit keeps a
/// hostile file from being taken for a config.
const MAX_DEPTH: usize = 64;

/// Most nodes (elements, text, comments) a config may hold: far more than any
/// config has, and a bound on the memory a hostile file costs.
const MAX_NODES: u32 = 1_000_000;

pub(super) fn parse(text: &str, id: Option<&str>) -> Result<Vec<Entry>, FormatError> {
    let options = ParsingOptions {
        // A DOCTYPE is allowed (uWSGI's libxml2 reads one); roxmltree bounds
        // entity expansion itself.
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| syntax(text, &e))?;
    let root = doc.root_element();
    let mut candidates = Vec::new();
    // Depth of each element by node index; parents come before children in
    // document order, so one pass without recursion fills it.
    let mut depth_of = vec![0usize; doc.descendants().len()];
    for node in root.descendants().filter(Node::is_element) {
        let parent = node
            .parent_element()
            .and_then(|p| depth_of.get(p.id().get() as usize).copied())
            .unwrap_or(0);
        let depth = parent + 1;
        if let Some(slot) = depth_of.get_mut(node.id().get() as usize) {
            *slot = depth;
        }
        if depth > MAX_DEPTH {
            let pos = doc.text_pos_at(node.range().start);
            return Err(FormatError::Syntax {
                line: pos.row as usize,
                col: Some(pos.col as usize),
                message: format!("expected at most {MAX_DEPTH} levels of nested elements"),
            });
        }
        // Every `<uwsgi>` element in document order, not looking inside one.
        if node.has_tag_name("uwsgi") && !node.ancestors().skip(1).any(|a| a.has_tag_name("uwsgi"))
        {
            candidates.push(node);
        }
    }
    let chosen = match id {
        None => candidates.first().copied(),
        Some(id) => candidates
            .iter()
            .copied()
            .find(|e| e.attribute("id") == Some(id)),
    };
    let Some(uwsgi) = chosen else {
        let mut found = Vec::new();
        for c in &candidates {
            if let Some(id) = c.attribute("id") {
                note_section(&mut found, id);
            }
        }
        if id.is_none() {
            return Err(FormatError::at(
                line_of(&doc, root),
                format!("expected a <uwsgi> element, found <{}>", name_of(root)),
            ));
        }
        return Err(FormatError::NoSection { found });
    };
    uwsgi
        .children()
        .filter(Node::is_element)
        .map(|option| {
            if let Some(inner) = option.children().find(Node::is_element) {
                return Err(FormatError::at(
                    line_of(&doc, inner),
                    format!(
                        "expected text inside <{}>, found the element <{}>",
                        name_of(option),
                        name_of(inner)
                    ),
                ));
            }
            // The element's own text (CDATA included; comments are not text).
            let text: String = option
                .children()
                .filter(Node::is_text)
                .filter_map(|c| c.text())
                .collect();
            let value = text.trim();
            Ok(Entry::new(
                name_of(option),
                (!value.is_empty()).then(|| value.to_string()),
                line_of(&doc, option),
            ))
        })
        .collect()
}

/// An element's name as written (`prefix:local` keeps only the local part in
/// roxmltree; configs have no namespaces).
fn name_of(node: Node<'_, '_>) -> String {
    node.tag_name().name().to_string()
}

/// The 1-based line a node starts on.
fn line_of(doc: &Document<'_>, node: Node<'_, '_>) -> usize {
    doc.text_pos_at(node.range().start).row as usize
}

/// A parser error as a message with the line and column it names.
fn syntax(text: &str, e: &roxmltree::Error) -> FormatError {
    use roxmltree::Error as E;
    let pos = e.pos();
    let message = match e {
        E::UnexpectedCloseTag(expected, actual, _) => {
            format!("expected </{expected}>, found </{actual}>")
        }
        E::UnclosedRootNode | E::UnexpectedEndOfStream => {
            // The parser gives no position: the end of the file is where it stopped.
            let end = end_pos(text);
            return FormatError::Syntax {
                line: end.row as usize,
                col: Some(end.col as usize),
                message: "expected a closing tag, found the end of the file".into(),
            };
        }
        E::NoRootNode => {
            return FormatError::at(1, "expected the <uwsgi> element, found none");
        }
        E::UnknownEntityReference(name, _) => {
            format!("expected an entity such as &amp; or &#60;, found \"&{name};\"")
        }
        E::MalformedEntityReference(_) => {
            "expected an entity such as &amp; or &#60; after \"&\"".into()
        }
        E::InvalidAttributeValue(_) => {
            "expected an attribute value without \"<\" (write &lt;)".into()
        }
        E::InvalidChar(b'"' | b'\'', b'<', _) => {
            "expected an attribute value without \"<\" (write &lt;)".into()
        }
        E::InvalidChar(expected, actual, _) => format!(
            "expected \"{}\", found \"{}\"",
            char::from(*expected),
            char::from(*actual)
        ),
        E::InvalidChar2(expected, actual, _) => {
            format!("expected {expected}, found \"{}\"", char::from(*actual))
        }
        E::InvalidName(_) => "expected a valid XML name".into(),
        E::NonXmlChar(c, _) => format!("expected an XML character, found {c:?}"),
        E::UnknownToken(_) => format!(
            "expected an element, a comment or the end of the file, found \"{}\"",
            first_token(text_at(text, pos))
        ),
        E::NodesLimitReached => {
            return FormatError::at(1, format!("expected at most {MAX_NODES} nodes"));
        }
        other => {
            // roxmltree's own words, without its " at L:C" (given apart).
            let full = other.to_string();
            let suffix = format!(" at {pos}");
            full.replace(&suffix, "")
        }
    };
    FormatError::Syntax {
        line: pos.row as usize,
        col: Some(pos.col as usize),
        message,
    }
}

/// The text from `pos` on (roxmltree counts columns in characters).
fn text_at(text: &str, pos: TextPos) -> &str {
    let Some(line) = text
        .split_inclusive('\n')
        .nth((pos.row as usize).saturating_sub(1))
    else {
        return "";
    };
    let skip = (pos.col as usize).saturating_sub(1);
    line.char_indices()
        .nth(skip)
        .and_then(|(i, _)| line.get(i..))
        .unwrap_or("")
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

/// The position just past the last character of `text`.
fn end_pos(text: &str) -> TextPos {
    let row = text.matches('\n').count() + 1;
    let last = text.rsplit('\n').next().unwrap_or("");
    TextPos::new(
        u32::try_from(row).unwrap_or(u32::MAX),
        u32::try_from(last.chars().count() + 1).unwrap_or(u32::MAX),
    )
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

    fn err(line: usize, col: usize, message: &str) -> Result<Vec<Entry>, FormatError> {
        Err(FormatError::Syntax {
            line,
            col: Some(col),
            message: message.into(),
        })
    }

    #[test]
    fn a_mismatched_close_tag_names_both_tags_and_the_line() {
        let text = "<uwsgi>\n  <master/>\n  <processes>4</uwsgi>\n";
        assert_eq!(
            parse(text, None),
            err(3, 15, "expected </processes>, found </uwsgi>")
        );
    }

    #[test]
    fn an_unclosed_root_is_reported_at_the_end() {
        assert_eq!(
            parse("<uwsgi>\n<master/>\n", None),
            err(3, 1, "expected a closing tag, found the end of the file")
        );
    }

    #[test]
    fn nested_elements_in_an_option_and_a_wrong_root_are_errors() {
        assert_eq!(
            parse("<uwsgi><socket><a/></socket></uwsgi>", None),
            Err(FormatError::at(
                1,
                "expected text inside <socket>, found the element <a>"
            ))
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
            err(
                1,
                16,
                "expected an element, a comment or the end of the file, found \"junk\""
            )
        );
        assert_eq!(
            parse("<uwsgi><env>a &nbsp; b</env></uwsgi>", None),
            err(
                1,
                15,
                "expected an entity such as &amp; or &#60;, found \"&nbsp;\""
            )
        );
    }

    /// What the old hand-written checker let through, and XML refuses.
    #[test]
    fn what_xml_forbids_is_refused_with_line_and_column() {
        assert_eq!(
            parse("<uwsgi id=\"a<b\">\n<master/></uwsgi>", None),
            err(
                1,
                13,
                "expected an attribute value without \"<\" (write &lt;)"
            )
        );
        assert!(matches!(
            parse("<uwsgi>\n<env>a&#0;b</env></uwsgi>", None),
            Err(FormatError::Syntax { line: 2, col: Some(_), message })
                if message.contains("XML character") || message.contains("entity")
        ));
        assert!(matches!(
            parse("<uwsgi>\n<1socket>x</1socket></uwsgi>", None),
            Err(FormatError::Syntax {
                line: 2,
                col: Some(2),
                ..
            })
        ));
        assert!(matches!(
            parse("<uwsgi>\n<env>a</env><env x=1>b</env></uwsgi>", None),
            Err(FormatError::Syntax { line: 2, .. })
        ));
    }

    #[test]
    fn cdata_and_comments_inside_an_option_give_the_text_alone() {
        let text = "<uwsgi><env><!-- c --><![CDATA[A=<b>]]></env></uwsgi>";
        assert_eq!(
            kv(&parse(text, None).expect("valid")),
            vec![("env", Some("A=<b>"), 1)]
        );
    }

    #[test]
    fn nesting_deeper_than_the_limit_fails_with_the_line_and_the_limit() {
        let deep = |levels: usize, closed: bool| {
            let mut text = String::from("<uwsgi>\n");
            for _ in 1..levels {
                text.push_str("<a>\n");
            }
            if closed {
                for _ in 1..levels {
                    text.push_str("</a>");
                }
                text.push_str("</uwsgi>");
            }
            text
        };
        // 20,000 levels used to overflow the stack (SIGABRT); a test thread's
        // stack (2 MiB) shows any recursion per level.
        assert_eq!(
            parse(&deep(20_000, true), None),
            err(
                MAX_DEPTH + 1,
                1,
                "expected at most 64 levels of nested elements"
            )
        );
        assert_eq!(
            parse(&deep(20_000, false), None),
            err(
                20_001,
                1,
                "expected a closing tag, found the end of the file"
            )
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
