//! A request body received in full before anyone reads it (nginx's request
//! buffering, uWSGI's `--post-buffering`): [`BodySpool`] keeps it in memory
//! up to a size, then moves it to an unlinked temporary file, and ends as a
//! complete [`RequestBody`].
//!
//! Files are written and read with plain blocking calls on the event loop,
//! as nginx does without `aio`: they hit the page cache, and a thread hop per
//! piece would cost more than the copy (docs/design-notes.md).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};

use crate::body::{BodyError, RequestBody};

/// Bytes of a spooled file read at a time by the body's consumer.
pub(crate) const FILE_PIECE: usize = 64 * 1024;

/// Where and how a body is received before the handler is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Bytes kept in memory; a larger body goes to a temporary file
    /// (`--post-buffering`, nginx's `client_body_buffer_size`). 0: bodies
    /// are not received first but streamed to the handler as they arrive.
    pub memory: usize,
    /// The directory for temporary files (nginx's `client_body_temp_path`);
    /// `None`: `$TMPDIR` or `/tmp`, as uWSGI.
    pub dir: Option<PathBuf>,
    /// Largest body received first, in bytes (0: no limit). A body
    /// announced larger is streamed to the handler, which decides (nginx's
    /// per-location `client_max_body_size`); a chunked body growing larger
    /// is refused with 413.
    pub max: u64,
    /// Largest announced length (`Content-Length`) received first (0: no
    /// limit): the smallest `client_max_body_size` of a site, so that a
    /// body some location refuses is never waited for; larger ones stream
    /// and the location decides (413 without reading, as nginx).
    pub announced_max: u64,
}

/// The default in-memory size of a received body: nginx's
/// `client_body_buffer_size` on 64-bit platforms (two pages).
pub const DEFAULT_BODY_MEMORY: usize = 16 * 1024;

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            memory: DEFAULT_BODY_MEMORY,
            dir: None,
            max: 0,
            announced_max: 0,
        }
    }
}

impl SpoolConfig {
    /// Whether a body with `announced` bytes to come (`None`: chunked) is
    /// received before the handler is called.
    pub fn receives(&self, announced: Option<u64>) -> bool {
        let within = |limit: u64, n: u64| limit == 0 || n <= limit;
        self.memory > 0
            && announced.is_none_or(|n| within(self.max, n) && within(self.announced_max, n))
    }
}

/// A body being received: memory first, then a temporary file.
pub struct BodySpool {
    memory: BytesMut,
    limit: usize,
    file: Option<File>,
    file_len: u64,
    total: u64,
    max: u64,
    dir: Option<PathBuf>,
}

impl BodySpool {
    /// An empty spool for `config`.
    pub fn new(config: &SpoolConfig) -> BodySpool {
        BodySpool {
            memory: BytesMut::new(),
            limit: config.memory,
            file: None,
            file_len: 0,
            total: 0,
            max: config.max,
            dir: config.dir.clone(),
        }
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Add the next piece of the body.
    pub fn push(&mut self, data: &[u8]) -> Result<(), BodyError> {
        self.total += data.len() as u64;
        if self.max > 0 && self.total > self.max {
            return Err(BodyError::TooLarge(self.max));
        }
        if self.file.is_none() && self.memory.len() + data.len() <= self.limit {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
                let mut file = tempfile::tempfile_in(&dir).map_err(|e| {
                    BodyError::Spool(format!(
                        "cannot create a temporary file in {}: {e}",
                        dir.display()
                    ))
                })?;
                write_all(&mut file, &self.memory)?;
                self.file_len = self.memory.len() as u64;
                self.memory = BytesMut::new();
                self.file.insert(file)
            }
        };
        write_all(file, data)?;
        self.file_len += data.len() as u64;
        Ok(())
    }

    /// The whole body, ready to be read from its start.
    pub fn finish(self) -> Result<RequestBody, BodyError> {
        match self.file {
            None => Ok(RequestBody::complete(self.memory.freeze())),
            Some(mut file) => {
                file.rewind().map_err(|e| {
                    BodyError::Spool(format!("cannot rewind a temporary file: {e}"))
                })?;
                Ok(RequestBody::spooled(SpoolFile {
                    file,
                    left: self.file_len,
                }))
            }
        }
    }
}

fn write_all(file: &mut File, data: &[u8]) -> Result<(), BodyError> {
    file.write_all(data)
        .map_err(|e| BodyError::Spool(format!("cannot write a temporary file: {e}")))
}

/// The part of a received body kept in an unlinked temporary file.
pub(crate) struct SpoolFile {
    file: File,
    left: u64,
}

impl SpoolFile {
    /// Bytes not read yet.
    pub(crate) fn left(&self) -> u64 {
        self.left
    }

    /// The next piece, `None` at the end.
    pub(crate) fn next_piece(&mut self) -> Option<Result<Bytes, BodyError>> {
        if self.left == 0 {
            return None;
        }
        let want = (self.left).min(FILE_PIECE as u64) as usize;
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match self.file.read(&mut buf[got..]) {
                Ok(0) => {
                    self.left = 0;
                    return Some(Err(BodyError::Spool(
                        "a temporary file ended early".to_string(),
                    )));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.left = 0;
                    return Some(Err(BodyError::Spool(format!(
                        "cannot read a temporary file: {e}"
                    ))));
                }
            }
        }
        self.left -= want as u64;
        Some(Ok(Bytes::from(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::TryNext;

    fn config(memory: usize, max: u64) -> SpoolConfig {
        SpoolConfig {
            memory,
            dir: None,
            max,
            announced_max: 0,
        }
    }

    #[test]
    fn a_length_over_the_smallest_site_limit_is_left_to_the_location() {
        let spool = SpoolConfig {
            announced_max: 1024,
            ..config(16, 0)
        };
        assert!(spool.receives(Some(1024)));
        assert!(!spool.receives(Some(1025)));
        // chunked: received (up to `max`), the engine checks the total
        assert!(spool.receives(None));
    }

    fn read_all(mut body: RequestBody) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            match body.try_next() {
                TryNext::Data(d) => out.extend_from_slice(&d),
                TryNext::End => return out,
                TryNext::Error(e) => panic!("body failed: {e}"),
                TryNext::WouldBlock => panic!("a spooled body never waits"),
            }
        }
    }

    #[test]
    fn a_small_body_stays_in_memory() {
        let mut spool = BodySpool::new(&config(16, 0));
        assert!(spool.push(b"hello ").is_ok());
        assert!(spool.push(b"world").is_ok());
        assert!(spool.file.is_none());
        let Ok(body) = spool.finish() else {
            panic!("finish")
        };
        assert_eq!(body.complete_len(), Some(11));
        assert_eq!(read_all(body), b"hello world");
    }

    #[test]
    fn a_body_over_the_memory_size_moves_to_a_file_and_reads_back_whole() {
        let mut spool = BodySpool::new(&config(1000, 0));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(7_000) {
            assert!(spool.push(piece).is_ok());
        }
        assert!(spool.file.is_some());
        assert!(spool.memory.is_empty(), "memory released once on file");
        let Ok(body) = spool.finish() else {
            panic!("finish")
        };
        assert_eq!(body.complete_len(), Some(300_000));
        assert_eq!(read_all(body), data);
    }

    #[test]
    fn a_body_past_the_maximum_is_refused() {
        let mut spool = BodySpool::new(&config(10, 20));
        assert!(spool.push(&[0; 15]).is_ok());
        assert_eq!(spool.push(&[0; 6]), Err(BodyError::TooLarge(20)));
    }

    #[test]
    fn announced_sizes_over_the_maximum_are_not_received_first() {
        let c = config(10, 100);
        assert!(c.receives(Some(100)));
        assert!(!c.receives(Some(101)));
        assert!(c.receives(None), "chunked: received, limited as it grows");
        assert!(!config(0, 0).receives(Some(1)), "0: streamed");
        assert!(config(10, 0).receives(Some(u64::MAX)), "no maximum");
    }
}
