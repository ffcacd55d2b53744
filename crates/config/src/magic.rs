//! uWSGI's magic variables (`%d`, `%n`, `%h`, …): facts about the config file
//! being read and about this process, substituted into every value of that
//! file as it is read. `%(name)` is left for the placeholder pass
//! (`expand.rs`) and an unknown `%x` is left as written, as uWSGI does.
//! Portico adds one escape, `%\xHH` for the ASCII character HH, which
//! `--show-config` writes for what an ini line cannot hold raw (newlines,
//! control characters, spaces at either end of a value).
//!
//! The process facts (host name, user, group, CPUs) are the only place the
//! config crate asks the OS anything.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A config file as read: what the magic variables describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigFile {
    /// The path as the user gave it (`%o`).
    pub given: String,
    /// The absolute, canonical path (`%p`).
    pub abs: PathBuf,
    /// The section (or XML id) read from it (`%x`).
    pub section: String,
    /// Its inode number (`%i`).
    pub inode: u64,
}

/// Facts about this process, gathered once per start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcessFacts {
    pub hostname: String,
    pub cpus: usize,
    pub uid: u32,
    pub user: String,
    pub gid: u32,
    pub group: String,
    pub version: &'static str,
    /// Start time in microseconds since the epoch (`%t` in seconds, `%T` as is).
    pub start_micros: u128,
}

impl ProcessFacts {
    /// Ask the OS.
    pub(crate) fn of_this_process() -> ProcessFacts {
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        ProcessFacts {
            hostname: hostname(),
            cpus: online_cpus(),
            uid,
            user: name_in(Path::new("/etc/passwd"), uid).unwrap_or_else(|| uid.to_string()),
            gid,
            group: name_in(Path::new("/etc/group"), gid).unwrap_or_else(|| gid.to_string()),
            version: env!("CARGO_PKG_VERSION"),
            start_micros: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
        }
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// CPUs online, as uWSGI's `%k` counts them (not the affinity mask).
fn online_cpus() -> usize {
    use nix::unistd::{SysconfVar, sysconf};
    sysconf(SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The name for `id` in a passwd-style file (`name:x:id:...`).
fn name_in(file: &Path, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found: u32 = fields.nth(1)?.parse().ok()?;
        (found == id).then(|| name.to_string())
    })
}

/// uWSGI's djb33x hash (`%j`).
fn djb33x(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(5381u32, |h, &b| h.wrapping_mul(33) ^ u32::from(b))
}

/// The value of `%letter` for `file`, or `None` if it is not a file variable.
fn file_var(letter: char, file: &ConfigFile) -> Option<String> {
    let dir = file.abs.parent().unwrap_or(Path::new("/"));
    let os = |s: Option<&std::ffi::OsStr>| {
        s.map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    Some(match letter {
        'd' => {
            let d = dir.to_string_lossy();
            if d.ends_with('/') {
                d.into_owned()
            } else {
                format!("{d}/")
            }
        }
        'n' => os(file.abs.file_stem()),
        'e' => os(file.abs.extension()),
        's' => os(file.abs.file_name()),
        'p' => file.abs.to_string_lossy().into_owned(),
        'c' => os(dir.file_name()),
        'o' => file.given.clone(),
        'x' => format!("{}:{}", file.given, file.section),
        'i' => file.inode.to_string(),
        'j' => format!("{:x}", djb33x(file.abs.to_string_lossy().as_bytes())),
        '0'..='9' => {
            let n = letter as usize - '0' as usize;
            dir.to_string_lossy()
                .split('/')
                .filter(|p| !p.is_empty())
                .nth(n)
                .unwrap_or("")
                .to_string()
        }
        _ => return None,
    })
}

/// Substitute magic variables in `value`, read from `file` (inside `root`,
/// the file named on the command line, which the upper-case forms describe).
pub(crate) fn expand(
    value: &str,
    file: &ConfigFile,
    root: &ConfigFile,
    facts: &ProcessFacts,
) -> String {
    if !value.contains('%') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(&letter) = chars.peek() else {
            out.push('%');
            break;
        };
        if letter == '\\' {
            if let Some(c) = ascii_escape(chars.clone()) {
                chars.nth(3);
                out.push(c);
                continue;
            }
            out.push('%');
            continue;
        }
        let replacement = match letter {
            '%' => Some("%".to_string()),
            'h' => Some(facts.hostname.clone()),
            'k' => Some(facts.cpus.to_string()),
            'u' => Some(facts.uid.to_string()),
            'U' => Some(facts.user.clone()),
            'g' => Some(facts.gid.to_string()),
            'G' => Some(facts.group.clone()),
            'V' => Some(facts.version.to_string()),
            't' => Some((facts.start_micros / 1_000_000).to_string()),
            'T' => Some(facts.start_micros.to_string()),
            'D' | 'N' | 'E' | 'S' | 'P' | 'C' | 'O' | 'X' | 'I' | 'J' => {
                file_var(letter.to_ascii_lowercase(), root)
            }
            other => file_var(other, file),
        };
        match replacement {
            Some(r) => {
                chars.next();
                out.push_str(&r);
            }
            None => out.push('%'),
        }
    }
    out
}

/// The character of `\xHH` (ASCII only) at the start of `chars`.
fn ascii_escape(mut chars: impl Iterator<Item = char>) -> Option<char> {
    if chars.next()? != '\\' || chars.next()? != 'x' {
        return None;
    }
    let hi = chars.next()?.to_digit(16)?;
    let lo = chars.next()?.to_digit(16)?;
    char::from_u32(hi * 16 + lo).filter(char::is_ascii)
}

/// `value` written so that [`expand`] gives it back: `%` as `%%`, and as
/// `%\xHH` the characters an ini line cannot hold raw (control characters,
/// and whitespace at either end, which the reader trims).
pub(crate) fn escape(value: &str) -> String {
    let keep_from = value.len() - value.trim_start().len();
    let keep_to = value.trim_end().len();
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.char_indices() {
        let at_an_end = i < keep_from || i >= keep_to;
        if c == '%' {
            out.push_str("%%");
        } else if c.is_ascii_control() || (at_an_end && c.is_ascii_whitespace()) {
            out.push_str(&format!("%\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> ConfigFile {
        ConfigFile {
            given: "cfg/app.ini".into(),
            abs: PathBuf::from(path),
            section: "uwsgi".into(),
            inode: 42,
        }
    }

    fn facts() -> ProcessFacts {
        ProcessFacts {
            hostname: "box".into(),
            cpus: 8,
            uid: 1000,
            user: "alice".into(),
            gid: 100,
            group: "staff".into(),
            version: "9.9.9",
            start_micros: 1_700_000_000_123_456,
        }
    }

    #[test]
    fn file_variables_describe_the_file_being_read() {
        let f = file("/srv/app/cfg/app.ini");
        let got = expand("%d|%n|%e|%s|%p|%c|%o|%x|%i|%0|%2|%9", &f, &f, &facts());
        assert_eq!(
            got,
            "/srv/app/cfg/|app|ini|app.ini|/srv/app/cfg/app.ini|cfg|cfg/app.ini|cfg/app.ini:uwsgi|42|srv|cfg|"
        );
    }

    #[test]
    fn process_variables_and_escapes() {
        let f = file("/a.ini");
        let got = expand(
            "%h %k %u %U %g %G %V %t %T 100%% %(x) %q %",
            &f,
            &f,
            &facts(),
        );
        assert_eq!(
            got,
            "box 8 1000 alice 100 staff 9.9.9 1700000000 1700000000123456 100% %(x) %q %"
        );
        assert_eq!(expand("%d", &f, &f, &facts()), "/");
    }

    #[test]
    fn ascii_escapes_give_the_character_and_escape_undoes_expand() {
        let f = file("/a.ini");
        assert_eq!(
            expand("a%\\x0ab%\\x0D%\\x41 %\\xff %\\x4 %\\", &f, &f, &facts()),
            "a\nb\rA %\\xff %\\x4 %\\"
        );
        for value in [
            "line one\nline two",
            " padded\t",
            "100% %\\x41 %%",
            "\r\n\u{1b}[0m",
            "plain",
            "",
        ] {
            let written = escape(value);
            assert!(!written.contains(['\n', '\r']), "{written:?}");
            assert_eq!(written.trim(), written, "{written:?}");
            assert_eq!(expand(&written, &f, &f, &facts()), value, "{written:?}");
        }
    }

    #[test]
    fn upper_case_file_variables_describe_the_outer_file() {
        let inner = file("/etc/inc/base.ini");
        let outer = file("/srv/top.ini");
        assert_eq!(
            expand("%n %N %D", &inner, &outer, &facts()),
            "base top /srv/"
        );
    }

    #[test]
    fn djb33x_matches_the_reference_values() {
        assert_eq!(djb33x(b""), 5381);
        assert_eq!(djb33x(b"a"), (5381u32 * 33) ^ 97);
    }
}
