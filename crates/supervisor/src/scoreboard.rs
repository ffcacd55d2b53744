//! The scoreboard: one shared anonymous mapping made by the master before
//! it forks, holding a slot per worker, per worker thread ("core") and per
//! upstream peer of a worker's balancer groups (`peer_slot.rs`).
//! Workers write their own slots with atomics; the master reads them for
//! harakiri, memory limits and statistics. All-zero bytes are a valid,
//! idle board.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use crate::peer_slot::{MAX_PEERS, PeerSlot};

/// Request text kept per core (method, URI, address, protocol, host),
/// truncated beyond this.
pub(crate) const CORE_TEXT_BYTES: usize = 512;

/// Upper bounds, in microseconds, of the latency histogram's buckets
/// (Prometheus' default buckets, 5 ms to 10 s); one more bucket counts the rest.
pub const LATENCY_BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Apps per worker whose requests and exceptions are counted apart (uWSGI's `apps`).
pub const MAX_APPS: usize = 16;

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
    /// Sum of response times in microseconds (uWSGI's `running_time`).
    pub response_time_us: AtomicU64,
    pub rss: AtomicU64,
    pub vsz: AtomicU64,
    /// 1 once the worker serves its sockets.
    pub accepting: AtomicU32,
    /// uWSGI's `avg_rt`: `(avg_rt + rt) / 2` after each request, microseconds.
    pub avg_rt_us: AtomicU64,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub status_classes: [AtomicU64; 5],
    /// Requests per latency bucket ([`LATENCY_BUCKETS_US`], then the rest); not cumulative.
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    /// Time Python threads waited for the GIL before running a request.
    pub gil_wait_us: AtomicU64,
    /// Time spent in the app (call and body iteration).
    pub app_time_us: AtomicU64,
    /// Requests and exceptions per app id.
    pub app_requests: [AtomicU64; MAX_APPS],
    pub app_exceptions: [AtomicU64; MAX_APPS],
}

impl WorkerSlot {
    /// Count one response of `status` that took `elapsed_us`.
    pub fn count_response(&self, status: u16, elapsed_us: u64) {
        if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
            self.status_classes[class as usize].fetch_add(1, Ordering::Relaxed);
        }
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&le| elapsed_us <= le)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let avg = self.avg_rt_us.load(Ordering::Relaxed);
        let avg = if avg == 0 {
            elapsed_us
        } else {
            (avg + elapsed_us) / 2
        };
        self.avg_rt_us.store(avg, Ordering::Relaxed);
    }
}

/// One thread of a worker and the request it runs (only ever zeroed in the mapping).
#[repr(C)]
#[derive(Debug)]
pub struct CoreSlot {
    /// Unix time in microseconds when the running request started; 0 when idle.
    pub started_us: AtomicU64,
    pub requests: AtomicU64,
    /// Seqlock over `text`: odd while being written.
    seq: AtomicU32,
    text_len: AtomicU32,
    text: [AtomicU64; CORE_TEXT_BYTES / 8],
}

/// The request a core runs, as the stats and harakiri show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreRequest {
    pub method: String,
    pub uri: String,
    pub remote_addr: String,
    pub protocol: String,
    pub host: String,
}

impl CoreSlot {
    /// Record the running request's fields (method, URI, address, protocol,
    /// host), NUL-separated, cut at [`CORE_TEXT_BYTES`].
    pub fn set_request(&self, fields: &[&[u8]]) {
        // Per request (`CoreTracker::begin`): a field at a time into a
        // buffer, then a word at a time into the slot (a byte at a time
        // was most of the supervision's per-request instructions).
        let mut buf = [0u8; CORE_TEXT_BYTES];
        let mut n = 0;
        for (i, field) in fields.iter().enumerate() {
            if i > 0 && n < CORE_TEXT_BYTES {
                n += 1; // the NUL separator (the buffer is zeroed)
            }
            let take = field.len().min(CORE_TEXT_BYTES - n);
            buf[n..n + take].copy_from_slice(&field[..take]);
            n += take;
        }
        let seq = self.seq.fetch_add(1, Ordering::AcqRel);
        for (word, chunk) in self
            .text
            .iter()
            .zip(buf[..n.div_ceil(8) * 8].chunks_exact(8))
        {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        self.text_len.store(n as u32, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Record `METHOD URI` alone.
    pub fn set_text(&self, method: &[u8], uri: &[u8]) {
        self.set_request(&[method, uri]);
    }

    fn raw(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(CORE_TEXT_BYTES);
        // A few tries for a consistent copy; a torn one is still only text.
        for _ in 0..8 {
            let before = self.seq.load(Ordering::Acquire);
            buf.clear();
            let n = (self.text_len.load(Ordering::Relaxed) as usize).min(CORE_TEXT_BYTES);
            for word in self.text.iter().take(n.div_ceil(8)) {
                buf.extend_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
            buf.truncate(n);
            std::sync::atomic::fence(Ordering::Acquire);
            if before.is_multiple_of(2) && self.seq.load(Ordering::Relaxed) == before {
                break;
            }
        }
        buf
    }

    /// The last recorded request.
    pub fn request(&self) -> CoreRequest {
        let raw = self.raw();
        let mut fields = raw
            .split(|&b| b == 0)
            .map(|f| String::from_utf8_lossy(f).into_owned());
        CoreRequest {
            method: fields.next().unwrap_or_default(),
            uri: fields.next().unwrap_or_default(),
            remote_addr: fields.next().unwrap_or_default(),
            protocol: fields.next().unwrap_or_default(),
            host: fields.next().unwrap_or_default(),
        }
    }

    /// The last recorded `METHOD URI`.
    pub fn text(&self) -> String {
        let r = self.request();
        format!("{} {}", r.method, r.uri)
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
        let len = workers * Scoreboard::stride(cores);
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

    /// Bytes per worker: its slot, its cores, its peers.
    fn stride(cores: usize) -> usize {
        size_of::<WorkerSlot>() + cores * size_of::<CoreSlot>() + MAX_PEERS * size_of::<PeerSlot>()
    }

    fn offset(&self, wid: usize) -> usize {
        assert!(
            (1..=self.workers).contains(&wid),
            "worker id {wid} out of range"
        );
        (wid - 1) * Scoreboard::stride(self.cores)
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

    /// Upstream peer slot `index` (0-based, below [`MAX_PEERS`]) of worker `wid`.
    pub fn peer(&self, wid: usize, index: usize) -> &PeerSlot {
        assert!(index < MAX_PEERS, "peer slot {index} out of range");
        let offset = self.offset(wid)
            + size_of::<WorkerSlot>()
            + self.cores * size_of::<CoreSlot>()
            + index * size_of::<PeerSlot>();
        // SAFETY: as in `worker` (a PeerSlot is a multiple of 8 bytes too).
        unsafe { &*self.base.add(offset).cast::<PeerSlot>() }
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
        core.set_text(b"POST", &[b'x'; 600]);
        assert_eq!(core.text().len(), CORE_TEXT_BYTES);
        core.set_request(&[b"GET", b"/a?b", b"10.0.0.1", b"HTTP/1.1", b"example.org"]);
        let r = core.request();
        assert_eq!(
            (r.method.as_str(), r.uri.as_str(), r.remote_addr.as_str()),
            ("GET", "/a?b", "10.0.0.1")
        );
        assert_eq!(
            (r.protocol.as_str(), r.host.as_str()),
            ("HTTP/1.1", "example.org")
        );
    }

    #[test]
    fn a_shorter_request_reads_back_without_the_longer_ones_tail() {
        let board = Scoreboard::new(1, 1).expect("map");
        let core = board.core(1, 0);
        core.set_request(&[
            b"POST",
            b"/a/long/path?with=query",
            b"10.0.0.1",
            b"HTTP/1.1",
            b"h",
        ]);
        core.set_request(&[b"GET", b"/", b"", b"HTTP/1.0", b""]);
        assert_eq!(
            core.request(),
            CoreRequest {
                method: "GET".into(),
                uri: "/".into(),
                remote_addr: String::new(),
                protocol: "HTTP/1.0".into(),
                host: String::new(),
            }
        );
    }

    #[test]
    fn responses_fill_status_classes_buckets_and_the_uwsgi_average() {
        let board = Scoreboard::new(1, 1).expect("map");
        let w = board.worker(1);
        w.count_response(200, 1_000);
        w.count_response(503, 3_000);
        w.count_response(404, 20_000_000);
        w.count_response(999, 7_000);
        let classes: Vec<u64> = w
            .status_classes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(classes, vec![0, 1, 0, 1, 1]);
        assert_eq!(w.latency_buckets[0].load(Ordering::Relaxed), 2);
        assert_eq!(w.latency_buckets[1].load(Ordering::Relaxed), 1);
        assert_eq!(
            w.latency_buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed),
            1
        );
        // (((1000 + 3000) / 2 + 20e6) / 2 + 7000) / 2
        assert_eq!(w.avg_rt_us.load(Ordering::Relaxed), 5_004_000);
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
