//! The config crate's error: which option, from where, and what was wrong.

use std::fmt;

/// An error in the options a user gave; `Display` is the message to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// An option the table does not know.
    UnknownOption {
        origin: String,
        name: String,
        suggestion: Option<&'static str>,
    },
    /// An option that needs a value was given none.
    MissingValue { origin: String, name: String },
    /// A flag was given a value other than a boolean.
    NotABoolean {
        origin: String,
        name: String,
        value: String,
    },
    /// A value of the wrong kind (`processes = many`).
    BadValue {
        origin: String,
        name: String,
        value: String,
        expected: String,
    },
    /// Something that is not an option where one was expected.
    UnexpectedArgument { origin: String, arg: String },
    /// Options that cannot be used together, or a missing required one.
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownOption {
                origin,
                name,
                suggestion,
            } => {
                write!(f, "{origin}: unknown option \"{name}\"")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean \"--{s}\"?)")?;
                }
                Ok(())
            }
            ConfigError::MissingValue { origin, name } => {
                write!(f, "{origin}: option \"--{name}\" needs a value")
            }
            ConfigError::NotABoolean {
                origin,
                name,
                value,
            } => write!(
                f,
                "{origin}: option \"--{name}\" is a switch; \"{value}\" is not true/false/yes/no/on/off/1/0"
            ),
            ConfigError::BadValue {
                origin,
                name,
                value,
                expected,
            } => write!(
                f,
                "{origin}: option \"--{name}\": \"{value}\" is not {expected}"
            ),
            ConfigError::UnexpectedArgument { origin, arg } => {
                write!(f, "{origin}: unexpected argument \"{arg}\"")
            }
            ConfigError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ConfigError {}
