//! Start-up in uWSGI's order: detach or redirect the log, set the
//! environment and directory, bind (or inherit) the sockets, write pidfiles,
//! drop privileges, start Python and (unless lazy) load the app, then serve
//! in this process or become the master of forked workers.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow};
use portico_config::{AppSource, Config};
use portico_server::Wire;
use portico_server::{
    BoundListener, LogConfig, LogFormat, ServeOptions, SpoolConfig, Timeouts, serve,
};
use portico_supervisor::{
    AppInfo, Forked, MasterExit, MasterOptions, Scoreboard, SocketInfo, StatsServer, WorkerContext,
    daemonize, drop_privileges, exec_self, redirect_output, remove_file_quietly, run_master,
    take_inherited_fds, write_pidfile,
};
use portico_wsgi::{
    App, AppSpec, ForkSide, Interpreter, WsgiHandler, WsgiOptions, fork_with_python, load,
};

use crate::VERSION;
use crate::front::{SiteSetup, front_handler, log_static_maps};
use crate::listeners::{adopt_all, attach_tls, bind_all, unix_paths};
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
        || config.observe.needs_master()
}

/// The loaded apps: (mountpoint, app); `""` is the default app.
pub(crate) type Apps = Vec<(String, App)>;

fn spec_of(source: &AppSource) -> AppSpec {
    match source {
        AppSource::File(path) => AppSpec::File(path.clone()),
        AppSource::Module(module) => AppSpec::Module(module.clone()),
    }
}

/// The callable's name as the loader takes it: `MOD:NAME` names its own
/// (`app:app` loads `app`, not `--callable`), anything else uses `--callable`.
fn callable_of<'a>(spec: &'a AppSpec, callable: &'a str) -> &'a str {
    match spec {
        AppSpec::Module(target) => match target.split_once(':') {
            Some((_, name)) if !name.is_empty() => name,
            _ => callable,
        },
        AppSpec::File(_) => callable,
    }
}

/// Load the default app and every mount, printing the traceback and
/// advice when one fails.
pub(crate) fn load_apps(config: &Config) -> Result<Apps, Failure> {
    let mut wanted: Vec<(String, AppSpec)> = Vec::new();
    if let Some(app) = &config.app {
        wanted.push((String::new(), spec_of(app)));
    }
    for mount in &config.mounts {
        wanted.push((mount.mountpoint.clone(), spec_of(&mount.app)));
    }
    let mut apps = Vec::new();
    for (id, (mountpoint, spec)) in wanted.into_iter().enumerate() {
        let started = Instant::now();
        let callable = callable_of(&spec, &config.callable);
        match load(&spec, &config.callable, &config.pythonpath) {
            Ok(app) => {
                portico_server::logln!(
                    "WSGI app {id} (mountpoint='{mountpoint}') ready in {} seconds on pid {}: {} (callable: {})",
                    started.elapsed().as_secs(),
                    std::process::id(),
                    app.description,
                    callable
                );
                apps.push((mountpoint, app));
            }
            Err(e) => {
                if let Some(traceback) = &e.traceback {
                    portico_server::logln!("{}", traceback.trim_end());
                }
                portico_server::logln!("portico: {e}");
                return Err(Failure::AppLoad);
            }
        }
    }
    Ok(apps)
}

/// Another handle on every app (for a forked worker).
pub(crate) fn clone_apps(apps: &Apps) -> Apps {
    apps.iter()
        .map(|(m, app)| (m.clone(), app.clone_ref()))
        .collect()
}

/// The request log's settings for worker `worker_id` (0 without a master).
pub(crate) fn log_config(config: &Config, worker_id: u32) -> LogConfig {
    let o = &config.observe;
    LogConfig {
        enabled: !config.disable_logging,
        log_4xx: o.log_4xx,
        log_5xx: o.log_5xx,
        slow: o.log_slow,
        format: if o.log_format_json {
            LogFormat::Json
        } else {
            o.log_format
                .clone()
                .map_or(LogFormat::Uwsgi, LogFormat::Custom)
        },
        x_forwarded_for: o.log_x_forwarded_for,
        memory_report: config.memory_report,
        micros: o.log_micros,
        worker_id,
    }
}

/// Remove pidfiles and unix sockets (`--vacuum`).
fn vacuum(config: &Config) {
    if !config.process.vacuum {
        return;
    }
    let p = &config.process;
    for path in [&p.pidfile, &p.pidfile2].into_iter().flatten() {
        remove_file_quietly(path);
    }
    for path in unix_paths(config) {
        remove_file_quietly(path);
    }
}

/// Run Portico; returns the exit code of a clean stop.
pub(crate) fn run(mut config: Config, site: Option<SiteSetup>) -> Result<u8, Failure> {
    let inherited = take_inherited_fds();
    let p = config.process.clone();
    portico_server::set_log_date(config.observe.log_date.as_deref());
    if inherited.is_none() {
        if let Some(log) = &p.daemonize {
            daemonize(log).context("--daemonize")?;
        } else if let Some(log) = &p.logto {
            redirect_output(log).context("--logto")?;
        }
    }
    portico_server::logln!(
        "*** Starting portico {VERSION} (pid: {}) ***",
        std::process::id()
    );
    for (key, value) in &config.env {
        // SAFETY: no other thread exists yet in this process.
        unsafe { std::env::set_var(key, value) };
    }
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).with_context(|| format!("--chdir {}", dir.display()))?;
        portico_server::logln!("chdir() to {}", dir.display());
    }
    let mut listeners = match &inherited {
        Some(fds) => adopt_all(&config, fds)?,
        None => bind_all(&config)?,
    };
    attach_tls(&config, site.as_ref().map(|s| &*s.site), &mut listeners)?;
    let site = site.map(|setup| setup.with_bound(&listeners));
    let log_file = p.daemonize.clone().or_else(|| p.logto.clone());
    if let Some(setup) = &site {
        setup.prepare_log_files(log_file.as_deref());
    }
    if let Some(path) = &p.pidfile {
        write_pidfile(path, std::process::id())?;
    }
    if p.uid.is_some() || p.gid.is_some() {
        drop_privileges(p.uid.as_deref(), p.gid.as_deref()).context("dropping privileges")?;
    }
    if let Some(path) = &p.pidfile2 {
        write_pidfile(path, std::process::id())?;
    }
    let virtualenv = choose_virtualenv(
        config.virtualenv.as_deref(),
        std::env::var_os("VIRTUAL_ENV").as_deref(),
        std::env::current_exe().ok().as_deref(),
    );
    // Static files alone need no Python at all.
    let python_needed = config.app.is_some() || !config.mounts.is_empty();
    if python_needed {
        let python = Interpreter::start(virtualenv.as_deref())?;
        portico_server::logln!("Python version: {}", python.version);
        portico_server::logln!(
            "Python executable: {} (prefix: {})",
            python.executable,
            python.prefix
        );
        if let Some(venv) = &virtualenv {
            portico_server::logln!("virtualenv: {}", venv.display());
        }
    }
    log_static_maps(&config);
    let apps = if p.lazy_apps {
        None
    } else {
        Some(load_apps(&config)?)
    };

    let master = needs_master(&config);
    if !master && p.processes == 1 {
        let apps = match apps {
            Some(apps) => apps,
            None => load_apps(&config)?,
        };
        serve_single(&config, site.as_ref(), apps, listeners)?;
        portico_server::logln!("goodbye to portico (pid: {})", std::process::id());
        return Ok(0);
    }
    if master && !p.master {
        portico_server::logln!(
            "(an option that needs respawning is set: running a master process)"
        );
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
        stats: config.observe.stats.as_ref().map(|addr| StatsServer {
            addr: addr.clone(),
            http: config.observe.stats_http,
            minified: config.observe.stats_minified,
        }),
        metrics: config.observe.metrics.clone(),
        sockets: listeners
            .iter()
            .map(|l| SocketInfo {
                name: l.info.addr.to_string(),
                proto: match l.info.wire {
                    Wire::Http => "http",
                    Wire::Uwsgi => "uwsgi",
                },
                max_queue: p.listen,
                fd: l.socket.as_raw_fd(),
            })
            .collect(),
        apps: app_infos(&config),
        touch_logreopen: config.observe.touch_logreopen.clone(),
        log_file: log_file.clone(),
        // nginx mode: SIGUSR1 (`-s reopen`, logrotate) reopens the logs
        sigusr1_reopens: site.is_some(),
        on_reopen: site.as_ref().map(|s| s.reopen_hook(log_file.as_deref())),
        reload_check: site.as_ref().and_then(|s| s.reload_check.clone()),
    };
    let fork = || -> std::io::Result<Forked> {
        let side = if python_needed {
            fork_with_python()?
        } else {
            plain_fork()?
        };
        Ok(match side {
            ForkSide::Parent(pid) => Forked::Parent(pid),
            ForkSide::Child => Forked::Child,
        })
    };
    let body = |ctx: WorkerContext| -> i32 {
        worker_main(ctx, &config, site.as_ref(), apps.as_ref(), &listeners)
    };
    let exit = run_master(options, board, &fork, &body).context("master")?;
    match exit {
        MasterExit::Reload => {
            portico_server::logln!("binary reloading portico...");
            let fds: Vec<_> = listeners.iter().map(|l| l.socket.as_raw_fd()).collect();
            Err(anyhow!("cannot re-execute for the reload: {}", exec_self(&fds)).into())
        }
        MasterExit::Stop(code) => {
            vacuum(&config);
            portico_server::logln!("goodbye to uWSGI. (portico, pid: {})", std::process::id());
            Ok(code.clamp(0, 255) as u8)
        }
    }
}

/// The virtualenv the interpreter starts in, first found of: `--virtualenv`
/// (relative to the directory after `--chdir`, as in uWSGI), a non-empty
/// `VIRTUAL_ENV`, and the venv this binary is installed in (`pip install`
/// puts it at `VENV/bin/portico`, beside `VENV/pyvenv.cfg`), so an installed
/// `portico` runs with its own venv's packages without being told.
fn choose_virtualenv(
    option: Option<&Path>,
    env: Option<&OsStr>,
    exe: Option<&Path>,
) -> Option<PathBuf> {
    if let Some(dir) = option {
        return Some(dir.to_path_buf());
    }
    if let Some(dir) = env.filter(|v| !v.is_empty()) {
        return Some(dir.into());
    }
    exe.and_then(venv_of_binary)
}

/// `VENV` when `exe` is `VENV/bin/NAME` and `VENV/pyvenv.cfg` exists.
fn venv_of_binary(exe: &Path) -> Option<PathBuf> {
    let bin = exe.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let venv = bin.parent()?;
    venv.join("pyvenv.cfg")
        .is_file()
        .then(|| venv.to_path_buf())
}

/// The apps as the stats list them: the default app, then the mounts.
fn app_infos(config: &Config) -> Vec<AppInfo> {
    let chdir = config
        .chdir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let default = config.app.as_ref().map(|_| String::new());
    default
        .into_iter()
        .chain(config.mounts.iter().map(|m| m.mountpoint.clone()))
        .map(|mountpoint| AppInfo {
            mountpoint,
            chdir: chdir.clone(),
            startup_time: 0,
        })
        .collect()
}

/// fork(2) for a process without Python (static files only).
fn plain_fork() -> std::io::Result<ForkSide> {
    use nix::unistd::ForkResult;
    // SAFETY: the master is single-threaded when it forks.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => Ok(ForkSide::Child),
        ForkResult::Parent { child } => Ok(ForkSide::Parent(child.as_raw())),
    }
}

/// The WSGI handler for `apps`, or none when only static files are served.
/// The client settings of a run: time limits per listener kind, how
/// request bodies are received.
pub(crate) trait WithClient {
    fn with_client(self, config: &Config, site: Option<&SiteSetup>) -> Self;
}

impl WithClient for ServeOptions {
    fn with_client(mut self, config: &Config, site: Option<&SiteSetup>) -> ServeOptions {
        let c = &config.client;
        self.http_timeouts = Timeouts {
            header: c.header_timeout,
            body: c.body_timeout,
            send: c.send_timeout,
            keepalive: c.keepalive_timeout,
        };
        self.uwsgi_timeouts = Timeouts::UWSGI.all_io(c.socket_timeout);
        // A body announced over every limit is not received first: the
        // handler answers 413 without reading it.
        let site_max = site.map_or(0, |s| largest_body_limit(&s.site));
        let site_min = site.map_or(0, |s| smallest_body_limit(&s.site));
        let max = match (config.limit_post, site_max) {
            (0, m) | (m, 0) => m,
            (a, b) => a.min(b),
        };
        self.spool = SpoolConfig {
            memory: c.post_buffering,
            dir: c.body_temp_dir.clone(),
            max,
            announced_max: site_min,
        };
        self
    }
}

/// The smallest non-zero `client_max_body_size` of a site (0 when none
/// is limited): a body announced larger may be refused by the location
/// that gets it, so it is not waited for before the engine decides.
fn smallest_body_limit(site: &portico_config::site::Site) -> u64 {
    fn walk(locations: &[portico_config::site::Location], min: &mut u64) {
        for l in locations {
            note(l.config.client_max_body_size, min);
            walk(&l.locations, min);
        }
    }
    fn note(limit: u64, min: &mut u64) {
        if limit != 0 && (*min == 0 || limit < *min) {
            *min = limit;
        }
    }
    let mut min = 0;
    for server in site.servers.iter().filter(|s| !s.is_app_server()) {
        note(server.config.client_max_body_size, &mut min);
        walk(&server.locations, &mut min);
        walk(&server.named, &mut min);
    }
    min
}

/// The largest `client_max_body_size` of a site (0 when one is unlimited).
fn largest_body_limit(site: &portico_config::site::Site) -> u64 {
    fn walk(locations: &[portico_config::site::Location], max: &mut Option<u64>) {
        for l in locations {
            let limit = l.config.client_max_body_size;
            *max = match *max {
                Some(0) => Some(0),
                _ if limit == 0 => Some(0),
                Some(m) => Some(m.max(limit)),
                None => Some(limit),
            };
            walk(&l.locations, max);
        }
    }
    let mut max = None;
    for server in &site.servers {
        if server.is_app_server() {
            // The option-style app: limited by --limit-post only.
            return 0;
        }
        let limit = server.config.client_max_body_size;
        max = Some(match max {
            Some(0) => 0,
            _ if limit == 0 => 0,
            Some(m) => limit.max(m),
            None => limit,
        });
        walk(&server.locations, &mut max);
        walk(&server.named, &mut max);
    }
    max.unwrap_or(0)
}

pub(crate) fn app_handler(apps: Apps, options: WsgiOptions) -> Result<Option<WsgiHandler>, String> {
    if apps.is_empty() {
        return Ok(None);
    }
    WsgiHandler::start(apps, options).map(Some)
}

/// One process, no master: serve here until a stop signal.
fn serve_single(
    config: &Config,
    site: Option<&SiteSetup>,
    apps: Apps,
    listeners: Vec<BoundListener>,
) -> Result<(), Failure> {
    let handler = app_handler(
        apps,
        WsgiOptions {
            manage_script_name: config.manage_script_name,
            threads: config.threads,
            multiprocess: false,
            tracker: None,
        },
    )
    .map_err(anyhow::Error::msg)?;
    let (handler, background) = front_handler(config, site, handler);
    let options = ServeOptions {
        log: log_config(config, 0),
        background,
        shutdown_grace: config.process.reload_mercy,
        nginx_pages: site.is_some(),
        limit_post: config.limit_post,
        max_connections: site.map_or(config.worker_connections, |s| {
            s.site.main.worker_connections
        }),
        ..ServeOptions::default()
    }
    .with_client(config, site);
    let threads = config.threads;
    serve(listeners, handler, options, || {
        portico_server::logln!(
            "*** portico is ready to serve (pid: {}, threads: {threads}) ***",
            std::process::id()
        );
    })
    .context("serving")?;
    vacuum(config);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_in_a_venv_uses_that_venv_when_nothing_else_is_given() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("portico-venv-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin"))?;
        std::fs::write(dir.join("pyvenv.cfg"), "home = /usr/bin\n")?;
        let exe = dir.join("bin").join("portico");
        let other = Path::new("/elsewhere");
        let cases: [(Option<&Path>, Option<&OsStr>, Option<PathBuf>); 4] = [
            (None, None, Some(dir.clone())),
            (None, Some(OsStr::new("")), Some(dir.clone())),
            (None, Some(other.as_os_str()), Some(other.to_path_buf())),
            (Some(other), None, Some(other.to_path_buf())),
        ];
        for (option, env, want) in cases {
            assert_eq!(
                choose_virtualenv(option, env, Some(&exe)),
                want,
                "{option:?} {env:?}"
            );
        }
        std::fs::remove_dir_all(&dir)
    }

    #[test]
    fn banner_callable_is_the_one_named_after_the_colon() {
        let cases = [
            (AppSpec::Module("app:app".into()), "app"),
            (AppSpec::Module("app:create_app()".into()), "create_app()"),
            (AppSpec::Module("app".into()), "application"),
            (AppSpec::Module("app:".into()), "application"),
            (AppSpec::File("app.py".into()), "application"),
        ];
        for (spec, want) in &cases {
            assert_eq!(callable_of(spec, "application"), *want);
        }
    }

    #[test]
    fn binary_outside_a_venv_uses_no_venv() {
        for exe in [
            "/work/target/release/portico",
            "/usr/bin/portico",
            "portico",
        ] {
            assert_eq!(
                choose_virtualenv(None, None, Some(Path::new(exe))),
                None,
                "{exe}"
            );
        }
    }
}
