//! The config crate's error: which option, from where, and what was wrong.

use std::fmt;
use std::io;
use std::sync::Arc;

/// An OS error kept as the cause of a [`ConfigError`] (shared so the error
/// stays `Clone`; compared by kind and message so it stays `Eq`).
#[derive(Debug, Clone)]
pub struct IoCause(pub Arc<io::Error>);

impl From<io::Error> for IoCause {
    fn from(e: io::Error) -> IoCause {
        IoCause(Arc::new(e))
    }
}

impl PartialEq for IoCause {
    fn eq(&self, other: &IoCause) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for IoCause {}

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
    /// A config file that could not be read; the OS's error is the
    /// [`source`](std::error::Error::source) (the binary prints the chain).
    Read { path: String, source: IoCause },
    /// A config file, or a value in one, that is not well formed: where
    /// (`app.xml:3`, `app.json:3:14`) and what was expected there.
    Syntax { origin: String, message: String },
    /// The section (ini, yaml, json) or `<uwsgi id>` (xml) asked for is not in the file.
    MissingSection {
        path: String,
        section: String,
        /// What it is called in that format (`section`).
        what: &'static str,
        /// The sections the file does have.
        found: Vec<String>,
    },
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
            ConfigError::Read { path, .. } => write!(f, "cannot read {path}"),
            ConfigError::Syntax { origin, message } => write!(f, "{origin}: {message}"),
            ConfigError::MissingSection {
                path,
                section,
                what,
                found,
            } => {
                write!(f, "{path}: no {what} \"{section}\"")?;
                if found.is_empty() {
                    f.write_str(" (the file has none)")
                } else {
                    let list: Vec<String> = found.iter().map(|s| format!("\"{s}\"")).collect();
                    write!(f, " (found: {})", list.join(", "))
                }
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(&*source.0),
            _ => None,
        }
    }
}
