//! The open-file/content cache of the static handler: small files are kept
//! in memory, keyed by path and trusted only while the file's size and
//! mtime (from the `stat` done on every request anyway) are unchanged, so a
//! changed file is noticed on the next request. The file's validators
//! (ETag, Last-Modified) are kept with it, formatted once.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;

use super::conditional::Validators;

/// Files up to this size are cached in memory; larger ones use sendfile.
pub(crate) const MAX_CACHED_FILE: u64 = 64 * 1024;

/// Memory a worker's cache may hold; past it the cache starts afresh.
pub(crate) const MAX_CACHE_BYTES: usize = 32 * 1024 * 1024;

struct Entry {
    bytes: Bytes,
    validators: Validators,
    len: u64,
    mtime: Option<SystemTime>,
}

#[derive(Default)]
pub(crate) struct ContentCache {
    entries: HashMap<PathBuf, Entry>,
    bytes: usize,
}

impl ContentCache {
    /// The cached content and validators, if the file is unchanged since
    /// it was read.
    pub(crate) fn get(&self, path: &Path, meta: &Metadata) -> Option<(Bytes, Validators)> {
        let entry = self.entries.get(path)?;
        (entry.len == meta.len() && entry.mtime == meta.modified().ok())
            .then(|| (entry.bytes.clone(), entry.validators.clone()))
    }

    /// Read and keep a small file with its `validators`; `None` if it is
    /// too big to cache.
    pub(crate) fn insert(
        &mut self,
        path: &Path,
        meta: &Metadata,
        validators: &Validators,
        file: &File,
    ) -> io::Result<Option<Bytes>> {
        if meta.len() > MAX_CACHED_FILE {
            return Ok(None);
        }
        let mut data = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_CACHED_FILE + 1).read_to_end(&mut data)?;
        if data.len() as u64 != meta.len() {
            // Changed while we read it: serve what we read, cache nothing.
            return Ok(Some(Bytes::from(data)));
        }
        let bytes = Bytes::from(data);
        if self.bytes + bytes.len() > MAX_CACHE_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += bytes.len();
        if let Some(old) = self.entries.insert(
            path.to_path_buf(),
            Entry {
                bytes: bytes.clone(),
                validators: validators.clone(),
                len: meta.len(),
                mtime: meta.modified().ok(),
            },
        ) {
            self.bytes -= old.bytes.len();
        }
        Ok(Some(bytes))
    }
}
