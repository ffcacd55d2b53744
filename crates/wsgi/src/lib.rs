//! The WSGI bridge, and the only crate that links CPython: starting the
//! interpreter (honouring virtualenvs), loading the app as uWSGI does, and
//! running it per PEP 3333 on dedicated Python threads. [`WsgiHandler`]
//! implements the server crate's `Handler`.

mod environ;
mod environ_cache;
mod errors;
mod file_wrapper;
mod handler;
mod input;
mod interpreter;
mod loader;
mod pool;
mod pull;
mod respond;
mod responder;
mod router;
mod start_response;
mod uwsgi_environ;

pub use handler::{WsgiHandler, WsgiOptions};
pub use interpreter::{
    ForkSide, Interpreter, InterpreterError, PYTHON_BUILD_VERSION, PYTHON_EXECUTABLE,
    fork_with_python,
};
pub use loader::{App, AppSpec, LoadError, load};
