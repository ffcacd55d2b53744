//! Blocks and directives, as `ngx_conf_parse` and `ngx_conf_handler` read
//! them: each directive is checked against the table (known, allowed in this
//! context, `;` or `{`, argument count, `on`/`off`, duplicate) in file order,
//! so the first error is the one nginx reports, worded as nginx words it.
//! `include` is expanded in place; `types {}` and `map {}` take their
//! entries raw, as nginx's custom handlers do.
//!
//! What a directive means is not checked here: that is the conversion's job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ast::{Arg, Directive, NginxError};
use super::directives::{
    ArgRule, Contexts, EVENTS, HTTP, LIF, LMT, LOC, Lookup, SIF, SRV, UPS, lookup,
};
use super::include;
use super::lexer::{End, Lexer, Step, Word};

/// How deep includes may nest. nginx has no limit of its own (a file that
/// includes itself runs it out of file descriptors); this stops such a loop
/// with a clear message long before.
const MAX_INCLUDE_DEPTH: usize = 64;

/// The file name nginx gives the `-g` text in its messages.
pub(crate) const COMMAND_LINE: &str = "command line";

/// Where a directive sits, for the table and for the custom handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    /// A context of the table (`MAIN`, `HTTP`, ...).
    Conf(Contexts),
    /// `types { type ext...; }`
    Types,
    /// `map $a $b { key value; }`
    Map,
    /// Another handler block (`geo`, `split_clients`, `charset_map`,
    /// `match`): entries taken as they are.
    Raw,
}

/// What ends the text being read (nginx's `parse_file`, `parse_block`,
/// `parse_param`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Block,
    Param,
}

/// Reads a main file and everything it includes.
pub(crate) struct Reader {
    /// Relative includes resolve against this: the main file's directory.
    conf_dir: PathBuf,
    /// Every file read, first read first, for `-T`.
    pub files: Vec<(PathBuf, String)>,
    pub notes: Vec<String>,
    depth: usize,
}

/// An error where nginx would report it: `in FILE:LINE`, or `in command
/// line` for the `-g` text.
fn located(file: &Path, kind: Kind, line: usize, message: impl Into<String>) -> NginxError {
    let param = kind == Kind::Param || file == Path::new(COMMAND_LINE);
    NginxError {
        message: message.into(),
        file: Some(file.to_path_buf()),
        line: if param { None } else { Some(line) },
    }
}

/// The context a block directive opens, inside `parent`.
fn child_context(name: &str, parent: Contexts) -> Ctx {
    match name {
        "events" => Ctx::Conf(EVENTS),
        "http" => Ctx::Conf(HTTP),
        "server" => Ctx::Conf(SRV),
        "location" => Ctx::Conf(LOC),
        "if" if parent == SRV => Ctx::Conf(SIF),
        "if" => Ctx::Conf(LIF),
        "limit_except" => Ctx::Conf(LMT),
        "upstream" => Ctx::Conf(UPS),
        "types" => Ctx::Types,
        "map" => Ctx::Map,
        _ => Ctx::Raw,
    }
}

impl Reader {
    pub(crate) fn new(conf_dir: PathBuf) -> Reader {
        Reader {
            conf_dir,
            files: Vec::new(),
            notes: Vec::new(),
            depth: 0,
        }
    }

    /// Remember a file's text for `-T` (each file once, as nginx dumps it).
    pub(crate) fn record(&mut self, path: &Path, text: &[u8]) {
        if !self.files.iter().any(|(p, _)| p == path) {
            self.files.push((
                path.to_path_buf(),
                String::from_utf8_lossy(text).into_owned(),
            ));
        }
    }

    /// Read `text` (a whole file, or the `-g` text) in context `ctx`,
    /// appending its directives to `out`.
    pub(crate) fn parse_text(
        &mut self,
        text: &[u8],
        file: &Arc<PathBuf>,
        ctx: Ctx,
        kind: Kind,
        out: &mut Vec<Directive>,
    ) -> Result<(), NginxError> {
        let mut lexer = if kind == Kind::Param {
            Lexer::for_param(text)
        } else {
            Lexer::new(text)
        };
        self.parse(&mut lexer, file, ctx, kind, out)
    }

    fn parse(
        &mut self,
        lexer: &mut Lexer<'_>,
        file: &Arc<PathBuf>,
        ctx: Ctx,
        kind: Kind,
        out: &mut Vec<Directive>,
    ) -> Result<(), NginxError> {
        loop {
            let step = lexer
                .next_step()
                .map_err(|e| located(file, kind, e.line, e.message))?;
            let line = lexer.line();
            match step {
                Step::BlockEnd if kind == Kind::Block => return Ok(()),
                Step::BlockEnd => return Err(located(file, kind, line, "unexpected \"}\"")),
                Step::Done if kind == Kind::Block => {
                    return Err(located(
                        file,
                        kind,
                        line,
                        "unexpected end of file, expecting \"}\"",
                    ));
                }
                Step::Done => return Ok(()),
                Step::Directive(words, end) => {
                    if end == End::BlockStart && kind == Kind::Param {
                        return Err(located(
                            file,
                            kind,
                            line,
                            "block directives are not supported in -g option",
                        ));
                    }
                    self.directive(lexer, file, ctx, kind, words, end, out)?;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn directive(
        &mut self,
        lexer: &mut Lexer<'_>,
        file: &Arc<PathBuf>,
        ctx: Ctx,
        kind: Kind,
        words: Vec<Word>,
        end: End,
        out: &mut Vec<Directive>,
    ) -> Result<(), NginxError> {
        let line = lexer.line();
        let err = |message: String| located(file, kind, line, message);
        let mut words = words.into_iter();
        let Some(first) = words.next() else {
            return Err(err("unexpected \";\"".into()));
        };
        let name = first.value;
        let args: Vec<Arg> = words
            .map(|w| Arg {
                value: w.value,
                quoted: w.quoted,
            })
            .collect();
        let mut directive = Directive {
            name,
            args,
            file: file.clone(),
            line: if kind == Kind::Param { 0 } else { line },
            children: None,
        };
        let name = directive.name.as_str();
        let nargs = directive.args.len();

        let bits = match ctx {
            Ctx::Conf(bits) => bits,
            Ctx::Types | Ctx::Map | Ctx::Raw => {
                if end == End::BlockStart {
                    return Err(err("unexpected \"{\"".into()));
                }
                if ctx == Ctx::Types && name == "include" && nargs != 1 {
                    return Err(err(
                        "invalid number of arguments in \"include\" directive".into()
                    ));
                }
                if ctx == Ctx::Map
                    && !(nargs == 0 && (name == "hostnames" || name == "volatile"))
                    && nargs != 1
                {
                    return Err(err("invalid number of the map parameters".into()));
                }
                if name == "include" && nargs == 1 {
                    let target = directive.args[0].value.clone();
                    return self.include(&target, file, kind, line, ctx, out);
                }
                out.push(directive);
                return Ok(());
            }
        };

        let spec = match lookup(name, bits) {
            Lookup::Found(spec) => spec,
            Lookup::NotAllowed => {
                return Err(err(format!("\"{name}\" directive is not allowed here")));
            }
            Lookup::Unknown => return Err(err(format!("unknown directive \"{name}\""))),
        };
        if !spec.block && end != End::Semicolon {
            return Err(err(format!(
                "directive \"{name}\" is not terminated by \";\""
            )));
        }
        if spec.block && end != End::BlockStart {
            return Err(err(format!("directive \"{name}\" has no opening \"{{\"")));
        }
        if !spec.args.accepts(nargs) {
            return Err(err(format!(
                "invalid number of arguments in \"{name}\" directive"
            )));
        }
        if spec.args == ArgRule::Flag {
            let value = directive.args[0].value.as_str();
            if !value.eq_ignore_ascii_case("on") && !value.eq_ignore_ascii_case("off") {
                return Err(err(format!(
                    "invalid value \"{value}\" in \"{name}\" directive, it must be \"on\" or \"off\""
                )));
            }
        }
        if let Some(message) = spec.dup.then(|| duplicate(name, out)).flatten() {
            return Err(err(message));
        }
        if name == "include" {
            let target = directive.args[0].value.clone();
            return self.include(&target, file, kind, line, ctx, out);
        }
        if spec.block {
            let child = child_context(name, bits);
            let mut children = Vec::new();
            self.parse(lexer, file, child, Kind::Block, &mut children)?;
            directive.children = Some(children);
        }
        out.push(directive);
        Ok(())
    }

    /// `include ARG`: read each file it names in the current context.
    fn include(
        &mut self,
        arg: &str,
        file: &Arc<PathBuf>,
        kind: Kind,
        line: usize,
        ctx: Ctx,
        out: &mut Vec<Directive>,
    ) -> Result<(), NginxError> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(located(
                file,
                kind,
                line,
                format!("include \"{arg}\" nested more than {MAX_INCLUDE_DEPTH} levels deep"),
            ));
        }
        let files =
            include::resolve(&self.conf_dir, arg).map_err(|m| located(file, kind, line, m))?;
        for inc in files {
            if inc.builtin {
                self.notes.push(format!(
                    "[notice] \"{}\" not found: using Portico's built-in copy (included in {}:{line})",
                    include::full_name(&self.conf_dir, arg).display(),
                    file.display()
                ));
            }
            self.record(&inc.path, &inc.text);
            let path = Arc::new(inc.path);
            self.depth += 1;
            let read = self.parse_text(&inc.text, &path, ctx, Kind::File, out);
            self.depth -= 1;
            read?;
        }
        Ok(())
    }
}

/// nginx's "is duplicate" check for a directive about to join `level`.
fn duplicate(name: &str, level: &[Directive]) -> Option<String> {
    let earlier = |n: &str| level.iter().any(|d| d.name == n);
    if earlier(name) {
        return Some(format!("\"{name}\" directive is duplicate"));
    }
    let other = match name {
        "root" => "alias",
        "alias" => "root",
        _ => return None,
    };
    earlier(other).then(|| {
        format!("\"{name}\" directive is duplicate, \"{other}\" directive was specified earlier")
    })
}

/// Whether a main file is a fragment: `server {}` blocks at its top level
/// and neither `http` nor `events` there. Only the file's own top level is
/// looked at; a token error ends the look (the real read reports it).
pub(crate) fn is_fragment(text: &[u8]) -> bool {
    let mut lexer = Lexer::new(text);
    let mut depth = 0usize;
    let mut server = false;
    while let Ok(step) = lexer.next_step() {
        match step {
            Step::Directive(words, end) => {
                let name = words.first().map(|w| w.value.as_str()).unwrap_or("");
                if depth == 0 {
                    if name == "http" || name == "events" {
                        return false;
                    }
                    server |= name == "server" && end == End::BlockStart;
                }
                if end == End::BlockStart {
                    depth += 1;
                }
            }
            Step::BlockEnd => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => break,
            },
            Step::Done => break,
        }
    }
    server
}
