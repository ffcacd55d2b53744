//! `portico -c nginx.conf [uWSGI options]`: read the nginx configuration
//! into a Site, fold its main-context settings (`worker_processes`, `pid`,
//! `user`, `error_log`) and its `listen` addresses into the run's Config,
//! and start as usual: master, workers, reload by re-exec. uWSGI options
//! given beside `-c` (long names) add the app and its own sockets; an
//! explicit option wins over the nginx directive it overlaps.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use portico_config::site::{ListenAddr as SiteAddr, ListenProtocol, Site};
use portico_config::{Config, ListenAddr, Listener, Protocol, Setting};

/// Fold the site into the run's Config: its listen addresses become
/// listeners (after the option-style ones), its main settings fill what no
/// option set.
pub(crate) fn apply_site(config: &mut Config, settings: &[Setting], site: &Site, prefix: &Path) {
    let explicit: HashSet<&str> = settings.iter().map(|s| s.option.name).collect();
    let main = &site.main;
    if !explicit.contains("processes") {
        config.process.processes = match main.worker_processes {
            Some(n) => n.max(1),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
    }
    // nginx always runs a master: it is what reloads (`-s reload`, SIGHUP).
    config.process.master = true;
    if !explicit.contains("pidfile")
        && let Some(pid) = &main.pid
    {
        config.process.pidfile = Some(absolute(prefix, pid));
    }
    if !explicit.contains("logto")
        && !explicit.contains("daemonize")
        && let Some(log) = &main.error_log
    {
        config.process.logto = Some(absolute(prefix, log));
    }
    if let Some((user, group)) = &main.user {
        if !explicit.contains("uid") {
            config.process.uid = Some(user.clone());
        }
        if !explicit.contains("gid") {
            config.process.gid = group.clone().or_else(|| Some(user.clone()));
        }
    }
    config.listeners.extend(site_listeners(site));
}

fn absolute(prefix: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        prefix.join(path)
    }
}

/// One listener per distinct `listen` address of the site. A specific
/// address whose port also has a wildcard listen is served by the wildcard
/// socket (the router tells them apart by the connection's local address),
/// as nginx does without `bind`.
fn site_listeners(site: &Site) -> Vec<Listener> {
    let mut seen: Vec<SiteAddr> = Vec::new();
    let mut listeners = Vec::new();
    let all: Vec<_> = site.servers.iter().flat_map(|s| s.listens.iter()).collect();
    let wildcard_ports: HashSet<(bool, u16)> = all
        .iter()
        .filter_map(|l| match &l.addr {
            SiteAddr::Tcp(a) if a.ip().is_unspecified() => Some((a.is_ipv6(), a.port())),
            _ => None,
        })
        .collect();
    for listen in all {
        if seen.contains(&listen.addr) {
            continue;
        }
        seen.push(listen.addr.clone());
        let addr = match &listen.addr {
            SiteAddr::Tcp(a) => {
                if !a.ip().is_unspecified() && wildcard_ports.contains(&(a.is_ipv6(), a.port())) {
                    continue;
                }
                ListenAddr::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                }
            }
            SiteAddr::Unix(path) => ListenAddr::Unix(path.clone()),
        };
        let shown = match &listen.addr {
            SiteAddr::Tcp(SocketAddr::V6(a)) => format!("[{}]:{}", a.ip(), a.port()),
            SiteAddr::Tcp(a) => a.to_string(),
            SiteAddr::Unix(p) => format!("unix:{}", p.display()),
        };
        listeners.push(Listener {
            protocol: match listen.protocol {
                ListenProtocol::Http => Protocol::Http,
                ListenProtocol::Uwsgi => Protocol::Uwsgi,
            },
            addr,
            spec: format!("listen {shown}"),
        });
    }
    listeners
}

/// Read the uWSGI options given beside `-c` (environment included).
pub(crate) fn read_options(rest: &[String]) -> Result<(Config, Vec<Setting>)> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let loaded = portico_config::load(rest.iter().cloned(), &env)?;
    for note in &loaded.notes {
        portico_server::logln!("portico: {note}");
    }
    let config = Config::from_settings(&loaded.settings).context("the options beside -c")?;
    Ok((config, loaded.settings))
}

/// Keep the Site alive for every worker.
pub(crate) fn shared(site: Site) -> Arc<Site> {
    Arc::new(site)
}
