//! The Python threads of a worker. Each thread attaches to the interpreter
//! once, takes queued jobs while holding the GIL and detaches only to wait,
//! so the GIL is free whenever no request is running and a busy thread pays
//! no GIL hand-off between requests. Jobs come from any thread through one
//! queue (crossbeam's, whose brief spin before sleeping measured cheaper
//! than a mutex and condition variable).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use pyo3::prelude::*;

/// Work for a Python thread.
pub(crate) trait PythonJob: Send + 'static {
    /// Run on the thread numbered `core` (0-based), after `gil_wait` spent
    /// re-taking the GIL once the job arrived (zero when it was queued).
    fn run(self: Box<Self>, py: Python<'_>, core: usize, gil_wait: Duration);
}

/// A fixed set of threads running Python jobs.
pub(crate) struct Pool {
    queue: Sender<Box<dyn PythonJob>>,
}

impl Pool {
    /// Start `threads` Python threads. Call in the process that serves.
    pub(crate) fn start(threads: usize) -> std::io::Result<Arc<Pool>> {
        let (queue, jobs) = unbounded::<Box<dyn PythonJob>>();
        for n in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("python-{n}"))
                .spawn(move || run_thread(jobs, n))?;
        }
        Ok(Arc::new(Pool { queue }))
    }

    /// Queue a job; it comes back if the pool has stopped.
    pub(crate) fn submit(&self, job: Box<dyn PythonJob>) -> Result<(), Box<dyn PythonJob>> {
        self.queue.send(job).map_err(|e| e.0)
    }
}

fn run_thread(jobs: Receiver<Box<dyn PythonJob>>, core: usize) {
    Python::attach(|py| {
        loop {
            // Take queued work while holding the GIL; release it only to wait.
            // The time from a job's arrival to having the GIL back is the
            // GIL wait the metrics report.
            let (job, gil_wait) = match jobs.try_recv() {
                Ok(job) => (job, Duration::ZERO),
                Err(_) => {
                    let (job, arrived) = py.detach(|| (jobs.recv(), Instant::now()));
                    match job {
                        Ok(job) => (job, arrived.elapsed()),
                        Err(_) => return,
                    }
                }
            };
            // A job contains its own panics; this is for any that does not:
            // the thread must outlive a panic, or the requests queued
            // behind it would wait for ever.
            let _ = portico_server::panic_guard::contain(|| job.run(py, core, gil_wait));
        }
    });
}
