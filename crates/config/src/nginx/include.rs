//! Where `include` finds its files: a path relative to the main config's
//! directory, glob(3) patterns (sorted, `*` skips dotfiles, no match is no
//! error), nginx's `open() "..." failed` message, and Portico's built-in
//! copies of `uwsgi_params`, `mime.types` and `proxy_params` for configs
//! that include them from a directory that does not hold them.
//!
//! Parsing the files is the parser's job; this only finds and reads them.

use std::io;
use std::path::{Path, PathBuf};

/// Debian's `/etc/nginx/uwsgi_params`, as shipped with nginx 1.22.
const UWSGI_PARAMS: &str = include_str!("../../conf/uwsgi_params");
/// Debian's `/etc/nginx/mime.types`.
const MIME_TYPES: &str = include_str!("../../conf/mime.types");
/// Debian's `/etc/nginx/proxy_params`.
const PROXY_PARAMS: &str = include_str!("../../conf/proxy_params");

/// Portico's built-in copy of a file nginx packages ship beside nginx.conf:
/// `uwsgi_params`, `mime.types` or `proxy_params`; `None` for other names.
pub fn builtin_file(name: &str) -> Option<&'static str> {
    match name {
        "uwsgi_params" => Some(UWSGI_PARAMS),
        "mime.types" => Some(MIME_TYPES),
        "proxy_params" => Some(PROXY_PARAMS),
        _ => None,
    }
}

/// The name a built-in file is known by in `-T` and in messages.
pub(crate) fn builtin_path(name: &str) -> PathBuf {
    PathBuf::from(format!("(portico built-in)/{name}"))
}

/// One file an `include` names, read.
#[derive(Debug)]
pub(crate) struct Included {
    pub path: PathBuf,
    pub text: Vec<u8>,
    /// The built-in copy stood in for a missing file.
    pub builtin: bool,
}

/// `path` made absolute against `base` (nginx's `ngx_conf_full_name`: no
/// normalisation, no symlink resolution).
pub(crate) fn full_name(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// nginx's wording of an OS error: `(2: No such file or directory)`.
pub(crate) fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = io::Error::from_raw_os_error(code).to_string();
            let text = text
                .split(" (os error")
                .next()
                .unwrap_or(text.as_str())
                .to_string();
            format!("({code}: {text})")
        }
        None => format!("({e})"),
    }
}

/// Read one file as nginx opens a config file; the error is nginx's message.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|e| format!("open() \"{}\" failed {}", path.display(), os_error(&e)))
}

/// The files `include ARG` reads, in order, with `conf_dir` the main config's
/// directory. Without glob characters the file must exist, unless it is one
/// Portico has a copy of; a pattern may match nothing.
pub(crate) fn resolve(conf_dir: &Path, arg: &str) -> Result<Vec<Included>, String> {
    let full = full_name(conf_dir, arg);
    if !arg.contains(['*', '?', '[']) {
        return match std::fs::read(&full) {
            Ok(text) => Ok(vec![Included {
                path: full,
                text,
                builtin: false,
            }]),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let name = Path::new(arg).file_name().and_then(|n| n.to_str());
                match name
                    .filter(|_| !Path::new(arg).is_absolute())
                    .and_then(|n| builtin_file(n).map(|text| (n, text)))
                {
                    Some((name, text)) => Ok(vec![Included {
                        path: builtin_path(name),
                        text: text.as_bytes().to_vec(),
                        builtin: true,
                    }]),
                    None => Err(format!(
                        "open() \"{}\" failed {}",
                        full.display(),
                        os_error(&e)
                    )),
                }
            }
            Err(e) => Err(format!(
                "open() \"{}\" failed {}",
                full.display(),
                os_error(&e)
            )),
        };
    }
    let pattern = full.to_string_lossy().into_owned();
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(&pattern, options)
        .map_err(|e| format!("glob() \"{pattern}\" failed ({e})"))?;
    let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
    // glob(3) sorts the whole list by name (nginx runs in the C locale).
    found.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    let mut out = Vec::with_capacity(found.len());
    for path in found {
        let text = read_file(&path)?;
        out.push(Included {
            path,
            text,
            builtin: false,
        });
    }
    Ok(out)
}
