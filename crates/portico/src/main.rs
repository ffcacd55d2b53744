//! The `portico` binary: reads the options, binds the listeners, starts the
//! embedded Python and loads the app, then serves.
//!
//! Exit codes: 0 after a clean stop; 1 for a bad option or a start-up error
//! (a socket that cannot be bound, Python that cannot start); 22 when the
//! app cannot be loaded (uWSGI's need-app code).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use portico_config::{AppSource, Config, ListenAddr, help_text, parse_args};
use portico_server::{BoundListener, ServeOptions, bind, serve};
use portico_wsgi::{
    AppSpec, Interpreter, PYTHON_BUILD_VERSION, PYTHON_EXECUTABLE, WsgiHandler, WsgiOptions, load,
};

/// uWSGI's exit code when no app could be loaded (`need-app`).
const EXIT_APP_LOAD_FAILED: u8 = 22;
/// Exit code for bad options and start-up failures.
const EXIT_FAILURE: u8 = 1;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let config = match read_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("portico: {e:#}");
            eprintln!("Try \"portico --help\" for the list of options.");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if config.show_help {
        print!("{}", help_text());
        return ExitCode::SUCCESS;
    }
    if config.show_version {
        println!(
            "portico {VERSION} (built for Python {PYTHON_BUILD_VERSION} at {PYTHON_EXECUTABLE})"
        );
        return ExitCode::SUCCESS;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::AppLoad) => ExitCode::from(EXIT_APP_LOAD_FAILED),
        Err(Failure::Other(e)) => {
            eprintln!("portico: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn read_config() -> Result<Config> {
    let settings = parse_args(std::env::args().skip(1))?;
    let config = Config::from_settings(&settings)?;
    if !config.show_help && !config.show_version {
        config.validate()?;
    }
    Ok(config)
}

enum Failure {
    /// Already reported with its traceback.
    AppLoad,
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Other(e.into())
    }
}

fn run(config: Config) -> Result<(), Failure> {
    let started = Instant::now();
    eprintln!(
        "*** Starting portico {VERSION} (pid: {}) ***",
        std::process::id()
    );
    for (key, value) in &config.env {
        // SAFETY: no other thread exists yet in this process.
        unsafe { std::env::set_var(key, value) };
    }
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).with_context(|| format!("--chdir {}", dir.display()))?;
        eprintln!("chdir() to {}", dir.display());
    }
    let listeners = bind_all(&config)?;
    let virtualenv = config.virtualenv.clone().or_else(|| {
        std::env::var_os("VIRTUAL_ENV")
            .filter(|v| !v.is_empty())
            .map(Into::into)
    });
    let python = Interpreter::start(virtualenv.as_deref())?;
    eprintln!("Python version: {}", python.version);
    eprintln!(
        "Python executable: {} (prefix: {})",
        python.executable, python.prefix
    );
    if let Some(venv) = &virtualenv {
        eprintln!("virtualenv: {}", venv.display());
    }
    let spec = match config.app.as_ref() {
        Some(AppSource::File(path)) => AppSpec::File(path.clone()),
        Some(AppSource::Module(module)) => AppSpec::Module(module.clone()),
        None => return Err(anyhow::anyhow!("no application given").into()),
    };
    let app = match load(&spec, &config.callable, &config.pythonpath) {
        Ok(app) => app,
        Err(e) => {
            if let Some(traceback) = &e.traceback {
                eprint!("{traceback}");
            }
            eprintln!("portico: {e}");
            return Err(Failure::AppLoad);
        }
    };
    eprintln!(
        "WSGI app 0 (mountpoint='') ready in {} seconds: {} (callable: {})",
        started.elapsed().as_secs(),
        app.description,
        config.callable
    );
    let handler = WsgiHandler::start(
        app,
        WsgiOptions {
            threads: config.threads,
            multiprocess: false,
        },
    )
    .map_err(anyhow::Error::msg)?;
    let threads = config.threads;
    serve(
        listeners,
        Arc::new(handler),
        ServeOptions::default(),
        || {
            eprintln!(
                "*** portico is ready to serve (pid: {}, threads: {threads}) ***",
                std::process::id()
            );
        },
    )
    .context("serving")?;
    eprintln!("goodbye to portico (pid: {})", std::process::id());
    Ok(())
}

fn bind_all(config: &Config) -> Result<Vec<BoundListener>> {
    let mut bound = Vec::new();
    for (n, listener) in config.listeners.iter().enumerate() {
        let ListenAddr::Tcp { host, port } = &listener.addr;
        let socket = bind(host, *port, &listener.spec).with_context(|| listener.spec.clone())?;
        let shown = match socket.info.addr {
            std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            std::net::SocketAddr::V4(a) => a.to_string(),
        };
        eprintln!(
            "http socket {n} bound to TCP address {shown} fd {}",
            std::os::fd::AsRawFd::as_raw_fd(&socket.socket)
        );
        bound.push(socket);
    }
    Ok(bound)
}
