//! The command-line reader: argv to an ordered list of [`Setting`]s.
//!
//! Accepted shapes, as uWSGI accepts them: `--name value`, `--name=value`,
//! `-x value`, `-xvalue`, and for switches a bare `--name` or `--name=false`.

use crate::table::{Kind, OptionSpec, lookup, lookup_short, suggest};
use crate::{ConfigError, Setting};

const ORIGIN: &str = "command line";

/// Read argv (without the program name) into settings, in order, refusing
/// positional arguments. Config files named with `--ini` and the like stay
/// settings here; [`load`](crate::load) is what reads them.
pub fn parse_args<I, S>(args: I) -> Result<Vec<Setting>, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let (settings, positional) = parse_argv(args)?;
    match positional.into_iter().next() {
        Some(arg) => Err(ConfigError::UnexpectedArgument {
            origin: ORIGIN.into(),
            arg,
        }),
        None => Ok(settings),
    }
}

/// Read argv into settings, in order, and the positional arguments (config
/// file paths, read after every option, as uWSGI's getopt permutes them).
pub(crate) fn parse_argv<I, S>(args: I) -> Result<(Vec<Setting>, Vec<String>), ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into).peekable();
    let mut settings = Vec::new();
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        let (spec, shown, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let spec = lookup(name).ok_or_else(|| ConfigError::UnknownOption {
                origin: ORIGIN.into(),
                name: format!("--{name}"),
                suggestion: suggest(name),
            })?;
            (spec, name.to_string(), inline)
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let c = chars.next().unwrap_or_default();
            let spec = lookup_short(c).ok_or_else(|| ConfigError::UnknownOption {
                origin: ORIGIN.into(),
                name: format!("-{c}"),
                suggestion: None,
            })?;
            let rest = chars.as_str();
            (
                spec,
                spec.name.to_string(),
                (!rest.is_empty()).then(|| rest.to_string()),
            )
        } else {
            positional.push(arg);
            continue;
        };
        let value = match (spec.kind, inline) {
            (Kind::Flag, Some(v)) => normalise_flag(spec, &v)?,
            (Kind::Flag, None) => "true".to_string(),
            (Kind::OptionalValue, Some(v)) => v,
            (Kind::OptionalValue, None) => {
                // Take the next word only if it cannot be an option (e.g. a mode `660`).
                match args.peek() {
                    Some(next)
                        if !next.starts_with('-') && next.chars().all(|c| c.is_ascii_digit()) =>
                    {
                        args.next().unwrap_or_default()
                    }
                    _ => "true".to_string(),
                }
            }
            (_, Some(v)) => v,
            (_, None) => args.next().ok_or_else(|| ConfigError::MissingValue {
                origin: ORIGIN.into(),
                name: shown.clone(),
            })?,
        };
        settings.push(Setting {
            option: spec,
            value,
            origin: ORIGIN.into(),
        });
    }
    Ok((settings, positional))
}

/// uWSGI's booleans: true/yes/on/1 and false/no/off/0 (any case).
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn normalise_flag(spec: &OptionSpec, value: &str) -> Result<String, ConfigError> {
    parse_bool(value)
        .map(|b| b.to_string())
        .ok_or_else(|| ConfigError::NotABoolean {
            origin: ORIGIN.into(),
            name: spec.name.into(),
            value: value.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_and_values(args: &[&str]) -> Vec<(&'static str, String)> {
        parse_args(args.iter().copied())
            .expect("valid args")
            .into_iter()
            .map(|s| (s.option.name, s.value))
            .collect()
    }

    #[test]
    fn long_short_and_inline_forms_reduce_to_the_same_settings() {
        assert_eq!(
            names_and_values(&["--wsgi-file", "a.py", "--file=b.py", "-w", "m:app", "-wm2"]),
            vec![
                ("wsgi-file", "a.py".to_string()),
                ("wsgi-file", "b.py".to_string()),
                ("module", "m:app".to_string()),
                ("module", "m2".to_string()),
            ]
        );
    }

    #[test]
    fn unknown_option_names_it_and_suggests_the_closest() {
        let err = parse_args(["--wsgi-fil", "x"]).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "command line: unknown option \"--wsgi-fil\" (did you mean \"--wsgi-file\"?)"
        );
    }

    #[test]
    fn option_without_its_value_is_an_error() {
        let err = parse_args(["--http"]).expect_err("missing value");
        assert_eq!(
            err.to_string(),
            "command line: option \"--http\" needs a value"
        );
    }

    #[test]
    fn switch_accepts_uwsgi_booleans_and_rejects_others() {
        assert_eq!(
            names_and_values(&["--help=off"]),
            vec![("help", "false".into())]
        );
        assert_eq!(
            crate::test_err::text(parse_args(["--version=maybe"])),
            "command line: option \"--version\" is a switch; \"maybe\" is not true/false/yes/no/on/off/1/0"
        );
    }

    #[test]
    fn bare_word_is_an_unexpected_argument() {
        assert!(matches!(
            parse_args(["app.py"]),
            Err(ConfigError::UnexpectedArgument { .. })
        ));
    }
}
