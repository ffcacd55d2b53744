//! The open-file/content cache of the static handler: small files are kept
//! in memory, keyed by path and trusted only while the file's size and
//! mtime (from the `stat` done on every request anyway) are unchanged, so a
//! changed file is noticed on the next request. The file's validators
//! (ETag, Last-Modified) are kept with it, formatted once.
//!
//! [`MetaCache`] is nginx's `open_file_cache` for the site engine: with it
//! on, a file's metadata is looked up once per `open_file_cache_valid`
//! (so a changed file is seen within that time, as in nginx), which saves
//! the `stat` of every request; lookups that fail are not kept
//! (`open_file_cache_errors off`, nginx's default).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

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

/// Metadata by path, each trusted for the `valid` time it is looked up with.
#[derive(Default)]
pub(crate) struct MetaCache {
    entries: Mutex<HashMap<PathBuf, (Metadata, Instant)>>,
}

impl MetaCache {
    /// `path`'s metadata: the kept one if younger than `valid`, else a
    /// fresh `stat` (kept, at most `max` paths: past that the cache starts
    /// afresh).
    pub(crate) fn metadata(
        &self,
        path: &Path,
        max: usize,
        valid: Duration,
    ) -> io::Result<Metadata> {
        let now = Instant::now();
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((meta, at)) = entries.get(path)
                && now.duration_since(*at) < valid
            {
                return Ok(meta.clone());
            }
        }
        let meta = std::fs::metadata(path)?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= max && !entries.contains_key(path) {
            entries.clear();
        }
        entries.insert(path.to_path_buf(), (meta.clone(), now));
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_trusted_for_the_valid_time_only() {
        let dir = std::env::temp_dir().join(format!("portico-meta-cache-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("f.txt");
        assert!(std::fs::write(&file, b"one").is_ok());
        let cache = MetaCache::default();
        let first = cache.metadata(&file, 10, Duration::from_secs(60));
        assert_eq!(first.map(|m| m.len()).ok(), Some(3));
        assert!(std::fs::write(&file, b"three").is_ok());
        let kept = cache.metadata(&file, 10, Duration::from_secs(60));
        assert_eq!(
            kept.map(|m| m.len()).ok(),
            Some(3),
            "within valid: the kept one"
        );
        let fresh = cache.metadata(&file, 10, Duration::ZERO);
        assert_eq!(
            fresh.map(|m| m.len()).ok(),
            Some(5),
            "past valid: looked up again"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
