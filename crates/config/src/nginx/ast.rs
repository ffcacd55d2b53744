//! The syntax tree of an nginx configuration, as the reader produces it:
//! directives with their arguments (quotes and escapes already resolved),
//! where each came from, and the children of block directives. Includes are
//! already expanded in place. Meaning is given in the conversion to a
//! [`Site`](crate::site::Site); nothing here knows what a directive does.

use std::path::PathBuf;
use std::sync::Arc;

/// One directive: `name arg...;` or `name arg... { children }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<Arg>,
    /// The file it was read from (an included file names itself; the `-g`
    /// text is `command line`).
    pub file: Arc<PathBuf>,
    /// 1-based line as nginx reports it: the line of the `;` or `{` that
    /// ends the directive's arguments (the name's line unless the arguments
    /// span lines). 0 for a `-g` directive (nginx names no line there).
    pub line: usize,
    /// `Some` for a block directive (`http`, `server`, `location`, ...).
    pub children: Option<Vec<Directive>>,
}

/// One argument, after quotes and escapes are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub value: String,
    /// Written in quotes (`"..."` or `'...'`).
    pub quoted: bool,
}

impl Directive {
    /// `file:line`, as nginx's messages end.
    pub fn origin(&self) -> String {
        if self.line == 0 {
            return self.file.display().to_string();
        }
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The argument values as strings.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.args.iter().map(|a| a.value.as_str())
    }
}

/// A whole configuration as read from disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfTree {
    /// The main context's directives.
    pub main: Vec<Directive>,
    /// Every file read, in the order first read, with its text (for `-T`).
    pub files: Vec<(PathBuf, String)>,
    /// `[warn]`/`[notice]` lines the reader produced (without the prefix
    /// `nginx: `), e.g. the notice for a wrapped bare `server {}` fragment.
    pub notes: Vec<String>,
}

/// An error in nginx's shape: `[emerg] MESSAGE in FILE:LINE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxError {
    /// The message as nginx words it (`unknown directive "foo"`).
    pub message: String,
    /// Where, when known.
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
}

impl NginxError {
    /// An error at a directive (`in command line`, without a line, for a
    /// `-g` directive, as nginx says it).
    pub fn at(directive: &Directive, message: impl Into<String>) -> NginxError {
        NginxError {
            message: message.into(),
            file: Some(directive.file.as_ref().clone()),
            line: (directive.line > 0).then_some(directive.line),
        }
    }
}

impl std::fmt::Display for NginxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[emerg] {}", self.message)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " in {}:{line}", file.display()),
            (Some(file), None) => write!(f, " in {}", file.display()),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for NginxError {}
