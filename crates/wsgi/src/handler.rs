//! [`WsgiHandler`]: the server's `Handler` for a WSGI app. A request becomes
//! a job on the Python threads; the connection awaits the response start.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portico_server::{
    CoreTracker, Handler, HandlerFuture, ReplySender, Request, RequestSource, Response,
    ResponseMeta, panic_guard, test_hooks,
};
use pyo3::prelude::*;

use crate::environ::{EnvironBuilder, ProcessModel};
use crate::loader::App;
use crate::pool::{Pool, PythonJob};
use crate::respond::{report, run_app};
use crate::router::{Mounts, Route};
use crate::start_response::StartResponse;

/// How the apps are run in this process.
#[derive(Clone)]
pub struct WsgiOptions {
    /// Route by mountpoint and set SCRIPT_NAME/PATH_INFO from it.
    pub manage_script_name: bool,
    /// Python threads (concurrent app calls) in this process.
    pub threads: usize,
    /// True when several processes serve the same app.
    pub multiprocess: bool,
    /// Told when each Python thread starts and ends a request.
    pub tracker: Option<Arc<dyn CoreTracker>>,
}

struct AppRunner {
    apps: Vec<Py<PyAny>>,
    mounts: Mounts,
    environ: EnvironBuilder,
    tracker: Option<Arc<dyn CoreTracker>>,
    /// `PORTICO_TEST_PANIC=1`: panic on `test_hooks::PYTHON_PATH` (tests only).
    panic_hook: bool,
}

/// Serves requests with a WSGI app on a pool of Python threads.
pub struct WsgiHandler {
    runner: Arc<AppRunner>,
    pool: Arc<Pool>,
}

impl WsgiHandler {
    /// Start the Python threads for `apps` (mountpoint, app; `""` is the
    /// default app). Call in the process that serves (after any fork:
    /// threads do not survive one).
    pub fn start(apps: Vec<(String, App)>, options: WsgiOptions) -> Result<WsgiHandler, String> {
        let mountpoints: Vec<String> = apps.iter().map(|(m, _)| m.clone()).collect();
        let mounts = Mounts::new(&mountpoints, options.manage_script_name);
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
                apps: apps.into_iter().map(|(_, app)| app.callable).collect(),
                mounts,
                environ,
                tracker: options.tracker,
                panic_hook: test_hooks::enabled(),
            }),
            pool,
        })
    }
}

struct RequestJob {
    runner: Arc<AppRunner>,
    request: Request,
    route: Route,
    reply: ReplySender,
}

impl PythonJob for RequestJob {
    fn run(self: Box<Self>, py: Python<'_>, core: usize, gil_wait: Duration) {
        let RequestJob {
            runner,
            request,
            route,
            reply,
        } = *self;
        if let Some(tracker) = &runner.tracker {
            tracker.begin(core, &request, gil_wait);
        }
        let app = route.app;
        // A panic here loses this request only: its reply is dropped (the
        // client gets a 500) and the thread goes on (panic_guard.rs).
        let failed = panic_guard::contain(|| {
            if runner.panic_hook && request.raw_path() == test_hooks::PYTHON_PATH {
                panic!(
                    "{}: a panic in this request's Python thread, as asked",
                    test_hooks::ENV
                );
            }
            run_request(py, &runner, request, route, reply, core)
        })
        .unwrap_or(true);
        if let Some(tracker) = &runner.tracker {
            tracker.end(core, app, failed);
        }
    }
}

/// Build the environ, call the app, deliver the response; true if it failed.
fn run_request(
    py: Python<'_>,
    runner: &AppRunner,
    request: Request,
    route: Route,
    reply: ReplySender,
    core: usize,
) -> bool {
    let (environ, vars, vars_bytes) = match runner.environ.build(py, request, route.split) {
        Ok(built) => built,
        Err(err) => {
            report(py, &err, "cannot build the WSGI environ");
            reply.send(Response::internal_error());
            return true;
        }
    };
    let meta = ResponseMeta {
        app_id: route.app as i32,
        vars,
        vars_bytes,
        core: core as u32,
        ..ResponseMeta::default()
    };
    let start_response = match Bound::new(py, StartResponse::new(reply, meta)) {
        Ok(s) => s,
        Err(err) => {
            report(py, &err, "cannot create start_response");
            return true;
        }
    };
    run_app(py, &runner.apps[route.app], environ, &start_response)
}

impl WsgiHandler {
    /// The app for a request, by mountpoint; `None` means 404.
    fn route(&self, request: &Request) -> Option<Route> {
        let mounts = &self.runner.mounts;
        if mounts.is_trivial() {
            return Some(Route {
                app: 0,
                split: None,
            });
        }
        match &request.source {
            RequestSource::Http(_) => {
                let path = Bytes::copy_from_slice(&request.path());
                mounts.route(b"", &path)
            }
            RequestSource::Uwsgi(packet) => {
                let script = packet.var(b"SCRIPT_NAME").map_or(&b""[..], |v| v.as_ref());
                let path = packet.var(b"PATH_INFO").cloned().unwrap_or_default();
                mounts.route(script, &path)
            }
        }
    }
}

impl Handler for WsgiHandler {
    fn handle(&self, request: Request) -> HandlerFuture {
        let Some(route) = self.route(&request) else {
            return Box::pin(async { Response::plain(404, "Not Found", "Not Found\n") });
        };
        let (reply, response) = request.handoff.slot();
        let job = Box::new(RequestJob {
            runner: self.runner.clone(),
            request,
            route,
            reply,
        });
        if self.pool.submit(job).is_err() {
            return Box::pin(async { Response::internal_error() });
        }
        Box::pin(async move { response.await.unwrap_or_else(Response::internal_error) })
    }
}
