//! The rewrite module's steps (`rewrite`, `return`) and the one place
//! regexes are compiled (`location ~`, `rewrite`, `server_name ~`, `map`),
//! with nginx's PCRE error shape and every named capture recorded, since
//! nginx makes each one a variable.

use crate::site::{Pattern, RewriteFlag, RewriteStep};

use super::super::ast::{Directive, NginxError};
use super::Ctx;
use super::values::{arg, atoi};
use super::vars::template;

/// PCRE2's words for the regex crate's most common syntax errors.
const PCRE_WORDS: &[(&str, &str)] = &[
    ("unclosed group", "missing closing parenthesis"),
    ("unopened group", "unmatched closing parenthesis"),
    (
        "unclosed character class",
        "missing terminating ] for character class",
    ),
    (
        "repetition operator missing expression",
        "quantifier does not follow a repeatable item",
    ),
    (
        "invalid repetition count range, the start must be <= the end",
        "numbers out of order in {} quantifier",
    ),
    (
        "duplicate capture group name",
        "two named subpatterns have the same name (PCRE2_DUPNAMES not set)",
    ),
];

/// PCRE features the regex crate does not have (nginx accepts them).
const NOT_IN_RUST_REGEX: &[&str] = &["look-around", "backreferences", "unrecognized escape"];

/// Compile `source` as nginx would compile a PCRE: the message on failure
/// is `pcre2_compile() failed: WHAT in "SOURCE"`, with PCRE2's words where
/// the regex crate's reason has a known counterpart. A PCRE feature the
/// regex crate lacks (look-around, backreferences) gets Portico's own message.
pub(super) fn compile(
    ctx: &mut Ctx,
    d: &Directive,
    source: &str,
    caseless: bool,
) -> Result<Pattern, NginxError> {
    match Pattern::new(source, caseless) {
        Ok(p) => {
            for name in p.regex.capture_names().flatten() {
                ctx.scope.captures.insert(name.to_string());
            }
            Ok(p)
        }
        Err(e) => {
            let why = match &e {
                regex::Error::Syntax(text) => text
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("error: "))
                    .unwrap_or(text.as_str())
                    .to_string(),
                other => other.to_string(),
            };
            if NOT_IN_RUST_REGEX.iter().any(|w| why.starts_with(w)) {
                return Err(NginxError::at(
                    d,
                    format!(
                        "regex \"{source}\" is not supported by Portico ({why}; Portico uses Rust regex syntax, without look-around and backreferences)"
                    ),
                ));
            }
            let why = PCRE_WORDS
                .iter()
                .find(|(ours, _)| *ours == why)
                .map_or(why.as_str(), |(_, pcre)| pcre);
            Err(NginxError::at(
                d,
                format!("pcre2_compile() failed: {why} in \"{source}\""),
            ))
        }
    }
}

/// True for a replacement or return argument that is a redirect URL.
fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://") || text.starts_with("$scheme")
}

/// `rewrite REGEX REPLACEMENT [last|break|redirect|permanent]`. The
/// replacement is kept as written, with a trailing `?` (which tells the
/// router not to append the original arguments, as nginx does).
pub(super) fn rewrite(ctx: &mut Ctx, d: &Directive) -> Result<RewriteStep, NginxError> {
    if arg(d, 1)?.is_empty() {
        return Err(NginxError::at(d, "empty replacement"));
    }
    let pattern = compile(ctx, d, arg(d, 0)?, false)?;
    let replacement_text = arg(d, 1)?;
    let replacement = template(d, replacement_text)?;
    let written = match d.args.get(2).map(|a| a.value.as_str()) {
        None => RewriteFlag::None,
        Some("last") => RewriteFlag::Last,
        Some("break") => RewriteFlag::Break,
        Some("redirect") => RewriteFlag::Redirect,
        Some("permanent") => RewriteFlag::Permanent,
        Some(other) => return Err(NginxError::at(d, format!("invalid parameter \"{other}\""))),
    };
    // A URL replacement redirects at once: 302 unless `permanent`.
    let flag = if is_url(replacement_text) && written != RewriteFlag::Permanent {
        RewriteFlag::Redirect
    } else {
        written
    };
    Ok(RewriteStep::Rewrite {
        pattern,
        replacement,
        flag,
        origin: d.origin(),
    })
}

/// `return CODE [TEXT|URL]` or `return URL` (302).
pub(super) fn return_step(d: &Directive) -> Result<RewriteStep, NginxError> {
    let first = arg(d, 0)?;
    if d.args.len() == 1 && is_url(first) {
        return Ok(RewriteStep::Return {
            code: 302,
            body: Some(template(d, first)?),
        });
    }
    let code = match atoi(first) {
        Some(c) if c <= 999 => c as u16,
        _ => {
            return Err(NginxError::at(
                d,
                format!("invalid return code \"{first}\""),
            ));
        }
    };
    let body = match d.args.get(1) {
        Some(a) => Some(template(d, &a.value)?),
        None => None,
    };
    Ok(RewriteStep::Return { code, body })
}
