//! A worker's side of supervision: counting requests in its scoreboard
//! slot, recording what each core runs (for harakiri and stats), and
//! deciding to retire after max-requests or reload-on-rss, announcing it on
//! the master's pipe first so the master spawns the replacement at once.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use portico_server::{CoreTracker, Request, RequestRecord, WorkerHooks};

use crate::master::{RetireNotice, WorkerContext};
use crate::scoreboard::{MAX_APPS, Scoreboard};

/// When a worker retires by itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerLimits {
    /// Requests after which to retire (already with delta and jitter); 0: never.
    pub max_requests: u64,
    /// Never retire younger than this.
    pub min_lifetime: Duration,
    /// Retire after the request that took RSS over this many bytes; 0: never.
    pub reload_on_rss: u64,
}

/// Implements the server's hooks for one worker process.
pub struct WorkerRuntime {
    board: Arc<Scoreboard>,
    wid: usize,
    limits: WorkerLimits,
    spawned: Instant,
    notify_fd: RawFd,
    retiring: AtomicBool,
    /// Whether to copy each running request's line (method, URI, address,
    /// protocol, host) into its core's slot: only something that reads it
    /// needs it (the stats server's `vars`, harakiri's log line).
    request_text: bool,
}

/// Microseconds since the epoch, now.
pub(crate) fn unix_micros() -> u64 {
    portico_server::date::unix_micros(SystemTime::now())
}

impl WorkerRuntime {
    /// `request_text`: keep the running request's line in the scoreboard
    /// for a reader (`--stats`, `--harakiri`); without one it is not copied.
    pub fn new(
        ctx: &WorkerContext,
        limits: WorkerLimits,
        request_text: bool,
    ) -> Arc<WorkerRuntime> {
        Arc::new(WorkerRuntime {
            board: ctx.board.clone(),
            wid: ctx.wid,
            limits,
            spawned: Instant::now(),
            notify_fd: ctx.notify_fd,
            retiring: AtomicBool::new(false),
            request_text,
        })
    }

    fn retire(&self, why: &str) -> bool {
        if self.retiring.swap(true, Ordering::SeqCst) {
            return false;
        }
        let pid = std::process::id();
        portico_log::logln!("worker {} (pid: {pid}) {why}: recycling", self.wid);
        RetireNotice {
            wid: self.wid as u32,
            pid,
        }
        .send(self.notify_fd);
        true
    }
}

impl WorkerHooks for WorkerRuntime {
    fn last_request(&self) -> bool {
        let delta = self
            .board
            .worker(self.wid)
            .delta_requests
            .load(Ordering::Relaxed)
            + 1;
        self.limits.max_requests > 0
            && delta >= self.limits.max_requests
            && portico_server::clock::since(self.spawned) >= self.limits.min_lifetime
    }

    fn request_done(&self, record: &RequestRecord) -> bool {
        let slot = self.board.worker(self.wid);
        slot.requests.fetch_add(1, Ordering::Relaxed);
        let delta = slot.delta_requests.fetch_add(1, Ordering::Relaxed) + 1;
        slot.bytes_sent
            .fetch_add(record.body_bytes + record.header_bytes, Ordering::Relaxed);
        let elapsed_us = record.elapsed.as_micros() as u64;
        slot.response_time_us
            .fetch_add(elapsed_us, Ordering::Relaxed);
        slot.count_response(record.status, elapsed_us);
        if let Ok(app) = usize::try_from(record.app_id)
            && app < MAX_APPS
        {
            slot.app_requests[app].fetch_add(1, Ordering::Relaxed);
        }
        // Nothing to check (the usual worker): no clock read.
        let may_retire = (self.limits.max_requests > 0 && delta >= self.limits.max_requests)
            || self.limits.reload_on_rss > 0;
        if !may_retire
            || self.retiring.load(Ordering::Relaxed)
            || portico_server::clock::since(self.spawned) < self.limits.min_lifetime
        {
            return false;
        }
        if self.limits.max_requests > 0 && delta >= self.limits.max_requests {
            return self.retire(&format!("reached max-requests ({delta} requests)"));
        }
        if self.limits.reload_on_rss > 0 {
            let rss = portico_server::procfs::rss_bytes(None).unwrap_or(0);
            slot.rss.store(rss, Ordering::Relaxed);
            if rss > self.limits.reload_on_rss {
                return self.retire(&format!(
                    "RSS {} MB is over reload-on-rss {} MB",
                    rss >> 20,
                    self.limits.reload_on_rss >> 20
                ));
            }
        }
        false
    }

    fn instance_requests(&self) -> Option<u64> {
        Some(
            (1..=self.board.workers())
                .map(|w| self.board.worker(w).requests.load(Ordering::Relaxed))
                .sum(),
        )
    }
}

impl CoreTracker for WorkerRuntime {
    fn begin(&self, core: usize, request: &Request, gil_wait: Duration) {
        if core >= self.board.cores() {
            return;
        }
        let slot = self.board.core(self.wid, core);
        if self.request_text {
            let mut addr = Vec::with_capacity(40);
            request.remote_addr(&mut addr);
            slot.set_request(&[
                request.method(),
                request.uri(),
                &addr,
                request.protocol(),
                request.host(),
            ]);
        }
        slot.started_us.store(unix_micros(), Ordering::Release);
        let worker = self.board.worker(self.wid);
        worker.busy.store(1, Ordering::Relaxed);
        if !gil_wait.is_zero() {
            worker
                .gil_wait_us
                .fetch_add(gil_wait.as_micros() as u64, Ordering::Relaxed);
        }
    }

    fn end(&self, core: usize, app: usize, failed: bool) {
        if core >= self.board.cores() {
            return;
        }
        let slot = self.board.core(self.wid, core);
        let started = slot.started_us.swap(0, Ordering::AcqRel);
        slot.requests.fetch_add(1, Ordering::Relaxed);
        let worker = self.board.worker(self.wid);
        if started != 0 {
            worker
                .app_time_us
                .fetch_add(unix_micros().saturating_sub(started), Ordering::Relaxed);
        }
        if failed {
            worker.exceptions.fetch_add(1, Ordering::Relaxed);
            if app < MAX_APPS {
                worker.app_exceptions[app].fetch_add(1, Ordering::Relaxed);
            }
        }
        let any_busy = (0..self.board.cores()).any(|c| {
            self.board
                .core(self.wid, c)
                .started_us
                .load(Ordering::Relaxed)
                != 0
        });
        worker.busy.store(any_busy as u32, Ordering::Relaxed);
    }
}
