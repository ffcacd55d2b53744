//! [`WsgiHandler`]: the server's `Handler` for a WSGI app. A request becomes
//! a job on the Python threads; the connection awaits the response start.
//!
//! With one Python thread (`--threads 1`, uWSGI's default model), a request
//! whose body is all there while that thread is idle is run in place, on
//! the connection's own thread: no hand-off, no wake-up, no context switch.
//! The app is called there; a response that is whole when it returns (a
//! list or tuple) is delivered at once; any other iterable (a generator, a
//! Werkzeug `ClosingIterator`, a file) is pulled by the connection, one
//! `next()` per piece it asks for (`pull.rs`; the rest of one whose
//! `next()` is slow goes to the Python thread); a response begun with
//! `write()` is finished by the Python thread. Only one request is in the
//! app at a time, so the app sees one thread, as `wsgi.multithread` says:
//! while a pulled body is unfinished, requests wait for it. While the app
//! runs, that worker's other connections wait, as they would in uWSGI
//! (docs/design-notes.md §2).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use crate::pull::Lane;
use crate::respond::{PullStart, Ran, call_app, finish_app, report, run_app};
use crate::responder::{Responder, Responders};
use crate::router::{Mounts, Route};

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
    responders: Responders,
    tracker: Option<Arc<dyn CoreTracker>>,
    /// `PORTICO_TEST_PANIC=1`: panic on `test_hooks::PYTHON_PATH` (tests only).
    panic_hook: bool,
}

/// Serves requests with a WSGI app on a pool of Python threads.
pub struct WsgiHandler {
    inner: Arc<Inner>,
}

struct Inner {
    runner: Arc<AppRunner>,
    pool: Arc<Pool>,
    /// Requests may run in place on the connection's thread (one Python thread).
    in_place: bool,
    /// Jobs queued or running on the pool.
    pool_jobs: Arc<AtomicUsize>,
    /// Busy while a body pulled in place is unfinished.
    lane: Arc<Lane>,
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
            inner: Arc::new(Inner {
                runner: Arc::new(AppRunner {
                    apps: apps.into_iter().map(|(_, app)| app.callable).collect(),
                    mounts,
                    environ,
                    responders: Responders::default(),
                    tracker: options.tracker,
                    panic_hook: test_hooks::enabled(),
                }),
                pool,
                in_place: options.threads == 1,
                pool_jobs: Arc::new(AtomicUsize::new(0)),
                lane: Arc::default(),
            }),
        })
    }
}

/// Counts a pool job from submission to its end.
struct PoolJobGuard(Arc<AtomicUsize>);

impl PoolJobGuard {
    fn new(jobs: &Arc<AtomicUsize>) -> PoolJobGuard {
        jobs.fetch_add(1, Ordering::SeqCst);
        PoolJobGuard(jobs.clone())
    }
}

impl Drop for PoolJobGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct RequestJob {
    runner: Arc<AppRunner>,
    request: Request,
    route: Route,
    reply: ReplySender,
    _counted: PoolJobGuard,
}

impl PythonJob for RequestJob {
    fn run(self: Box<Self>, py: Python<'_>, core: usize, gil_wait: Duration) {
        let RequestJob {
            runner,
            request,
            route,
            reply,
            _counted,
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
            match run_request(py, &runner, request, route, reply, core, false) {
                Outcome::Done(failed) => failed,
                Outcome::Unfinished(..) | Outcome::Pulling(..) => false,
            }
        })
        .unwrap_or(true);
        if let Some(tracker) = &runner.tracker {
            tracker.end(core, app, failed);
        }
    }
}

/// The rest of a response begun in place: consumed on the Python thread.
struct FinishJob {
    runner: Arc<AppRunner>,
    app: usize,
    result: Py<PyAny>,
    responder: Responder,
    _counted: PoolJobGuard,
}

impl PythonJob for FinishJob {
    fn run(self: Box<Self>, py: Python<'_>, core: usize, _gil_wait: Duration) {
        let FinishJob {
            runner,
            app,
            result,
            responder,
            _counted,
        } = *self;
        // Off the connection's thread now: replies go through the queue.
        if let Ok(mut object) = responder.object(py).try_borrow_mut() {
            object.state.here = false;
        }
        let failed = finish_app(py, result.bind(py), responder.object(py));
        drop(result);
        runner.responders.give_back(py, responder);
        runner.environ.release_input(py);
        if let Some(tracker) = &runner.tracker {
            tracker.end(core, app, failed);
        }
    }
}

/// The rest of a body pulled in place whose iterator was slow.
struct RestJob {
    rest: crate::pull::Rest,
    _counted: PoolJobGuard,
}

impl PythonJob for RestJob {
    fn run(self: Box<Self>, py: Python<'_>, _core: usize, _gil_wait: Duration) {
        let RestJob { rest, _counted } = *self;
        rest.run(py);
    }
}

/// What running a request left.
// Returned once per request and matched at once: boxing the large
// variant would cost an allocation per pulled response for nothing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    /// Delivered (or failed: true).
    Done(bool),
    /// Called in place; the result is still to be consumed on the pool.
    Unfinished(Py<PyAny>, Responder),
    /// Called in place; the response is to be delivered with a pulled body.
    Pulling(PullStart, Responder),
}

/// Build the environ, call the app, deliver the response (`Outcome::Done`,
/// true if it failed). `in_place`: on the connection's thread, where a
/// response that is not whole when the app returns is left unfinished.
fn run_request(
    py: Python<'_>,
    runner: &AppRunner,
    request: Request,
    route: Route,
    reply: ReplySender,
    core: usize,
    in_place: bool,
) -> Outcome {
    let (environ, vars, vars_bytes) = match runner.environ.build(py, request, route.split) {
        Ok(built) => built,
        Err(err) => {
            report(py, &err, "cannot build the WSGI environ");
            reply.send(Response::internal_error());
            return Outcome::Done(true);
        }
    };
    let meta = ResponseMeta {
        app_id: route.app as i32,
        vars,
        vars_bytes,
        core: core as u32,
        ..ResponseMeta::default()
    };
    let responder = match runner.responders.take(py, reply, meta, in_place) {
        Ok(r) => r,
        Err(err) => {
            report(py, &err, "cannot create start_response");
            return Outcome::Done(true);
        }
    };
    let app = &runner.apps[route.app];
    let ran = if in_place {
        call_app(py, app, environ, &responder, true)
    } else {
        Ran::Done(run_app(py, app, environ, &responder))
    };
    match ran {
        Ran::Done(failed) => {
            runner.responders.give_back(py, responder);
            runner.environ.release_input(py);
            Outcome::Done(failed)
        }
        Ran::Unfinished(result) => Outcome::Unfinished(result, responder),
        Ran::Pulling(start) => Outcome::Pulling(start, responder),
    }
}

impl WsgiHandler {
    /// The app for a request, by mountpoint; `None` means 404.
    fn route(&self, request: &Request) -> Option<Route> {
        let mounts = &self.inner.runner.mounts;
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
                let script = packet.var(b"SCRIPT_NAME").unwrap_or_default();
                let path = packet.var_bytes(b"PATH_INFO").unwrap_or_default();
                mounts.route(script, &path)
            }
        }
    }
}

impl Inner {
    /// Run the request in place when it can be (one Python thread, idle,
    /// and the body all there), else queue it for the Python thread. Call
    /// on the connection's thread, with the lane free.
    fn dispatch(&self, request: Request, route: Route, reply: ReplySender) -> Result<(), ()> {
        if self.in_place && request.body.is_complete() && self.pool_jobs.load(Ordering::SeqCst) == 0
        {
            self.run_in_place(request, route, reply);
            return Ok(());
        }
        let job = Box::new(RequestJob {
            runner: self.runner.clone(),
            request,
            route,
            reply,
            _counted: PoolJobGuard::new(&self.pool_jobs),
        });
        self.pool.submit(job).map_err(|_| ())
    }

    /// Run the app on this (the connection's) thread; the rest of a
    /// response not whole when it returns is pulled by the connection, or
    /// (begun with `write()`) finished on the Python thread.
    fn run_in_place(&self, request: Request, route: Route, reply: ReplySender) {
        let runner = &self.runner;
        let app = route.app;
        let _stop_now = portico_server::InPlaceCall::enter();
        Python::attach(|py| {
            if let Some(tracker) = &runner.tracker {
                tracker.begin(0, &request, Duration::ZERO);
            }
            // A panic here loses this request only, as on a Python thread:
            // its reply is dropped (the client gets a 500).
            let outcome = panic_guard::contain(|| {
                if runner.panic_hook && request.raw_path() == test_hooks::PYTHON_PATH {
                    panic!(
                        "{}: a panic in this request's Python call, as asked",
                        test_hooks::ENV
                    );
                }
                run_request(py, runner, request, route, reply, 0, true)
            })
            .unwrap_or(Outcome::Done(true));
            match outcome {
                Outcome::Done(failed) => {
                    if let Some(tracker) = &runner.tracker {
                        tracker.end(0, app, failed);
                    }
                }
                Outcome::Pulling(start, responder) => {
                    let runner = runner.clone();
                    let on_end: crate::pull::OnEnd = Box::new(move |py, responder, failed| {
                        runner.responders.give_back(py, responder);
                        runner.environ.release_input(py);
                        if let Some(tracker) = &runner.tracker {
                            tracker.end(0, app, failed);
                        }
                    });
                    let pool = self.pool.clone();
                    let pool_jobs = self.pool_jobs.clone();
                    let hand_off: crate::pull::HandOff = Box::new(move |py, rest| {
                        let job = Box::new(RestJob {
                            rest,
                            _counted: PoolJobGuard::new(&pool_jobs),
                        });
                        if let Err(job) = pool.submit(job) {
                            // No Python thread left (stopping): finish here.
                            job.run(py, 0, Duration::ZERO);
                        }
                    });
                    crate::pull::deliver(start, responder, &self.lane, on_end, hand_off);
                }
                Outcome::Unfinished(result, responder) => {
                    let job = Box::new(FinishJob {
                        runner: runner.clone(),
                        app,
                        result,
                        responder,
                        _counted: PoolJobGuard::new(&self.pool_jobs),
                    });
                    if let Err(job) = self.pool.submit(job) {
                        // No Python thread left (stopping): finish here.
                        job.run(py, 0, Duration::ZERO);
                    }
                }
            }
        });
    }
}

impl Handler for WsgiHandler {
    fn handle(&self, request: Request) -> HandlerFuture {
        let Some(route) = self.route(&request) else {
            return HandlerFuture::new(move || async {
                Response::plain(404, "Not Found", "Not Found\n")
            });
        };
        let (reply, response) = request.handoff.slot();
        if self.inner.lane.is_busy() {
            // A body pulled in place is unfinished: the app is still
            // answering another request, which this one must not overtake.
            let inner = self.inner.clone();
            return HandlerFuture::new(move || async move {
                inner.lane.wait_free().await;
                if inner.dispatch(request, route, reply).is_err() {
                    return Response::internal_error();
                }
                response.await.unwrap_or_else(Response::internal_error)
            });
        }
        if self.inner.dispatch(request, route, reply).is_err() {
            return HandlerFuture::new(move || async { Response::internal_error() });
        }
        HandlerFuture::new(move || async move {
            response.await.unwrap_or_else(Response::internal_error)
        })
    }
}
