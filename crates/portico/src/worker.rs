//! What a forked worker runs: (lazily) load the app, start the Python
//! threads, and serve the inherited sockets with the supervisor's hooks
//! until told to stop or it retires.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use portico_config::Config;
use portico_server::{BoundListener, ServeOptions, SiteHandler, StopReason, serve};
use portico_supervisor::{
    WorkerContext, WorkerLimits, WorkerRuntime, limit_address_space, redirect_output,
};
use portico_wsgi::WsgiOptions;

use crate::EXIT_APP_LOAD_FAILED;
use crate::front::{Front, SiteSetup, front};
use crate::peer_stats::peer_publisher;
use crate::start::{Apps, WithClient, app_handler, clone_apps, load_apps, log_config};

/// A worker's exit code for a start-up failure other than the app.
const EXIT_WORKER_FAILED: i32 = 1;

/// This worker's request limit: the base, staggered by worker id
/// (`max-requests-delta`), plus a random `max-requests-jitter`.
fn max_requests(config: &Config, wid: usize) -> u64 {
    let p = &config.process;
    if p.max_requests == 0 {
        return 0;
    }
    let jitter = if p.max_requests_jitter > 0 {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id().wrapping_mul(2_654_435_761);
        u64::from(seed) % (p.max_requests_jitter + 1)
    } else {
        0
    };
    p.max_requests + (wid as u64 - 1) * p.max_requests_delta + jitter
}

/// What a worker does on SIGUSR2 (the master sends it for
/// `--touch-logreopen`, and in nginx mode for SIGUSR1 / `-s reopen`):
/// point stdout and stderr at a freshly opened log file, as the master just
/// did, and let the Site router open its `access_log` files afresh.
fn log_reopener(
    config: &Config,
    router: Option<Arc<SiteHandler>>,
) -> Option<Arc<dyn Fn() + Send + Sync>> {
    let p = &config.process;
    let path = p.daemonize.clone().or_else(|| p.logto.clone());
    if path.is_none() && router.is_none() {
        return None;
    }
    Some(Arc::new(move || {
        if let Some(path) = &path
            && let Err(e) = redirect_output(path)
        {
            portico_server::logln!("cannot reopen the log: {e}");
        }
        if let Some(router) = &router {
            router.reopen_logs();
            portico_server::logln!("worker (pid: {}) reopened its logs", std::process::id());
        }
    }))
}

/// Run one worker; returns its exit code.
pub(crate) fn worker_main(
    ctx: WorkerContext,
    config: &Config,
    site: Option<&SiteSetup>,
    apps: Option<&Apps>,
    listeners: &[BoundListener],
) -> i32 {
    let p = &config.process;
    if p.limit_as > 0
        && let Err(e) = limit_address_space(p.limit_as)
    {
        portico_server::logln!("worker {}: cannot set --limit-as: {e}", ctx.wid);
    }
    // nginx's `user`: only a master running as root switches its workers.
    let root = nix::unistd::geteuid().is_root();
    if let Some((user, group)) = site.and_then(|s| s.worker_user.as_ref()).filter(|_| root)
        && let Err(e) =
            portico_supervisor::drop_privileges(Some(user), group.as_deref().or(Some(user)))
    {
        portico_server::logln!("worker {}: cannot switch to user {user}: {e}", ctx.wid);
        return EXIT_WORKER_FAILED;
    }
    let apps = match apps {
        Some(apps) => clone_apps(apps),
        None => match load_apps(config) {
            Ok(apps) => apps,
            Err(_) => return i32::from(EXIT_APP_LOAD_FAILED),
        },
    };
    let runtime = WorkerRuntime::new(
        &ctx,
        WorkerLimits {
            max_requests: max_requests(config, ctx.wid),
            min_lifetime: p.min_worker_lifetime,
            reload_on_rss: p.reload_on_rss,
        },
        // The running request's line is read by the stats server and
        // harakiri's log only; without either it is not copied per request.
        config.observe.stats.is_some() || !p.harakiri.is_zero(),
    );
    let handler = match app_handler(
        apps,
        WsgiOptions {
            manage_script_name: config.manage_script_name,
            threads: config.threads,
            multiprocess: p.processes > 1,
            tracker: Some(runtime.clone()),
        },
    ) {
        Ok(handler) => handler,
        Err(e) => {
            portico_server::logln!("worker {}: {e}", ctx.wid);
            return EXIT_WORKER_FAILED;
        }
    };
    let sockets: Result<Vec<_>, _> = listeners.iter().map(BoundListener::try_clone).collect();
    let sockets = match sockets {
        Ok(s) => s,
        Err(e) => {
            portico_server::logln!("worker {}: cannot use the listening sockets: {e}", ctx.wid);
            return EXIT_WORKER_FAILED;
        }
    };
    let Front {
        handler,
        router,
        mut background,
        groups,
    } = front(config, site, handler);
    if !groups.is_empty() {
        background.push(peer_publisher(ctx.board.clone(), ctx.wid, groups));
    }
    let options = ServeOptions {
        log: log_config(config, ctx.wid as u32),
        reopen_log: log_reopener(config, router),
        shutdown_grace: p.reload_mercy,
        fair_accept: p.processes > 1,
        capacity: config.threads,
        hooks: Some(runtime),
        nginx_pages: site.is_some(),
        limit_post: config.limit_post,
        background,
        max_connections: site.map_or(config.worker_connections, |s| {
            s.site.main.worker_connections
        }),
        ..ServeOptions::default()
    }
    .with_client(config, site);
    let pid = std::process::id();
    let wid = ctx.wid;
    let board = ctx.board.clone();
    match serve(sockets, handler, options, || {
        board.worker(wid).accepting.store(1, Ordering::Relaxed);
        portico_server::logln!("*** portico worker {wid} is ready to serve (pid: {pid}) ***")
    }) {
        Ok(StopReason::Retired) => {
            portico_server::logln!("...The work of process {pid} is done. Seeya!");
            0
        }
        Ok(_) => 0,
        Err(e) => {
            portico_server::logln!("worker {wid} (pid: {pid}): {e}");
            EXIT_WORKER_FAILED
        }
    }
}
