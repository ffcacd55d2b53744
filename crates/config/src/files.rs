//! Where the option loader reads files from: config files (`--ini FILE`,
//! positional files, `include`) and `@(PATH)` references. [`Disk`] is the
//! real file system; [`Memory`] is a map of paths to bytes, for the fuzz
//! targets (fuzz/) and tests, so they never touch the machine's files.
//! Both enforce the same size limits, which live in the callers.

use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::load::MAX_CONFIG_FILE;

/// A source of files for the loader.
pub(crate) trait Files {
    /// A config file's text (refused past [`MAX_CONFIG_FILE`] bytes or when
    /// not UTF-8), its canonical path (`%p`) and inode (`%i`).
    fn config(&self, path: &str) -> io::Result<(String, PathBuf, u64)>;
    /// Open the file `@(PATH)` names; the caller bounds the read.
    fn open(&self, path: &str) -> io::Result<Box<dyn Read + '_>>;
}

/// The real file system.
pub(crate) struct Disk;

impl Files for Disk {
    fn config(&self, path: &str) -> io::Result<(String, PathBuf, u64)> {
        let file = std::fs::File::open(path)?;
        let text = bounded_text(file)?;
        let abs = std::fs::canonicalize(path)?;
        let inode = std::fs::metadata(&abs).map(|m| m.ino()).unwrap_or(0);
        Ok((text, abs, inode))
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(std::fs::File::open(path)?))
    }
}

/// Files held in memory: each path names its bytes; any path under `/dev/`
/// reads as an endless stream (as `/dev/zero` and `/dev/urandom` do), so
/// an unbounded read shows up; anything else does not exist.
#[derive(Debug, Default, Clone)]
pub struct Memory {
    files: Vec<(String, Vec<u8>)>,
}

impl Memory {
    /// No files.
    pub fn new() -> Memory {
        Memory::default()
    }

    /// Add (or replace) the file at `path`.
    pub fn with(mut self, path: &str, bytes: &[u8]) -> Memory {
        self.files.retain(|(p, _)| p != path);
        self.files.push((path.to_string(), bytes.to_vec()));
        self
    }

    fn find(&self, path: &str) -> io::Result<(usize, &[u8])> {
        self.files
            .iter()
            .enumerate()
            .find(|(_, (p, _))| p == path)
            .map(|(i, (_, bytes))| (i, bytes.as_slice()))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

impl Files for Memory {
    fn config(&self, path: &str) -> io::Result<(String, PathBuf, u64)> {
        if path.starts_with("/dev/") {
            return bounded_text(io::repeat(b'x')).map(|t| (t, PathBuf::from(path), 1));
        }
        let (index, bytes) = self.find(path)?;
        let text = bounded_text(bytes)?;
        let abs = PathBuf::from("/memory").join(path);
        Ok((text, abs, index as u64 + 2))
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn Read + '_>> {
        if path.starts_with("/dev/") {
            return Ok(Box::new(io::repeat(b'x')));
        }
        Ok(Box::new(self.find(path)?.1))
    }
}

/// Text of at most [`MAX_CONFIG_FILE`] bytes, UTF-8.
fn bounded_text(source: impl Read) -> io::Result<String> {
    let mut bytes = Vec::new();
    source.take(MAX_CONFIG_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(io::Error::other(format!(
            "larger than the limit of {MAX_CONFIG_FILE} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::load_in_memory;
    use crate::test_err::{chain, text};

    #[test]
    fn files_in_memory_load_as_files_on_disk_do() {
        let files = Memory::new().with("a.ini", b"[uwsgi]\nprocesses = 4\ninclude = b.ini\n");
        let files = files.with("b.ini", b"[uwsgi]\nmaster = true\n");
        let Ok(loaded) = load_in_memory(&["a.ini"], &files) else {
            panic!("a.ini did not load");
        };
        let got: Vec<_> = loaded
            .settings
            .iter()
            .map(|s| (s.option.name, s.value.as_str(), s.origin.as_str()))
            .collect();
        assert_eq!(
            got,
            [("processes", "4", "a.ini:2"), ("master", "true", "b.ini:2")]
        );
        assert!(chain(load_in_memory(&["nope.ini"], &files)).contains("not found"));
    }

    #[test]
    fn dev_paths_in_memory_never_end_and_hit_the_limits() {
        let files = Memory::new().with("a.ini", b"[uwsgi]\nenv = K=@(/dev/zero)\n");
        assert_eq!(
            text(load_in_memory(&["a.ini"], &files)),
            "a.ini:2: cannot read @(/dev/zero): the file is larger than the limit of 65536 bytes"
        );
        assert!(
            chain(load_in_memory(&["/dev/zero.ini"], &files)).contains("larger than the limit")
        );
    }
}
