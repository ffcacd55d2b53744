//! Reading an upstream response ahead of a slow client (`proxy_buffering
//! on`): pieces the client is not ready for wait here, in memory up to
//! `proxy_buffers` (N × size), then in an unlinked temporary file up to
//! `proxy_max_temp_file_size`, and are handed to the connection in order —
//! file regions as [`StreamItem::File`], sent with sendfile(2). So the
//! upstream is read at its own pace and its connection freed (pooled) as
//! soon as its body is in, as nginx does. Past both limits the pump stops
//! reading until the client catches up.
//!
//! Writes to the file are plain blocking `pwrite`s on the runtime thread,
//! as nginx's are (page-cache writes).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use portico_server::StreamItem;

/// Names temporary files apart within this process.
static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

enum Held {
    Memory(Bytes),
    File { offset: u64, len: u64 },
}

/// The pieces waiting for the client.
pub(crate) struct Spool {
    queue: VecDeque<Held>,
    memory: usize,
    memory_limit: usize,
    file: Option<File>,
    /// Bytes written to the file so far (its end).
    file_end: u64,
    file_limit: u64,
    dir: PathBuf,
}

impl Spool {
    /// `memory_limit`: `proxy_buffers`' total; `file_limit`:
    /// `proxy_max_temp_file_size` (0: never spill); files go in `dir`.
    pub(crate) fn new(memory_limit: usize, file_limit: u64, dir: PathBuf) -> Spool {
        Spool {
            queue: VecDeque::new(),
            memory: 0,
            memory_limit,
            file: None,
            file_end: 0,
            file_limit,
            dir,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// No room for another piece: stop reading the upstream for now.
    pub(crate) fn is_full(&self) -> bool {
        self.memory >= self.memory_limit && self.file_end >= self.file_limit
    }

    /// Hold `data` after everything held already.
    pub(crate) fn push(&mut self, data: Bytes) -> io::Result<()> {
        let len = data.len();
        let file_in_use = matches!(self.queue.back(), Some(Held::File { .. }));
        if !file_in_use && self.memory + len <= self.memory_limit
            || self.file_end + len as u64 > self.file_limit
        {
            self.memory += len;
            self.queue.push_back(Held::Memory(data));
            return Ok(());
        }
        let offset = self.file_end;
        self.file()?.write_all_at(&data, offset)?;
        self.file_end += len as u64;
        match self.queue.back_mut() {
            Some(Held::File { offset: at, len: n }) if *at + *n == offset => *n += len as u64,
            _ => self.queue.push_back(Held::File {
                offset,
                len: len as u64,
            }),
        }
        Ok(())
    }

    /// The oldest held piece, for the client.
    pub(crate) fn pop(&mut self) -> io::Result<Option<StreamItem>> {
        let item = match self.queue.pop_front() {
            None => return Ok(None),
            Some(Held::Memory(data)) => {
                self.memory -= data.len();
                StreamItem::Data(data)
            }
            Some(Held::File { offset, len }) => StreamItem::File {
                file: self.file()?.try_clone()?,
                offset,
                len,
            },
        };
        Ok(Some(item))
    }

    /// The temporary file, created (and unlinked at once) on first use.
    fn file(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .join(format!("portico-proxy-{}-{n}", std::process::id()));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("open() \"{}\" failed: {e}", path.display()),
                    )
                })?;
            let _ = std::fs::remove_file(&path);
            self.file = Some(file);
        }
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("no temporary file"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(item: StreamItem) -> Vec<u8> {
        match item {
            StreamItem::Data(d) => d.to_vec(),
            StreamItem::File { file, offset, len } => {
                let mut out = vec![0u8; len as usize];
                file.read_exact_at(&mut out, offset).expect("read back");
                out
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn pieces_come_back_in_order_from_memory_then_the_file_then_memory() {
        let mut spool = Spool::new(4, 6, std::env::temp_dir());
        for (i, piece) in ["ab", "cd", "ef", "gh", "ij", "kl"].into_iter().enumerate() {
            assert_eq!(spool.is_full(), i == 5, "full once memory and file are");
            spool.push(Bytes::from(piece)).expect("push");
        }
        // ab cd in memory (4), ef gh ij to the file (6), kl in memory again
        // (pieces already read still get in).
        let mut got = Vec::new();
        let mut kinds = Vec::new();
        while let Some(item) = spool.pop().expect("pop") {
            kinds.push(matches!(item, StreamItem::File { .. }));
            got.extend(read(item));
        }
        assert_eq!(got, b"abcdefghijkl");
        assert_eq!(kinds, [false, false, true, false], "file regions merge");
        assert!(spool.is_empty());
    }

    #[test]
    fn without_a_file_limit_nothing_spills() {
        let mut spool = Spool::new(2, 0, std::env::temp_dir());
        spool.push(Bytes::from_static(b"abc")).expect("push");
        assert!(spool.is_full());
        assert!(matches!(spool.pop(), Ok(Some(StreamItem::Data(_)))));
    }
}
