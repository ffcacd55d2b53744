//! The expansion passes uWSGI runs over every value read from a config
//! file, in order: `$(NAME)` (an environment variable, empty if unset),
//! `@(PATH)` (a file's contents, trailing newlines dropped), then `%(NAME)`
//! (the value of an option or placeholder set earlier, with left-to-right
//! integer math when it holds spaces: `%(processes + 2 * 3)`).
//!
//! Magic variables (`%d`, …) are substituted before these, in `magic.rs`.
//! Values given on the command line or in `UWSGI_*` variables are not expanded.

use crate::ConfigError;

/// Replace each `$(NAME)` by `env(NAME)`, or by nothing if it is unset.
pub(crate) fn env_pass(value: &str, env: impl Fn(&str) -> Option<String>) -> String {
    replace_calls(value, "$(", |name| {
        Ok::<_, ConfigError>(env(name).unwrap_or_default())
    })
    .unwrap_or_else(|_| value.to_string())
}

/// Replace each `@(PATH)` by the contents of PATH (relative to the working
/// directory, as in uWSGI), without its trailing newlines.
pub(crate) fn file_pass(value: &str, origin: &str) -> Result<String, ConfigError> {
    replace_calls(value, "@(", |path| {
        std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| ConfigError::Syntax {
                origin: origin.to_string(),
                message: format!("cannot read @({path}): {}", crate::load::os_reason(&e)),
            })
    })
}

/// Replace each `%(NAME)` or `%(A op B op C…)` using `lookup` for names.
pub(crate) fn placeholder_pass(
    value: &str,
    origin: &str,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    replace_calls(value, "%(", |inner| {
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
            return resolve(inner.trim());
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
        Ok(acc.to_string())
    })
}

/// Replace every `OPEN…)` in `value` by `f(…)`; an unclosed one stays as written.
fn replace_calls<E>(
    value: &str,
    open: &str,
    mut f: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
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
        out.push_str(&rest[..start]);
        out.push_str(&f(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            env_pass("h=$(HOME) x=$(NOPE) $(open", env),
            "h=/root x= $(open"
        );
    }

    #[test]
    fn placeholders_resolve_names_and_compute_left_to_right() {
        let p = |v: &str| placeholder_pass(v, "a.ini:1", vars);
        assert_eq!(p("%(project).wsgi").expect("ok"), "myapp.wsgi");
        assert_eq!(p("%(processes + 2 * 3)").expect("ok"), "18");
        assert_eq!(p("%(processes / 2 - 1)").expect("ok"), "1");
        assert_eq!(p("no refs %d").expect("ok"), "no refs %d");
    }

    #[test]
    fn placeholder_errors_name_the_reference_and_the_origin() {
        let p = |v: &str| placeholder_pass(v, "a.ini:1", vars).map_err(|e| e.to_string());
        assert_eq!(
            p("%(nope)").expect_err("unset"),
            "a.ini:1: %(nope): \"nope\" is not an option or placeholder set before this line \
             (set one with \"set-placeholder = nope=VALUE\")"
        );
        assert!(p("%(word + 1)").is_err());
        assert!(p("%(processes / 0)").is_err());
        assert!(p("%(processes ^ 2)").is_err());
        assert!(p("%(processes +)").is_err());
    }

    #[test]
    fn file_references_read_the_file_without_its_trailing_newline() {
        let path = std::env::temp_dir().join(format!("portico-expand-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").expect("write");
        let got = file_pass(&format!("key=@({})", path.display()), "a.ini:2");
        let _ = std::fs::remove_file(&path);
        assert_eq!(got.expect("ok"), "key=s3cret");
        assert!(file_pass("@(/nonexistent/portico)", "a.ini:2").is_err());
    }
}
