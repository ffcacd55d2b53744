//! The expansion passes uWSGI runs over every value read from a config
//! file, in order: `$(NAME)` (an environment variable, empty if unset),
//! `@(PATH)` (a file's contents, trailing newlines dropped), then `%(NAME)`
//! (the value of an option or placeholder set earlier, with left-to-right
//! integer math when it holds spaces: `%(processes + 2 * 3)`).
//!
//! Magic variables (`%d`, …) are substituted before these, in `magic.rs`.
//! Values given on the command line or in `UWSGI_*` variables are not expanded.
//!
//! Each pass runs once over a value and never rescans what it inserted (uWSGI
//! rescans, so its expansion can recurse), so expansion has no depth to bound;
//! its size is bounded instead: [`MAX_EXPANDED_VALUE`] per value and
//! [`MAX_AT_FILE`] per `@(file)`, each failing with the origin and the limit.

use std::io::Read;

use crate::ConfigError;
use crate::files::Files;

/// Longest value expansion may produce (64 KiB). Options are names, paths,
/// addresses and short lists; without a bound, 40 chained
/// `set-placeholder = aN=%(aN-1)%(aN-1)` lines need 2^40 bytes.
pub(crate) const MAX_EXPANDED_VALUE: usize = 64 * 1024;

/// Largest file `@(PATH)` reads (64 KiB): a secret, a name, a port. Without a
/// bound `@(/dev/urandom)` reads until memory runs out.
pub(crate) const MAX_AT_FILE: u64 = 64 * 1024;

/// What `placeholder_pass` does with a `%(NAME)` whose NAME is set nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unresolved {
    /// Fail naming the reference (Portico's rule for options).
    Fail,
    /// Keep it as written (uWSGI's rule, kept for `log-format`, whose
    /// `%(addr)`, `%(status)`… are the request log's variables).
    Keep,
}

fn too_long(origin: &str, what: &str) -> ConfigError {
    ConfigError::Syntax {
        origin: origin.to_string(),
        message: format!(
            "expanding {what} makes the value longer than the limit of {MAX_EXPANDED_VALUE} bytes"
        ),
    }
}

/// Replace each `$(NAME)` by `env(NAME)`, or by nothing if it is unset.
pub(crate) fn env_pass(
    value: &str,
    origin: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    replace_calls(
        value,
        "$(",
        |name| Ok(Some(env(name).unwrap_or_default())),
        || too_long(origin, "$(...)"),
    )
}

/// Replace each `@(PATH)` by the contents of PATH (relative to the working
/// directory, as in uWSGI), without its trailing newlines.
/// Files come from `files` (the disk, or memory when fuzzing).
pub(crate) fn file_pass(
    value: &str,
    origin: &str,
    files: &dyn Files,
) -> Result<String, ConfigError> {
    replace_calls(
        value,
        "@(",
        |path| {
            let err = |message: String| ConfigError::Syntax {
                origin: origin.to_string(),
                message: format!("cannot read @({path}): {message}"),
            };
            let mut bytes = Vec::new();
            files
                .open(path)
                .and_then(|f| f.take(MAX_AT_FILE + 1).read_to_end(&mut bytes))
                .map_err(|e| err(crate::load::os_reason(&e)))?;
            if bytes.len() as u64 > MAX_AT_FILE {
                return Err(err(format!(
                    "the file is larger than the limit of {MAX_AT_FILE} bytes"
                )));
            }
            let text = String::from_utf8(bytes).map_err(|_| err("the file is not UTF-8".into()))?;
            Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
        },
        || too_long(origin, "@(...)"),
    )
}

/// Replace each `%(NAME)` or `%(A op B op C…)` using `lookup` for names.
pub(crate) fn placeholder_pass(
    value: &str,
    origin: &str,
    unresolved: Unresolved,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut expand_one = |inner: &str| -> Result<Option<String>, ConfigError> {
        let err = |message: String| ConfigError::Syntax {
            origin: origin.to_string(),
            message,
        };
        let mut resolve = |name: &str| {
            lookup(name).ok_or_else(|| {
                err(format!(
                    "%({inner}): \"{name}\" is not an option or placeholder set before this line \
                     (set one with \"set-placeholder = {name}=VALUE\")"
                ))
            })
        };
        let tokens: Vec<&str> = inner.split_whitespace().collect();
        if tokens.len() <= 1 {
            return match resolve(inner.trim()) {
                Err(_) if unresolved == Unresolved::Keep => Ok(None),
                other => other.map(Some),
            };
        }
        // Math, strictly left to right as uWSGI does: %(4 + 2 * 3) = 18.
        let mut number = |token: &str| -> Result<i64, ConfigError> {
            let text = if token.parse::<i64>().is_ok() {
                token.to_string()
            } else {
                resolve(token)?
            };
            text.trim().parse::<i64>().map_err(|_| {
                err(format!(
                    "%({inner}): \"{token}\" is \"{text}\", not a whole number to compute with"
                ))
            })
        };
        let mut acc = number(tokens[0])?;
        for pair in tokens[1..].chunks(2) {
            let [op, operand] = pair else {
                return Err(err(format!(
                    "%({inner}): expected a number after \"{}\"",
                    pair[0]
                )));
            };
            let rhs = number(operand)?;
            acc = match *op {
                "+" => acc.checked_add(rhs),
                "-" => acc.checked_sub(rhs),
                "*" => acc.checked_mul(rhs),
                "/" => acc.checked_div(rhs),
                other => {
                    return Err(err(format!(
                        "%({inner}): expected + - * or /, found \"{other}\""
                    )));
                }
            }
            .ok_or_else(|| err(format!("%({inner}): division by zero or overflow")))?;
        }
        Ok(Some(acc.to_string()))
    };
    replace_calls(value, "%(", &mut expand_one, || too_long(origin, "%(...)"))
}

/// Replace every `OPEN…)` in `value` by `f(…)`; an unclosed one, and one for
/// which `f` gives `None`, stays as written. A result longer than
/// [`MAX_EXPANDED_VALUE`] is `too_long()`, found before it is built.
fn replace_calls(
    value: &str,
    open: &str,
    mut f: impl FnMut(&str) -> Result<Option<String>, ConfigError>,
    too_long: impl Fn() -> ConfigError,
) -> Result<String, ConfigError> {
    if !value.contains(open) {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(')') else {
            break;
        };
        let call = &rest[start..start + open.len() + end + 1];
        let replacement = f(&after[..end])?;
        let piece = replacement.as_deref().unwrap_or(call);
        if out.len() + start + piece.len() > MAX_EXPANDED_VALUE {
            return Err(too_long());
        }
        out.push_str(&rest[..start]);
        out.push_str(piece);
        rest = &after[end + 1..];
    }
    if out.len() + rest.len() > MAX_EXPANDED_VALUE {
        return Err(too_long());
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::Disk;

    fn vars(name: &str) -> Option<String> {
        match name {
            "processes" => Some("4".into()),
            "project" => Some("myapp".into()),
            "word" => Some("many".into()),
            _ => None,
        }
    }

    #[test]
    fn env_references_are_replaced_and_unset_ones_are_empty() {
        let env = |n: &str| (n == "HOME").then(|| "/root".to_string());
        assert_eq!(
            env_pass("h=$(HOME) x=$(NOPE) $(open", "a.ini:1", env).expect("short"),
            "h=/root x= $(open"
        );
    }

    #[test]
    fn placeholders_resolve_names_and_compute_left_to_right() {
        let p = |v: &str| placeholder_pass(v, "a.ini:1", Unresolved::Fail, vars);
        assert_eq!(p("%(project).wsgi").expect("ok"), "myapp.wsgi");
        assert_eq!(p("%(processes + 2 * 3)").expect("ok"), "18");
        assert_eq!(p("%(processes / 2 - 1)").expect("ok"), "1");
        assert_eq!(p("no refs %d").expect("ok"), "no refs %d");
    }

    #[test]
    fn placeholder_errors_name_the_reference_and_the_origin() {
        let p = |v: &str| {
            placeholder_pass(v, "a.ini:1", Unresolved::Fail, vars).map_err(|e| e.to_string())
        };
        assert_eq!(
            p("%(nope)").expect_err("unset"),
            "a.ini:1: %(nope): \"nope\" is not an option or placeholder set before this line \
             (set one with \"set-placeholder = nope=VALUE\")"
        );
        assert_eq!(
            crate::test_err::text(p("%(word + 1)")),
            "a.ini:1: %(word + 1): \"word\" is \"many\", not a whole number to compute with"
        );
        assert_eq!(
            crate::test_err::text(p("%(processes / 0)")),
            "a.ini:1: %(processes / 0): division by zero or overflow"
        );
        assert_eq!(
            crate::test_err::text(p("%(processes ^ 2)")),
            "a.ini:1: %(processes ^ 2): expected + - * or /, found \"^\""
        );
        assert_eq!(
            crate::test_err::text(p("%(processes +)")),
            "a.ini:1: %(processes +): expected a number after \"+\""
        );
    }

    #[test]
    fn file_references_read_the_file_without_its_trailing_newline() {
        let path = std::env::temp_dir().join(format!("portico-expand-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").expect("write");
        let got = file_pass(&format!("key=@({})", path.display()), "a.ini:2", &Disk);
        let _ = std::fs::remove_file(&path);
        assert_eq!(got.expect("ok"), "key=s3cret");
        assert_eq!(
            crate::test_err::text(file_pass("@(/nonexistent/portico)", "a.ini:2", &Disk)),
            "a.ini:2: cannot read @(/nonexistent/portico): No such file or directory"
        );
    }

    #[test]
    fn unresolved_names_are_kept_as_written_when_asked() {
        let p = |v: &str| placeholder_pass(v, "a.ini:1", Unresolved::Keep, vars);
        assert_eq!(
            p("%(addr) - %(user) [%(ltime)] %(project) %(var.HTTP_X)").expect("kept"),
            "%(addr) - %(user) [%(ltime)] myapp %(var.HTTP_X)"
        );
        assert_eq!(
            crate::test_err::text(p("%(nope + 1)")),
            "a.ini:1: %(nope + 1): \"nope\" is not an option or placeholder set before this line (set one with \"set-placeholder = nope=VALUE\")",
            "math still needs its names"
        );
    }

    #[test]
    fn expansion_past_the_size_limit_fails_with_the_origin_and_the_limit() {
        let big = "x".repeat(MAX_EXPANDED_VALUE / 2 + 1);
        let lookup = |_: &str| Some(big.clone());
        let err = placeholder_pass("%(a)%(a)", "a.ini:7", Unresolved::Fail, lookup)
            .expect_err("too long");
        assert_eq!(
            err.to_string(),
            "a.ini:7: expanding %(...) makes the value longer than the limit of 65536 bytes"
        );
        assert!(placeholder_pass("%(a)", "a.ini:7", Unresolved::Fail, lookup).is_ok());
        let env = |_: &str| Some(big.clone());
        assert_eq!(
            crate::test_err::text(env_pass("$(A)$(A)", "a.ini:8", env)),
            "a.ini:8: expanding $(...) makes the value longer than the limit of 65536 bytes"
        );
    }

    #[test]
    fn file_references_are_bounded_in_size() {
        let err = file_pass("@(/dev/zero)", "a.ini:3", &Disk).expect_err("endless file");
        assert_eq!(
            err.to_string(),
            "a.ini:3: cannot read @(/dev/zero): the file is larger than the limit of 65536 bytes"
        );
    }
}
