//! The scoreboard: one shared anonymous mapping made by the master before
//! it forks, holding a slot per worker and per worker thread ("core").
//! Workers write their own slots with atomics; the master reads them for
//! harakiri, memory limits and statistics. All-zero bytes are a valid,
//! idle board.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Request text kept per core (`METHOD URI`), truncated beyond this.
pub const CORE_TEXT_BYTES: usize = 256;

/// Counters of one worker process.
#[repr(C)]
#[derive(Debug, Default)]
pub struct WorkerSlot {
    pub pid: AtomicI32,
    /// 0 idle, 1 busy.
    pub busy: AtomicU32,
    pub requests: AtomicU64,
    /// Requests since the current process of this worker was spawned.
    pub delta_requests: AtomicU64,
    pub exceptions: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub respawns: AtomicU64,
    pub harakiri_count: AtomicU64,
    /// Unix time (seconds) of the last spawn.
    pub last_spawn: AtomicU64,
    /// Sum of response times in microseconds (with `requests`, the average).
    pub response_time_us: AtomicU64,
    pub rss: AtomicU64,
    pub vsz: AtomicU64,
}

/// One thread of a worker and the request it runs.
#[repr(C)]
#[derive(Debug, Default)]
pub struct CoreSlot {
    /// Unix time in microseconds when the running request started; 0 when idle.
    pub started_us: AtomicU64,
    pub requests: AtomicU64,
    text_len: AtomicU32,
    text: [AtomicU64; CORE_TEXT_BYTES / 8],
}

impl CoreSlot {
    /// Record the running request's `METHOD URI`.
    pub fn set_text(&self, method: &[u8], uri: &[u8]) {
        let mut buf = [0u8; CORE_TEXT_BYTES];
        let mut n = 0;
        for &b in method.iter().chain(b" ").chain(uri.iter()) {
            if n == CORE_TEXT_BYTES {
                break;
            }
            buf[n] = b;
            n += 1;
        }
        for (i, word) in self.text.iter().enumerate() {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(&buf[i * 8..i * 8 + 8]);
            word.store(u64::from_ne_bytes(chunk), Ordering::Relaxed);
        }
        self.text_len.store(n as u32, Ordering::Release);
    }

    /// The last recorded `METHOD URI` (may be torn if read while written).
    pub fn text(&self) -> String {
        let n = (self.text_len.load(Ordering::Acquire) as usize).min(CORE_TEXT_BYTES);
        let mut buf = Vec::with_capacity(CORE_TEXT_BYTES);
        for word in &self.text {
            buf.extend_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        buf.truncate(n);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// The shared mapping. Workers are numbered from 1, cores from 0.
pub struct Scoreboard {
    base: *mut u8,
    len: usize,
    workers: usize,
    cores: usize,
}

// SAFETY: the mapping holds only atomics, accessed through shared references.
unsafe impl Send for Scoreboard {}
// SAFETY: as above; every field is an atomic.
unsafe impl Sync for Scoreboard {}

impl Scoreboard {
    /// Map a zeroed board for `workers` processes of `cores` threads each.
    pub fn new(workers: usize, cores: usize) -> io::Result<Scoreboard> {
        let len = workers * (size_of::<WorkerSlot>() + cores * size_of::<CoreSlot>());
        // SAFETY: a fresh anonymous shared mapping; checked for failure below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::new(
                io::Error::last_os_error().kind(),
                format!(
                    "cannot map the scoreboard ({len} bytes): {}",
                    io::Error::last_os_error()
                ),
            ));
        }
        Ok(Scoreboard {
            base: base.cast(),
            len,
            workers,
            cores,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    fn offset(&self, wid: usize) -> usize {
        assert!(
            (1..=self.workers).contains(&wid),
            "worker id {wid} out of range"
        );
        (wid - 1) * (size_of::<WorkerSlot>() + self.cores * size_of::<CoreSlot>())
    }

    /// The slot of worker `wid` (1-based).
    pub fn worker(&self, wid: usize) -> &WorkerSlot {
        let offset = self.offset(wid);
        // SAFETY: offset is in bounds and aligned (slots are multiples of 8
        // bytes from a page-aligned base); zeroed atomics are valid.
        unsafe { &*self.base.add(offset).cast::<WorkerSlot>() }
    }

    /// Core `core` (0-based) of worker `wid`.
    pub fn core(&self, wid: usize, core: usize) -> &CoreSlot {
        assert!(core < self.cores, "core {core} out of range");
        let offset = self.offset(wid) + size_of::<WorkerSlot>() + core * size_of::<CoreSlot>();
        // SAFETY: as in `worker`.
        unsafe { &*self.base.add(offset).cast::<CoreSlot>() }
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping made in `new`.
        unsafe {
            libc::munmap(self.base.cast(), self.len.max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_do_not_overlap_and_start_idle() {
        let board = Scoreboard::new(3, 4).expect("map");
        board.worker(2).requests.store(7, Ordering::Relaxed);
        board.core(2, 3).started_us.store(9, Ordering::Relaxed);
        assert_eq!(board.worker(1).requests.load(Ordering::Relaxed), 0);
        assert_eq!(board.worker(3).requests.load(Ordering::Relaxed), 0);
        assert_eq!(board.worker(2).requests.load(Ordering::Relaxed), 7);
        assert_eq!(board.core(3, 0).started_us.load(Ordering::Relaxed), 0);
        assert_eq!(board.core(2, 3).started_us.load(Ordering::Relaxed), 9);
    }

    #[test]
    fn core_text_round_trips_and_truncates() {
        let board = Scoreboard::new(1, 1).expect("map");
        let core = board.core(1, 0);
        core.set_text(b"GET", b"/sleep?5");
        assert_eq!(core.text(), "GET /sleep?5");
        core.set_text(b"POST", &[b'x'; 400]);
        assert_eq!(core.text().len(), CORE_TEXT_BYTES);
    }

    #[test]
    fn board_is_shared_with_a_forked_child() {
        let board = Scoreboard::new(1, 1).expect("map");
        // SAFETY: the child only touches the atomic and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            board.worker(1).requests.store(42, Ordering::SeqCst);
            // SAFETY: leave the child without running the test harness.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(board.worker(1).requests.load(Ordering::SeqCst), 42);
    }
}
