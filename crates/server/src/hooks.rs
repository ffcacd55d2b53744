//! What a process model can attach to serving, without the server knowing
//! about masters or scoreboards: a call after every request (which may ask
//! the worker to retire), and per-core request tracking for the Python
//! threads (what harakiri and the stats read).

use std::time::Duration;

/// One finished request, as the worker's counters need it.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    pub status: u16,
    pub body_bytes: u64,
    pub header_bytes: u64,
    pub elapsed: Duration,
}

/// Called by the serving loop.
pub trait WorkerHooks: Send + Sync + 'static {
    /// After each response. Returning true retires the worker: it stops
    /// accepting, finishes what is in flight and returns from `serve`.
    fn request_done(&self, record: &RequestRecord) -> bool;
}

/// Called by the threads that run application code, one "core" each.
pub trait CoreTracker: Send + Sync + 'static {
    /// A request starts running on `core`.
    fn begin(&self, core: usize, method: &[u8], uri: &[u8]);
    /// The request on `core` is finished; `failed` if the app raised.
    fn end(&self, core: usize, failed: bool);
}
