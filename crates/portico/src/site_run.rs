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

use std::process::ExitCode;

use anyhow::{Context, Result};
use portico_config::nginx;
use portico_config::site::{ListenAddr as SiteAddr, ListenProtocol, Site};
use portico_config::{Config, ListenAddr, Listener, Protocol, Setting};
use portico_supervisor::ReloadCheck;

use crate::EXIT_FAILURE;
use crate::front::SiteSetup;

/// Fold the site into the run's Config: its listen addresses become
/// listeners (after the option-style ones), its main settings fill what no
/// option set.
pub(crate) fn apply_site(
    config: &mut Config,
    settings: &[Setting],
    site: &Site,
    prefix: &Path,
    pid_file: PathBuf,
) {
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
    // Requests are logged by nginx's `access_log`; uWSGI's request line
    // would log each of them a second time, to the error log.
    config.disable_logging = true;
    // The pid file `-s` reads: the `pid` directive, else nginx's default
    // (PREFIX/logs/nginx.pid) when that directory exists.
    if !explicit.contains("pidfile")
        && (main.pid.is_some() || pid_file.parent().is_some_and(Path::is_dir))
    {
        config.process.pidfile = Some(pid_file);
    }
    if !explicit.contains("logto")
        && !explicit.contains("daemonize")
        && let Some(log) = &main.error_log
    {
        config.process.logto = Some(absolute(prefix, log));
    }
    config.listeners.extend(site_listeners(site));
    apply_client_settings(config, &explicit, site);
}

/// nginx's `client_*` and `send_timeout` directives of the first server
/// (the default server's, as nginx takes `client_header_timeout`) set the
/// connection limits, unless an option (`--post-buffering`,
/// `--http-timeout`) set them.
fn apply_client_settings(config: &mut Config, explicit: &HashSet<&str>, site: &Site) {
    let Some(server) = site.servers.iter().find(|s| !s.is_app_server()) else {
        return;
    };
    let c = &server.config;
    let client = &mut config.client;
    if !explicit.contains("http-timeout") {
        client.header_timeout = c.client_header_timeout;
        client.body_timeout = c.client_body_timeout;
        client.send_timeout = c.send_timeout;
    }
    client.keepalive_timeout = c.keepalive_timeout;
    if !explicit.contains("post-buffering") {
        client.post_buffering = usize::try_from(c.client_body_buffer_size).unwrap_or(usize::MAX);
    }
    client.body_temp_dir = c.client_body_temp_path.clone();
}

/// An I/O error's text without Rust's ` (os error N)` tail, as nginx words it.
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn absolute(prefix: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        prefix.join(path)
    }
}

/// One listener per socket of the site ([`Site::listening_sockets`]: a
/// specific address whose port also has a wildcard listen is served by the
/// wildcard socket, as nginx does without `bind`).
fn site_listeners(site: &Site) -> Vec<Listener> {
    let all: Vec<_> = site.servers.iter().flat_map(|s| s.listens.iter()).collect();
    // nginx's `ssl` is a property of the address: one `listen ... ssl`
    // makes every server on it TLS.
    let ssl_addrs: Vec<&SiteAddr> = all.iter().filter(|l| l.ssl).map(|l| &l.addr).collect();
    let mut listeners = Vec::new();
    for listen in site.listening_sockets() {
        let (addr, shown) = match &listen.addr {
            SiteAddr::Tcp(a) => (
                ListenAddr::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                },
                match a {
                    SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
                    a => a.to_string(),
                },
            ),
            SiteAddr::Unix(path) => (
                ListenAddr::Unix(path.clone()),
                format!("unix:{}", path.display()),
            ),
        };
        listeners.push(Listener {
            protocol: match listen.protocol {
                ListenProtocol::Http => Protocol::Http,
                ListenProtocol::Uwsgi => Protocol::Uwsgi,
            },
            addr,
            spec: format!("listen {shown}"),
            http2: http2_of(site, &listen.addr),
            tls: ssl_addrs
                .contains(&&listen.addr)
                .then_some(portico_config::ListenerTls::Site),
        });
    }
    listeners
}

/// HTTP/2 on a listen address: when any `listen` of it says `http2` (or
/// its server has `http2 on`), with the limits of its default server (the
/// one marked `default_server`, else the first), as nginx takes them.
fn http2_of(site: &Site, addr: &SiteAddr) -> Option<portico_config::Http2Settings> {
    let on_addr = || {
        site.servers
            .iter()
            .filter_map(move |s| s.listens.iter().find(|l| &l.addr == addr).map(|l| (s, l)))
    };
    if !on_addr().any(|(_, l)| l.http2) {
        return None;
    }
    let default = on_addr()
        .find(|(_, l)| l.default_server)
        .or_else(|| on_addr().next())?;
    Some(default.0.config.http2.settings)
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

/// Serve `site` (read from `conf`) with the uWSGI options in `rest`.
pub(crate) fn run_site(
    conf: &Path,
    prefix: &Path,
    globals: Option<&str>,
    pid_file: PathBuf,
    rest: &[String],
    site: Site,
) -> ExitCode {
    let (mut config, settings) = match read_options(rest) {
        Ok(read) => read,
        Err(e) => {
            portico_server::logln!("portico: {e:#}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let app_listeners = config.listeners.len();
    apply_site(&mut config, &settings, &site, prefix, pid_file);
    if let Some(log) = &config.process.logto
        && let Err(e) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        portico_server::logln!(
            "portico: [emerg] open() \"{}\" failed ({}: {})",
            log.display(),
            e.raw_os_error().unwrap_or(0),
            io_text(&e)
        );
        return ExitCode::from(EXIT_FAILURE);
    }
    if config.listeners.is_empty() {
        portico_server::logln!("portico: nothing listens: no server has a listen address");
        return ExitCode::from(EXIT_FAILURE);
    }
    let worker_user = site.main.user.clone();
    let held = config.listeners.iter().map(|l| l.addr.clone()).collect();
    let setup = SiteSetup {
        site: Arc::new(site),
        prefix: prefix.to_path_buf(),
        app_listeners,
        reload_check: Some(reload_check(conf, prefix, globals, held)),
        worker_user,
        app_compress: config.compress.settings().map(Arc::new),
    };
    crate::exit_code(crate::start::run(config, Some(setup)))
}

/// Before a reload, read the configuration again: a broken one is logged
/// with its file and line, and the running one keeps serving. So it does
/// when a `listen` address the reload would add cannot be bound (taken by
/// another process, or a wildcard over one of ours: nginx refuses both the
/// same way); `held` are the addresses this run has bound.
fn reload_check(
    conf: &Path,
    prefix: &Path,
    globals: Option<&str>,
    held: Vec<ListenAddr>,
) -> ReloadCheck {
    let (conf, prefix, globals) = (
        conf.to_path_buf(),
        prefix.to_path_buf(),
        globals.map(String::from),
    );
    ReloadCheck(Arc::new(move || {
        let tree = nginx::read_conf(&conf, globals.as_deref()).map_err(|e| e.to_string())?;
        let site = nginx::to_site(&tree, &prefix).map_err(|e| e.to_string())?;
        // A certificate or key that cannot be loaded keeps the old workers.
        portico_server::tls::SiteTls::build(&site).map_err(|e| format!("[emerg] {e}"))?;
        for listener in site_listeners(&site) {
            if !held.contains(&listener.addr) {
                bindable(&listener.addr)?;
            }
        }
        Ok(())
    }))
}

/// Whether a new listener's address can be bound, with nginx's message when
/// not: `[emerg] bind() to 127.0.0.1:8081 failed (98: Address already in use)`.
fn bindable(addr: &ListenAddr) -> Result<(), String> {
    let (shown, result) = match addr {
        ListenAddr::Tcp { host, port } => {
            let shown = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            (shown, portico_server::try_bind_tcp(host, *port))
        }
        // bind_unix replaces any socket file; only another kind of file stops it
        ListenAddr::Unix(path) => {
            use std::os::unix::fs::FileTypeExt;
            let result = match std::fs::symlink_metadata(path) {
                Ok(meta) if !meta.file_type().is_socket() => {
                    Err(std::io::Error::from_raw_os_error(libc::EADDRINUSE))
                }
                _ => Ok(()),
            };
            (format!("unix:{}", path.display()), result)
        }
    };
    result.map_err(|e| {
        let code = e.raw_os_error().unwrap_or(0);
        let text = e.to_string();
        let text = text.split(" (os error").next().unwrap_or("");
        format!("[emerg] bind() to {shown} failed ({code}: {text})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_is_not_bindable_and_says_so_as_nginx() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = held.local_addr().expect("addr").port();
        let addr = ListenAddr::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            bindable(&addr),
            Err(format!(
                "[emerg] bind() to 127.0.0.1:{port} failed (98: Address already in use)"
            ))
        );
        drop(held);
        assert_eq!(bindable(&addr), Ok(()));
    }

    #[test]
    fn a_unix_listen_path_is_bindable_unless_another_kind_of_file_is_there() {
        let dir = std::env::temp_dir().join(format!("portico-bindable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("app.sock");
        assert_eq!(bindable(&ListenAddr::Unix(path.clone())), Ok(()));
        std::fs::write(&path, b"not a socket").expect("file");
        let got = bindable(&ListenAddr::Unix(path.clone()));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            got,
            Err(format!(
                "[emerg] bind() to unix:{} failed (98: Address already in use)",
                path.display()
            ))
        );
    }
}
