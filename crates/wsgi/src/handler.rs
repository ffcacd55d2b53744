//! [`WsgiHandler`]: the server's `Handler` for a WSGI app. A request becomes
//! a job on the Python threads; the connection awaits the response start.

use std::sync::Arc;

use portico_server::{
    CoreTracker, Handler, HandlerFuture, ReplySender, Request, Response, ResponseMeta,
};
use pyo3::prelude::*;

use crate::environ::{EnvironBuilder, ProcessModel};
use crate::loader::App;
use crate::pool::{Pool, PythonJob};
use crate::respond::{report, run_app};
use crate::start_response::StartResponse;

/// How the app is run in this process.
#[derive(Clone)]
pub struct WsgiOptions {
    /// Python threads (concurrent app calls) in this process.
    pub threads: usize,
    /// True when several processes serve the same app.
    pub multiprocess: bool,
    /// Told when each Python thread starts and ends a request.
    pub tracker: Option<Arc<dyn CoreTracker>>,
}

struct AppRunner {
    app: Py<PyAny>,
    environ: EnvironBuilder,
    tracker: Option<Arc<dyn CoreTracker>>,
}

/// Serves requests with a WSGI app on a pool of Python threads.
pub struct WsgiHandler {
    runner: Arc<AppRunner>,
    pool: Arc<Pool>,
}

impl WsgiHandler {
    /// Start the Python threads for `app`. Call in the process that serves
    /// (after any fork: threads do not survive one).
    pub fn start(app: App, options: WsgiOptions) -> Result<WsgiHandler, String> {
        let environ = Python::attach(|py| {
            EnvironBuilder::new(
                py,
                ProcessModel {
                    multithread: options.threads > 1,
                    multiprocess: options.multiprocess,
                },
            )
        })
        .map_err(|e| format!("cannot prepare the WSGI environ: {e}"))?;
        let pool = Pool::start(options.threads)
            .map_err(|e| format!("cannot start Python threads: {e}"))?;
        Ok(WsgiHandler {
            runner: Arc::new(AppRunner {
                app: app.callable,
                environ,
                tracker: options.tracker,
            }),
            pool,
        })
    }
}

struct RequestJob {
    runner: Arc<AppRunner>,
    request: Request,
    reply: ReplySender,
}

impl PythonJob for RequestJob {
    fn run(self: Box<Self>, py: Python<'_>, core: usize) {
        let RequestJob {
            runner,
            request,
            reply,
        } = *self;
        if let Some(tracker) = &runner.tracker {
            tracker.begin(core, &request.head.method, &request.head.target);
        }
        let failed = run_request(py, &runner, request, reply);
        if let Some(tracker) = &runner.tracker {
            tracker.end(core, failed);
        }
    }
}

/// Build the environ, call the app, deliver the response; true if it failed.
fn run_request(py: Python<'_>, runner: &AppRunner, request: Request, reply: ReplySender) -> bool {
    let (environ, vars, vars_bytes) = match runner.environ.build(py, request) {
        Ok(built) => built,
        Err(err) => {
            report(py, &err, "cannot build the WSGI environ");
            reply.send(Response::internal_error());
            return true;
        }
    };
    let meta = ResponseMeta {
        app_id: 0,
        vars,
        vars_bytes,
    };
    let start_response = match Bound::new(py, StartResponse::new(reply, meta)) {
        Ok(s) => s,
        Err(err) => {
            report(py, &err, "cannot create start_response");
            return true;
        }
    };
    run_app(py, &runner.app, environ, &start_response)
}

impl Handler for WsgiHandler {
    fn handle(&self, request: Request) -> HandlerFuture {
        let (reply, response) = request.handoff.slot();
        let job = Box::new(RequestJob {
            runner: self.runner.clone(),
            request,
            reply,
        });
        if self.pool.submit(job).is_err() {
            return Box::pin(async { Response::internal_error() });
        }
        Box::pin(async move { response.await.unwrap_or_else(Response::internal_error) })
    }
}
