//! What a process model can attach to serving, without the server knowing
//! about masters or scoreboards: a call after every request (which may ask
//! the worker to retire), and per-core request tracking for the Python
//! threads (what harakiri and the stats read).

use std::time::Duration;

use crate::handler::Request;

/// One finished request, as the worker's counters need it.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    /// The app that answered (uWSGI's `app: N`), -1 for none (static files, 404).
    pub app_id: i32,
    /// The status code sent.
    pub status: u16,
    /// Body bytes written.
    pub body_bytes: u64,
    /// Status line and header bytes written.
    pub header_bytes: u64,
    /// Time from the request head to the end of the response.
    pub elapsed: Duration,
}

/// Called by the serving loop.
pub trait WorkerHooks: Send + Sync + 'static {
    /// After each response. Returning true retires the worker: it stops
    /// accepting, finishes what is in flight and returns from `serve`.
    fn request_done(&self, record: &RequestRecord) -> bool;

    /// True if the request now finishing will be the worker's last (so it
    /// stops accepting before its gate slot is freed).
    fn last_request(&self) -> bool {
        false
    }

    /// Requests served by every worker of the instance so far (the request
    /// log's `req: A/B` B), when the process model knows it.
    fn instance_requests(&self) -> Option<u64> {
        None
    }
}

/// Called by the threads that run application code, one "core" each.
pub trait CoreTracker: Send + Sync + 'static {
    /// A request starts running on `core`, after `gil_wait` spent taking
    /// the GIL once the job was handed to the thread.
    fn begin(&self, core: usize, request: &Request, gil_wait: Duration);
    /// The request on `core` is finished (app `app`); `failed` if the app raised.
    fn end(&self, core: usize, app: usize, failed: bool);
}
