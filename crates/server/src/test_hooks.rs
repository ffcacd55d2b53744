//! Test-only fault injection, for the panic-containment tests
//! (tests/e2e/test_panic.py). It is off unless the environment holds
//! `PORTICO_TEST_PANIC=1` when the worker starts (read once; not an option,
//! and never meant for production). Then a request for
//! [`CONNECTION_PATH`] panics in its connection task and one for
//! [`PYTHON_PATH`] in the Python thread running it. Off, it costs nothing:
//! no handler is wrapped and the Python side tests one `bool` it keeps.

use std::sync::{Arc, OnceLock};

use crate::handler::{Handler, HandlerFuture, Request, Sent};

/// The variable that turns the hooks on (value `1`).
pub const ENV: &str = "PORTICO_TEST_PANIC";
/// A request for this path panics in its connection task.
pub const CONNECTION_PATH: &[u8] = b"/__portico_test_panic/connection";
/// A request for this path panics in the Python thread that runs it.
pub const PYTHON_PATH: &[u8] = b"/__portico_test_panic/python";

/// Are the hooks on (`PORTICO_TEST_PANIC=1`)? Read once per process.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(ENV).is_some_and(|v| v == "1"))
}

/// `handler`, behind the connection-task hook when the hooks are on.
pub fn wrap(handler: Arc<dyn Handler>) -> Arc<dyn Handler> {
    if enabled() {
        Arc::new(PanicOnPath(handler))
    } else {
        handler
    }
}

struct PanicOnPath(Arc<dyn Handler>);

impl Handler for PanicOnPath {
    fn handle(&self, request: Request) -> HandlerFuture {
        if request.raw_path() == CONNECTION_PATH {
            panic!("{ENV}: a panic in this request's connection task, as asked");
        }
        self.0.handle(request)
    }

    fn done(&self, tag: u64, sent: Option<&Sent>) {
        self.0.done(tag, sent);
    }
}
