//! The Python threads of a worker. Each thread attaches to the interpreter
//! once, takes queued jobs while holding the GIL and detaches only to wait,
//! so the GIL is free whenever no request is running and a busy thread pays
//! no GIL hand-off between requests. Jobs come from any thread through one
//! queue (crossbeam's, whose brief spin before sleeping measured cheaper
//! than a mutex and condition variable).

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, unbounded};
use pyo3::prelude::*;

/// Work for a Python thread.
pub(crate) trait PythonJob: Send + 'static {
    /// Run on the thread numbered `core` (0-based).
    fn run(self: Box<Self>, py: Python<'_>, core: usize);
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
            let job = match jobs.try_recv() {
                Ok(job) => job,
                Err(_) => match py.detach(|| jobs.recv()) {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            job.run(py, core);
        }
    });
}
