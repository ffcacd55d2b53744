//! Start-up in uWSGI's order: detach or redirect the log, set the
//! environment and directory, bind (or inherit) the sockets, write pidfiles,
//! drop privileges, start Python and (unless lazy) load the app, then serve
//! in this process or become the master of forked workers.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow};
use portico_config::{AppSource, Config};
use portico_server::{BoundListener, ServeOptions, serve};
use portico_supervisor::{
    Forked, MasterExit, MasterOptions, Scoreboard, WorkerContext, daemonize, drop_privileges,
    exec_self, redirect_output, remove_file_quietly, run_master, take_inherited_fds, write_pidfile,
};
use portico_wsgi::{
    App, AppSpec, ForkSide, Interpreter, WsgiHandler, WsgiOptions, fork_with_python, load,
};

use crate::VERSION;
use crate::listeners::{adopt_all, bind_all};
use crate::worker::worker_main;

/// Why start-up failed.
pub(crate) enum Failure {
    /// The app did not load; already reported with its traceback.
    AppLoad,
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Other(e.into())
    }
}

/// True when a supervising master is needed: asked for, or implied by an
/// option that needs someone to respawn workers (as in uWSGI).
fn needs_master(config: &Config) -> bool {
    let p = &config.process;
    p.master
        || !p.harakiri.is_zero()
        || p.evil_reload_on_rss > 0
        || p.max_requests > 0
        || p.reload_on_rss > 0
        || !p.touch_reload.is_empty()
}

/// Load the app, printing the traceback and advice when it fails.
pub(crate) fn load_app(config: &Config) -> Result<App, Failure> {
    let spec = match config.app.as_ref() {
        Some(AppSource::File(path)) => AppSpec::File(path.clone()),
        Some(AppSource::Module(module)) => AppSpec::Module(module.clone()),
        None => return Err(anyhow!("no application given").into()),
    };
    let started = Instant::now();
    match load(&spec, &config.callable, &config.pythonpath) {
        Ok(app) => {
            eprintln!(
                "WSGI app 0 (mountpoint='') ready in {} seconds on pid {}: {} (callable: {})",
                started.elapsed().as_secs(),
                std::process::id(),
                app.description,
                config.callable
            );
            Ok(app)
        }
        Err(e) => {
            if let Some(traceback) = &e.traceback {
                eprint!("{traceback}");
            }
            eprintln!("portico: {e}");
            Err(Failure::AppLoad)
        }
    }
}

/// Run Portico; returns the exit code of a clean stop.
pub(crate) fn run(mut config: Config) -> Result<u8, Failure> {
    let inherited = take_inherited_fds();
    let p = config.process.clone();
    if inherited.is_none() {
        if let Some(log) = &p.daemonize {
            daemonize(log).context("--daemonize")?;
        } else if let Some(log) = &p.logto {
            redirect_output(log).context("--logto")?;
        }
    }
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
    let listeners = match &inherited {
        Some(fds) => adopt_all(&config, fds)?,
        None => bind_all(&config)?,
    };
    if let Some(path) = &p.pidfile {
        write_pidfile(path, std::process::id())?;
    }
    if p.uid.is_some() || p.gid.is_some() {
        drop_privileges(p.uid.as_deref(), p.gid.as_deref()).context("dropping privileges")?;
    }
    if let Some(path) = &p.pidfile2 {
        write_pidfile(path, std::process::id())?;
    }
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
    let app = if p.lazy_apps {
        None
    } else {
        Some(load_app(&config)?)
    };

    let master = needs_master(&config);
    if !master && p.processes == 1 {
        let app = match app {
            Some(app) => app,
            None => load_app(&config)?,
        };
        serve_single(&config, app, listeners)?;
        eprintln!("goodbye to portico (pid: {})", std::process::id());
        return Ok(0);
    }
    if master && !p.master {
        eprintln!("(an option that needs respawning is set: running a master process)");
    }
    config.process.master = master;
    let board = Arc::new(Scoreboard::new(p.processes, config.threads)?);
    let options = MasterOptions {
        processes: p.processes,
        supervise: master,
        harakiri: p.harakiri,
        harakiri_verbose: p.harakiri_verbose,
        evil_reload_on_rss: p.evil_reload_on_rss,
        reload_mercy: p.reload_mercy,
        touch_reload: p.touch_reload.clone(),
    };
    let fork = || -> std::io::Result<Forked> {
        Ok(match fork_with_python()? {
            ForkSide::Parent(pid) => Forked::Parent(pid),
            ForkSide::Child => Forked::Child,
        })
    };
    let body = |ctx: WorkerContext| -> i32 { worker_main(ctx, &config, app.as_ref(), &listeners) };
    let exit = run_master(options, board, &fork, &body).context("master")?;
    match exit {
        MasterExit::Reload => {
            eprintln!("binary reloading portico...");
            let fds: Vec<_> = listeners.iter().map(|l| l.socket.as_raw_fd()).collect();
            Err(anyhow!("cannot re-execute for the reload: {}", exec_self(&fds)).into())
        }
        MasterExit::Stop(code) => {
            if p.vacuum {
                for path in [&p.pidfile, &p.pidfile2].into_iter().flatten() {
                    remove_file_quietly(path);
                }
            }
            eprintln!("goodbye to uWSGI. (portico, pid: {})", std::process::id());
            Ok(code.clamp(0, 255) as u8)
        }
    }
}

/// One process, no master: serve here until a stop signal.
fn serve_single(config: &Config, app: App, listeners: Vec<BoundListener>) -> Result<(), Failure> {
    let handler = WsgiHandler::start(
        app,
        WsgiOptions {
            threads: config.threads,
            multiprocess: false,
            tracker: None,
        },
    )
    .map_err(anyhow::Error::msg)?;
    let options = ServeOptions {
        access_log: !config.disable_logging,
        shutdown_grace: config.process.reload_mercy,
        ..ServeOptions::default()
    };
    let threads = config.threads;
    serve(listeners, Arc::new(handler), options, || {
        eprintln!(
            "*** portico is ready to serve (pid: {}, threads: {threads}) ***",
            std::process::id()
        );
    })
    .context("serving")?;
    if config.process.vacuum {
        for path in [&config.process.pidfile, &config.process.pidfile2]
            .into_iter()
            .flatten()
        {
            remove_file_quietly(path);
        }
    }
    Ok(())
}
