//! nginx.conf: the reader (tokens, blocks, `include`, contexts and argument
//! counts, nginx's own error messages) and the conversion of the tree into
//! a [`Site`](crate::site::Site).
//!
//! [`read_conf`] gives the syntax tree, or the first error nginx 1.22 would
//! report for the same files; [`dump`] gives `-T`'s text.

mod ast;
mod directives;
mod dump;
mod include;
mod lexer;
mod parser;
mod table;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use ast::{Arg, ConfTree, Directive, NginxError};
pub use directives::is_known;
pub use dump::dump;
pub use include::builtin_file;

use directives::{HTTP, MAIN};
use parser::{COMMAND_LINE, Ctx, Kind, Reader};

/// Read `conf_file` and everything it includes, after the `-g` text
/// (`global_directives`, main-context directives read as if they came
/// first in the main file, as nginx reads them).
///
/// A relative `conf_file` is taken from the current directory; relative
/// includes resolve against the main file's directory. A main file of bare
/// `server {}` blocks (a sites-enabled fragment) is read as if inside
/// `events {} http { ... }`, with a notice in [`ConfTree::notes`].
pub fn read_conf(
    conf_file: &Path,
    global_directives: Option<&str>,
) -> Result<ConfTree, NginxError> {
    let conf_file = std::path::absolute(conf_file).unwrap_or_else(|_| conf_file.to_path_buf());
    let text = include::read_file(&conf_file).map_err(|message| NginxError {
        message,
        file: None,
        line: None,
    })?;
    read_text(&conf_file, &text, global_directives)
}

/// [`read_conf`] with the main file's text already in hand (`conf_file`
/// names it in messages and anchors relative includes, which are still
/// read from disk). For tests and the fuzz target.
pub fn read_text(
    conf_file: &Path,
    text: &[u8],
    global_directives: Option<&str>,
) -> Result<ConfTree, NginxError> {
    let conf_file = std::path::absolute(conf_file).unwrap_or_else(|_| conf_file.to_path_buf());
    let conf_dir = conf_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut reader = Reader::new(conf_dir);
    let mut main = Vec::new();

    if let Some(globals) = global_directives {
        let file = Arc::new(PathBuf::from(COMMAND_LINE));
        reader.parse_text(
            globals.as_bytes(),
            &file,
            Ctx::Conf(MAIN),
            Kind::Param,
            &mut main,
        )?;
    }

    reader.record(&conf_file, text);
    let file = Arc::new(conf_file.clone());
    if parser::is_fragment(text) {
        reader.notes.push(format!(
            "[notice] \"{}\" has server blocks at top level: read as if inside http {{}}",
            conf_file.display()
        ));
        let mut children = Vec::new();
        reader.parse_text(text, &file, Ctx::Conf(HTTP), Kind::File, &mut children)?;
        for (name, children) in [("events", Vec::new()), ("http", children)] {
            main.push(Directive {
                name: name.to_string(),
                args: Vec::new(),
                file: file.clone(),
                line: 1,
                children: Some(children),
            });
        }
    } else {
        reader.parse_text(text, &file, Ctx::Conf(MAIN), Kind::File, &mut main)?;
    }

    if !main.iter().any(|d| d.name == "events") {
        return Err(NginxError {
            message: "no \"events\" section in configuration".to_string(),
            file: None,
            line: None,
        });
    }
    Ok(ConfTree {
        main,
        files: reader.files,
        notes: reader.notes,
    })
}

#[cfg(test)]
mod tests;

mod convert;

pub use convert::{
    DEFAULT_ONLY_DIRECTIVES, IGNORED_DIRECTIVES, IGNORED_PREFIXES, TLS_DIRECTIVES,
    UNSUPPORTED_DIRECTIVES, to_site, to_site_with_warnings,
};
