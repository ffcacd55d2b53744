//! A test-only mini reader: enough of nginx's syntax (words, quotes, `;`,
//! `{}`, `#` comments, line numbers) to build [`ConfTree`]s from text in
//! the conversion's tests, and the error-table helpers the tests share.
//! The real reader lives beside this module.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::ast::{Arg, ConfTree, Directive};
use super::to_site;

/// The file name every test tree claims to come from.
pub(super) const FILE: &str = "/t/nginx.conf";

enum Tok {
    Word(String, bool, usize),
    Semi,
    Open,
    Close,
}

fn tokens(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            ' ' | '\t' | '\r' => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            ';' => {
                chars.next();
                out.push(Tok::Semi);
            }
            '{' => {
                chars.next();
                out.push(Tok::Open);
            }
            '}' => {
                chars.next();
                out.push(Tok::Close);
            }
            '"' | '\'' => {
                chars.next();
                let mut word = String::new();
                while let Some(ch) = chars.next() {
                    if ch == c {
                        break;
                    }
                    if ch == '\\' && chars.peek() == Some(&c) {
                        word.push(c);
                        chars.next();
                        continue;
                    }
                    if ch == '\n' {
                        line += 1;
                    }
                    word.push(ch);
                }
                out.push(Tok::Word(word, true, line));
            }
            _ => {
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || ch == ';' || ch == '{' || ch == '}' {
                        // `${name}` keeps its brace inside a word.
                        if ch == '{' && word.ends_with('$') {
                            word.push(ch);
                            chars.next();
                            continue;
                        }
                        if ch == '}' && word.contains("${") && !word.ends_with('}') {
                            word.push(ch);
                            chars.next();
                            continue;
                        }
                        break;
                    }
                    word.push(ch);
                    chars.next();
                }
                out.push(Tok::Word(word, false, line));
            }
        }
    }
    out
}

fn block(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
    file: &Arc<PathBuf>,
) -> Vec<Directive> {
    let mut out = Vec::new();
    while let Some(tok) = toks.next() {
        let (name, line) = match tok {
            Tok::Word(w, _, line) => (w, line),
            Tok::Close => return out,
            Tok::Semi | Tok::Open => continue,
        };
        let mut args = Vec::new();
        let mut children = None;
        for t in toks.by_ref() {
            match t {
                Tok::Word(value, quoted, _) => args.push(Arg { value, quoted }),
                Tok::Semi => break,
                Tok::Open => {
                    children = Some(block(toks, file));
                    break;
                }
                Tok::Close => break,
            }
        }
        out.push(Directive {
            name,
            args,
            file: file.clone(),
            line,
            children,
        });
    }
    out
}

/// A tree from nginx.conf text (no includes, no checks).
pub(super) fn tree(text: &str) -> ConfTree {
    let file = Arc::new(PathBuf::from(FILE));
    let mut toks = tokens(text).into_iter().peekable();
    ConfTree {
        main: block(&mut toks, &file),
        files: Vec::new(),
        notes: Vec::new(),
    }
}

/// What converting `events {}\nhttp {\nBODY\n}\n` says: its error
/// (BODY is on line 3), or `no error for BODY`.
pub(super) fn error_of(body: &str) -> String {
    let text = format!("events {{}}\nhttp {{\n{body}\n}}\n");
    match to_site(&tree(&text), Path::new("/p")) {
        Ok(_) => format!("no error for {body}"),
        Err(e) => e.to_string(),
    }
}

/// Each (http body, message) case is refused with `[emerg] MESSAGE`, `§`
/// in the message standing for ` in /t/nginx.conf:3` (the body's line).
pub(super) fn assert_errors(cases: &[(&str, &str)]) {
    for (body, want) in cases {
        let want = format!("[emerg] {}", want.replace("§", " in /t/nginx.conf:3"));
        assert_eq!(error_of(body), want, "{body}");
    }
}
