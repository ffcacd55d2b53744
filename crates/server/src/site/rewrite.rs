//! The argument rules of nginx's `rewrite` (`ngx_http_rewrite` and
//! `ngx_http_script_regex_end_code`), kept apart from the loop that runs
//! the steps (`phases.rs`) so they can be table-tested:
//!
//! - a `?` in the replacement's literal text starts new args;
//! - the request's args are appended (after `?`, or after `&` when the
//!   replacement has args of its own) unless the replacement ends in `?`;
//! - a replacement starting with `http://`, `https://` or `$scheme` is a
//!   redirect whatever the flag; a redirect's path part (before `?`) has
//!   its `%XX` escapes of printable characters above `%` decoded, as
//!   nginx's `NGX_UNESCAPE_REDIRECT` does.

use portico_config::site::{Template, TemplatePart, Variable};

/// A replacement split where its args start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Replacement {
    /// The parts before the first literal `?`.
    pub uri: Template,
    /// The parts after it, when there is one.
    pub args: Option<Template>,
    /// The request's args are appended (the replacement does not end in `?`).
    pub add_args: bool,
    /// `http://`, `https://` or `$scheme` at the start: a redirect.
    pub redirect: bool,
}

/// Split a `rewrite` replacement as nginx compiles it.
pub(crate) fn split_replacement(template: &Template) -> Replacement {
    let mut parts = template.parts.clone();
    let mut add_args = true;
    if let Some(TemplatePart::Literal(last)) = parts.last_mut()
        && last.ends_with('?')
    {
        last.pop();
        add_args = false;
        if last.is_empty() {
            parts.pop();
        }
    }
    let redirect = match parts.first() {
        Some(TemplatePart::Literal(text)) => {
            text.starts_with("http://") || text.starts_with("https://")
        }
        Some(TemplatePart::Var(Variable::Scheme)) => true,
        _ => false,
    };
    let mut uri = Vec::new();
    let mut args = None;
    for part in parts {
        match (&mut args, part) {
            (None, TemplatePart::Literal(text)) => match text.split_once('?') {
                Some((before, after)) => {
                    if !before.is_empty() {
                        uri.push(TemplatePart::Literal(before.to_string()));
                    }
                    let mut rest = Vec::new();
                    if !after.is_empty() {
                        rest.push(TemplatePart::Literal(after.to_string()));
                    }
                    args = Some(rest);
                }
                None => uri.push(TemplatePart::Literal(text)),
            },
            (None, var) => uri.push(var),
            (Some(rest), part) => rest.push(part),
        }
    }
    Replacement {
        uri: Template { parts: uri },
        args: args.map(|parts| Template { parts }),
        add_args,
        redirect,
    }
}

/// The new `(uri, args)` of an internal rewrite, from the evaluated parts.
pub(crate) fn internal_target(
    uri: Vec<u8>,
    args: Option<Vec<u8>>,
    add_args: bool,
    old_args: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    match args {
        Some(mut new) => {
            if add_args && !old_args.is_empty() {
                new.push(b'&');
                new.extend_from_slice(old_args);
            }
            (uri, new)
        }
        None if add_args => (uri, old_args.to_vec()),
        None => (uri, Vec::new()),
    }
}

/// The `Location` of a rewrite redirect, from the evaluated parts.
pub(crate) fn redirect_target(
    uri: &[u8],
    args: Option<&[u8]>,
    add_args: bool,
    old_args: &[u8],
) -> Vec<u8> {
    let mut out = unescape_redirect(uri);
    if let Some(args) = args {
        out.push(b'?');
        out.extend_from_slice(args);
    }
    if add_args && !old_args.is_empty() {
        out.push(if args.is_some() { b'&' } else { b'?' });
        out.extend_from_slice(old_args);
    }
    out
}

/// nginx's `NGX_UNESCAPE_REDIRECT` on a redirect's path: `%XX` becomes the
/// byte when it is printable and above `%`; anything else stays escaped;
/// decoding stops at the first `?`.
fn unescape_redirect(text: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'?' {
            out.extend_from_slice(&text[i..]);
            break;
        }
        if b == b'%'
            && let (Some(h), Some(l)) = (
                text.get(i + 1).copied().and_then(hex),
                text.get(i + 2).copied().and_then(hex),
            )
        {
            let ch = h << 4 | l;
            if ch > b'%' && ch < 0x7f {
                out.push(ch);
            } else {
                out.extend_from_slice(&text[i..i + 3]);
            }
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::parse(s).unwrap_or_default()
    }

    fn lit(t: &Option<Template>) -> Option<String> {
        t.as_ref().and_then(|t| t.as_literal())
    }

    #[test]
    fn a_literal_question_mark_starts_new_args() {
        let r = split_replacement(&t("/new?a=$1&b=2"));
        assert_eq!(r.uri.as_literal().as_deref(), Some("/new"));
        assert!(r.args.is_some() && r.add_args && !r.redirect);
        let r = split_replacement(&t("/plain"));
        assert_eq!(lit(&r.args), None);
    }

    #[test]
    fn a_trailing_question_mark_drops_the_old_args() {
        let r = split_replacement(&t("/new?"));
        assert_eq!(r.uri.as_literal().as_deref(), Some("/new"));
        assert_eq!((lit(&r.args), r.add_args), (None, false));
        let r = split_replacement(&t("/new?x=1?"));
        assert_eq!((lit(&r.args).as_deref(), r.add_args), (Some("x=1"), false));
    }

    #[test]
    fn scheme_prefixes_make_redirects() {
        for s in ["http://a/b", "https://a/b", "$scheme://$host/x"] {
            assert!(split_replacement(&t(s)).redirect, "{s}");
        }
        assert!(!split_replacement(&t("/http://x")).redirect);
    }

    #[test]
    fn internal_args_follow_nginx() {
        type Row = (
            &'static [u8],
            Option<&'static [u8]>,
            bool,
            &'static [u8],
            &'static [u8],
        );
        let table: &[Row] = &[
            // (uri, new args, add_args, old args) -> args
            (b"/n", None, true, b"q=1", b"q=1"),
            (b"/n", None, false, b"q=1", b""),
            (b"/n", Some(b"a=2"), true, b"q=1", b"a=2&q=1"),
            (b"/n", Some(b"a=2"), true, b"", b"a=2"),
            (b"/n", Some(b"a=2"), false, b"q=1", b"a=2"),
            (b"/n", Some(b""), true, b"q=1", b"&q=1"),
        ];
        for (uri, args, add, old, want) in table {
            let (u, a) = internal_target(uri.to_vec(), args.map(<[u8]>::to_vec), *add, old);
            assert_eq!((u.as_slice(), a.as_slice()), (*uri, *want));
        }
    }

    #[test]
    fn redirects_append_old_args_and_unescape_the_path() {
        assert_eq!(redirect_target(b"/n", None, true, b"q=1"), b"/n?q=1");
        assert_eq!(
            redirect_target(b"/n", Some(b"a=2"), true, b"q=1"),
            b"/n?a=2&q=1"
        );
        assert_eq!(redirect_target(b"/n", None, false, b"q=1"), b"/n");
        assert_eq!(redirect_target(b"/a%41%20%2F", None, true, b""), b"/aA%20/");
    }
}
