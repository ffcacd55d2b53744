//! Every source of options reduced to one ordered list of [`Setting`]s, with
//! uWSGI's precedence: `UWSGI_*`/`PORTICO_*` environment variables first
//! (lowest), then the command line in order (an `--ini FILE` is read where
//! it stands, its settings spliced in place), then the positional config
//! files (`portico app.ini`) last. Later settings win for single values;
//! lists accumulate.
//!
//! Values read from files get their magic variables and `$()`, `@()`,
//! `%()` references expanded here; unknown keys become placeholders and,
//! unless something refers to them, warnings (errors with `--strict`).
//! Typing the list into a [`Config`](crate::Config) is `model.rs`'s job.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::argv::parse_argv;
use crate::expand;
use crate::files::{Disk, Files};
use crate::formats::{Entry, Format, FormatError};
use crate::magic::{self, ConfigFile, ProcessFacts};
use crate::table::{Kind, OptionSpec, lookup, suggest};
use crate::{ConfigError, Setting};

/// How deep config files may include each other (a file including itself
/// would otherwise recurse until the stack runs out).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Largest config file read (4 MiB): real ones are a few KiB, and a
/// `--ini` pointed at a device or a huge file must fail, not eat memory.
pub(crate) const MAX_CONFIG_FILE: u64 = 4 * 1024 * 1024;

/// Most bytes `$()`, `@()` and `%()` may add to a whole configuration
/// (16 MiB), on top of each value's own [`expand::MAX_EXPANDED_VALUE`]:
/// thousands of lines each just under that limit must fail too.
pub(crate) const MAX_EXPANDED_TOTAL: usize = 16 * 1024 * 1024;

/// Unknown keys warned about one by one; past this many notes one line
/// counts the rest. A file of 100,000 unknown keys printed 100,000 lines
/// and computed a suggestion for each (found by the `config_ini` fuzzer).
const MAX_UNKNOWN_WARNINGS: usize = 50;

/// Options whose values are log templates: an unresolved `%(name)` in them is
/// a log variable (`%(addr)`, `%(status)`), kept for the request logger.
const LOG_TEMPLATE_OPTIONS: &[&str] = &["log-format"];

/// The result of reading every source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The effective settings, in order, expanded.
    pub settings: Vec<Setting>,
    /// Lines for the log, without the `portico: ` prefix: ignored options
    /// and (as `WARNING: …`) unknown keys in files.
    pub notes: Vec<String>,
}

/// Read the command line (without the program name), the config files it
/// names and the `UWSGI_*`/`PORTICO_*` variables of `env` into one list.
pub fn load<I, S>(args: I, env: &[(String, String)]) -> Result<Loaded, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    load_from(args, env, &Disk)
}

/// [`load`], reading config and `@(PATH)` files from `files`.
pub(crate) fn load_from<I, S>(
    args: I,
    env: &[(String, String)],
    files: &dyn Files,
) -> Result<Loaded, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut loader = Loader::new(env, files);
    for (var, spec, value) in env_settings(env) {
        let origin = format!("env {var}");
        let value = if spec.kind == Kind::Flag {
            uwsgi_bool(&value).to_string()
        } else {
            value
        };
        loader.apply(spec, value, &origin, None)?;
    }
    let (cli, positional) = parse_argv(args)?;
    for s in cli {
        loader.apply(s.option, s.value, &s.origin, None)?;
    }
    for arg in positional {
        let Some(format) = Format::of_path(&arg) else {
            return Err(ConfigError::UnexpectedArgument {
                origin: "command line".into(),
                arg,
            });
        };
        loader.read_file(format, &arg, None, "command line", None)?;
    }
    loader.finish()
}

/// `UWSGI_<OPTION>` then `PORTICO_<OPTION>` variables naming a known option,
/// each group sorted by name (so the later, more specific prefix wins).
/// Other variables with those prefixes are ignored: uWSGI and Portico set
/// some for themselves (`PORTICO_INHERITED_FDS`).
fn env_settings(env: &[(String, String)]) -> Vec<(String, &'static OptionSpec, String)> {
    let mut out = Vec::new();
    for prefix in ["UWSGI_", "PORTICO_"] {
        let mut group: Vec<_> = env
            .iter()
            .filter_map(|(k, v)| {
                let name = k
                    .strip_prefix(prefix)?
                    .to_ascii_lowercase()
                    .replace('_', "-");
                Some((k.clone(), lookup(&name)?, v.clone()))
            })
            .collect();
        group.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(group);
    }
    out
}

/// uWSGI's booleans in files and the environment: false only for
/// `false`/`off`/`no` (any case) or exactly `0`; anything else is true.
pub(crate) fn uwsgi_bool(value: &str) -> bool {
    let v = value.trim();
    !(v == "0"
        || ["false", "off", "no"]
            .iter()
            .any(|f| v.eq_ignore_ascii_case(f)))
}

/// The OS's message for an I/O error, without Rust's " (os error N)".
pub(crate) fn os_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The file being read, for magic variables and `ini = :section`.
#[derive(Clone)]
struct FileCtx {
    file: Rc<ConfigFile>,
    root: Rc<ConfigFile>,
    format: Format,
    depth: usize,
}

/// An unknown key met in a file.
struct Unknown {
    name: String,
    origin: String,
}

struct Loader<'e> {
    env: &'e [(String, String)],
    files: &'e dyn Files,
    facts: Option<ProcessFacts>,
    settings: Vec<Setting>,
    /// Latest value of each option (canonical name) and placeholder, for `%(name)`.
    options: HashMap<&'static str, String>,
    placeholders: HashMap<String, String>,
    referenced: HashSet<String>,
    unknown: Vec<Unknown>,
    notes: Vec<String>,
    /// Bytes expansion has added so far, against [`MAX_EXPANDED_TOTAL`].
    expanded_growth: usize,
}

impl<'e> Loader<'e> {
    fn new(env: &'e [(String, String)], files: &'e dyn Files) -> Self {
        Loader {
            env,
            files,
            facts: None,
            settings: Vec::new(),
            options: HashMap::new(),
            placeholders: HashMap::new(),
            referenced: HashSet::new(),
            unknown: Vec::new(),
            notes: Vec::new(),
            expanded_growth: 0,
        }
    }

    /// Add one option with its (expanded) value: load a file, note an
    /// ignored option, set a placeholder, or append a setting.
    fn apply(
        &mut self,
        spec: &'static OptionSpec,
        value: String,
        origin: &str,
        ctx: Option<&FileCtx>,
    ) -> Result<(), ConfigError> {
        let name_value = |value: &str| {
            value
                .split_once('=')
                .map(|(n, v)| (n.trim().to_string(), v.to_string()))
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| ConfigError::BadValue {
                    origin: origin.into(),
                    name: spec.name.into(),
                    value: value.into(),
                    expected: "NAME=VALUE".into(),
                })
        };
        match spec.name {
            "ini" | "xml" | "yaml" | "json" | "include" => {
                let (path, section) = split_section(&value);
                let (path, format) = match (path.is_empty(), ctx) {
                    (true, Some(ctx)) => (ctx.file.given.clone(), ctx.format),
                    (true, None) => {
                        return Err(ConfigError::BadValue {
                            origin: origin.into(),
                            name: spec.name.into(),
                            value,
                            expected:
                                "FILE[:SECTION] (\":SECTION\" alone only inside a config file)"
                                    .into(),
                        });
                    }
                    (false, _) => {
                        let format = Format::of_option(spec.name)
                            .or_else(|| Format::of_path(path))
                            .ok_or_else(|| ConfigError::BadValue {
                                origin: origin.into(),
                                name: spec.name.into(),
                                value: value.clone(),
                                expected: "a file ending in .ini, .xml, .yaml, .yml, .json or .js"
                                    .into(),
                            })?;
                        (path.to_string(), format)
                    }
                };
                self.read_file(format, &path, section, origin, ctx)
            }
            "plugins" => {
                let python = value
                    .split([',', ' '])
                    .filter(|p| !p.is_empty())
                    .all(|p| p.starts_with("python"));
                let why = if python {
                    "Python is built in"
                } else {
                    "Portico has no plugins (Python is built in)"
                };
                self.notes
                    .push(format!("{} = {value} ignored: {why}", spec.name));
                Ok(())
            }
            "set" => {
                let (name, v) = name_value(&value)?;
                match lookup(&name) {
                    Some(target) if !matches!(target.name, "set" | "set-placeholder") => {
                        let v = if target.kind == Kind::Flag {
                            uwsgi_bool(&v).to_string()
                        } else {
                            v
                        };
                        self.apply(target, v, origin, ctx)
                    }
                    _ => self.placeholder(name, v, origin),
                }
            }
            "set-placeholder" => {
                let (name, v) = name_value(&value)?;
                self.placeholder(name, v, origin)
            }
            _ => {
                self.options.insert(spec.name, value.clone());
                self.settings.push(Setting {
                    option: spec,
                    value,
                    origin: origin.into(),
                });
                Ok(())
            }
        }
    }

    fn placeholder(
        &mut self,
        name: String,
        value: String,
        origin: &str,
    ) -> Result<(), ConfigError> {
        self.settings.push(Setting {
            option: placeholder_spec(),
            value: format!("{name}={value}"),
            origin: origin.into(),
        });
        self.placeholders.insert(name, value);
        Ok(())
    }

    /// Read one config file (a section of it) and apply its entries in order.
    fn read_file(
        &mut self,
        format: Format,
        path: &str,
        section: Option<&str>,
        origin: &str,
        parent: Option<&FileCtx>,
    ) -> Result<(), ConfigError> {
        let depth = parent.map_or(0, |p| p.depth + 1);
        if depth > MAX_INCLUDE_DEPTH {
            return Err(ConfigError::Syntax {
                origin: origin.into(),
                message: format!(
                    "config files nested more than {MAX_INCLUDE_DEPTH} deep (does {path} include itself?)"
                ),
            });
        }
        let read_err = |e: std::io::Error| ConfigError::Read {
            path: path.into(),
            source: e.into(),
        };
        let (text, abs, inode) = self.files.config(path).map_err(read_err)?;
        let entries = format.parse(&text, section).map_err(|e| match e {
            FormatError::Syntax { line, col, message } => ConfigError::Syntax {
                origin: match col {
                    Some(col) => format!("{path}:{line}:{col}"),
                    None => format!("{path}:{line}"),
                },
                message,
            },
            FormatError::NoSection { found } => ConfigError::MissingSection {
                path: path.into(),
                section: section
                    .or(format.default_section())
                    .unwrap_or("uwsgi")
                    .into(),
                what: format.section_word(),
                found,
            },
        })?;
        let file = Rc::new(ConfigFile {
            given: path.into(),
            abs,
            section: section
                .or(format.default_section())
                .unwrap_or("")
                .to_string(),
            inode,
        });
        let ctx = FileCtx {
            root: parent.map_or_else(|| file.clone(), |p| p.root.clone()),
            file,
            format,
            depth,
        };
        for entry in entries {
            self.entry(entry, &ctx)?;
        }
        Ok(())
    }

    /// One `key = value` from a file.
    fn entry(&mut self, entry: Entry, ctx: &FileCtx) -> Result<(), ConfigError> {
        let origin = format!("{}:{}", ctx.file.given, entry.line);
        let spec = lookup(&entry.key);
        let Some(raw) = entry.value else {
            return match spec {
                Some(spec) if matches!(spec.kind, Kind::Flag | Kind::OptionalValue) => {
                    self.apply(spec, "true".into(), &origin, Some(ctx))
                }
                Some(spec) => Err(ConfigError::MissingValue {
                    origin,
                    name: spec.name.into(),
                }),
                None if ctx.format == Format::Ini => Err(ConfigError::Syntax {
                    origin,
                    message: format!(
                        "expected \"key = value\", found \"{}\" (not the name of a switch)",
                        entry.key
                    ),
                }),
                None => self.unknown_key(entry.key, String::new(), origin),
            };
        };
        // uWSGI leaves a `%(name)` that names nothing as written; Portico
        // refuses it, except in log formats, whose `%(addr)`… are log variables.
        let unresolved = match spec {
            Some(spec) if LOG_TEMPLATE_OPTIONS.contains(&spec.name) => expand::Unresolved::Keep,
            _ => expand::Unresolved::Fail,
        };
        let value = self.expand(&raw, &origin, ctx, unresolved)?;
        match spec {
            Some(spec) if spec.kind == Kind::Flag => {
                self.apply(spec, uwsgi_bool(&value).to_string(), &origin, Some(ctx))
            }
            Some(spec) => self.apply(spec, value, &origin, Some(ctx)),
            None => self.unknown_key(entry.key, value, origin),
        }
    }

    /// uWSGI accepts unknown keys as placeholders; remember them to warn later.
    fn unknown_key(
        &mut self,
        name: String,
        value: String,
        origin: String,
    ) -> Result<(), ConfigError> {
        self.placeholder(name.clone(), value, &origin)?;
        self.unknown.push(Unknown { name, origin });
        Ok(())
    }

    /// Magic variables, then `$()`, `@()` and `%()`.
    fn expand(
        &mut self,
        raw: &str,
        origin: &str,
        ctx: &FileCtx,
        unresolved: expand::Unresolved,
    ) -> Result<String, ConfigError> {
        let facts = self.facts.get_or_insert_with(ProcessFacts::of_this_process);
        let value = magic::expand(raw, &ctx.file, &ctx.root, facts);
        let env = self.env;
        let value = expand::env_pass(&value, origin, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })?;
        let value = expand::file_pass(&value, origin, self.files)?;
        let (options, placeholders, referenced) =
            (&self.options, &self.placeholders, &mut self.referenced);
        let value = expand::placeholder_pass(&value, origin, unresolved, |name| {
            referenced.insert(name.to_string());
            placeholders
                .get(name)
                .or_else(|| lookup(name).and_then(|spec| options.get(spec.name)))
                .cloned()
        })?;
        self.expanded_growth += value.len().saturating_sub(raw.len());
        if self.expanded_growth > MAX_EXPANDED_TOTAL {
            return Err(ConfigError::Syntax {
                origin: origin.into(),
                message: format!(
                    "expansion has added more than the limit of {MAX_EXPANDED_TOTAL} bytes \
                     to this configuration"
                ),
            });
        }
        Ok(value)
    }

    /// Decide about unknown keys and hand the list over.
    fn finish(mut self) -> Result<Loaded, ConfigError> {
        let strict = self
            .settings
            .iter()
            .rev()
            .find(|s| s.option.name == "strict")
            .is_some_and(|s| s.value == "true");
        let (mut shown, mut unshown) = (0usize, 0usize);
        for u in &self.unknown {
            if !strict && self.referenced.contains(&u.name) {
                continue;
            }
            if !strict && shown >= MAX_UNKNOWN_WARNINGS {
                unshown += 1; // no suggestion computed: it is not printed
                continue;
            }
            let error = ConfigError::UnknownOption {
                origin: u.origin.clone(),
                name: u.name.clone(),
                suggestion: suggest(&u.name),
            };
            if strict {
                return Err(error);
            }
            self.notes.push(format!("WARNING: {error}"));
            shown += 1;
        }
        if unshown > 0 {
            self.notes.push(format!(
                "WARNING: {unshown} more unknown options not shown (the first \
                 {MAX_UNKNOWN_WARNINGS} are above)"
            ));
        }
        Ok(Loaded {
            settings: self.settings,
            notes: self.notes,
        })
    }
}

/// The table entry placeholders are recorded under (so `--show-config`
/// prints them as `set-placeholder = NAME=VALUE`).
fn placeholder_spec() -> &'static OptionSpec {
    #[allow(clippy::expect_used)] // the table is static; a test pins the entry
    lookup("set-placeholder").expect("set-placeholder is in the option table")
}

/// `FILE[:SECTION]` → (FILE, SECTION); a colon followed by a path is part of FILE.
fn split_section(value: &str) -> (&str, Option<&str>) {
    match value.rsplit_once(':') {
        Some((file, section)) if !section.contains('/') => {
            (file, (!section.is_empty()).then_some(section))
        }
        _ => (value, None),
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
