//! The handler a serving process answers with: the option-style app (the
//! WSGI apps behind uWSGI's `--static-map` files), or, with `-c
//! nginx.conf`, the Site router in front of it. `uwsgi_pass` to one of this
//! process's own app sockets goes to the app in process: no socket, no
//! uwsgi encoding, the same environ the app would get through nginx.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;

use portico_config::Config;
use portico_config::site::{
    Content, Listen, ListenAddr as SiteAddr, ListenProtocol, Location, Server, Site, UpstreamTarget,
};
use portico_proxy::{UwsgiSettings, UwsgiUpstream};
use portico_server::{
    BoundListener, Handler, ListenAddress, NotFound, SiteHandler, StaticConfig, StaticMap,
    UpstreamMap, Wire, WithStatic,
};
use portico_supervisor::ReloadCheck;
use portico_wsgi::WsgiHandler;

/// What `-c nginx.conf` adds to a run.
#[derive(Clone)]
pub(crate) struct SiteSetup {
    pub site: Arc<Site>,
    /// nginx's prefix (`-p`): relative paths of the site resolve against it.
    pub prefix: PathBuf,
    /// How many of the run's listeners (the first ones) are the
    /// option-style app's own (`--http`, `--socket`).
    pub app_listeners: usize,
    /// Re-reads the configuration before a reload.
    pub reload_check: Option<ReloadCheck>,
    /// `user USER [GROUP]`: the workers' identity (the master stays as it is).
    pub worker_user: Option<(String, Option<String>)>,
}

impl SiteSetup {
    /// Add the option-style app's server, listening where its sockets were
    /// actually bound (port 0 is known only now).
    pub(crate) fn with_bound(mut self, listeners: &[BoundListener]) -> SiteSetup {
        let listens: Vec<Listen> = listeners
            .iter()
            .take(self.app_listeners)
            .map(|l| Listen {
                addr: match &l.info.addr {
                    ListenAddress::Tcp(a) => SiteAddr::Tcp(*a),
                    ListenAddress::Unix(p) => SiteAddr::Unix(p.clone()),
                },
                protocol: match l.info.wire {
                    Wire::Http => ListenProtocol::Http,
                    Wire::Uwsgi => ListenProtocol::Uwsgi,
                },
                default_server: true,
                backlog: None,
                reuseport: false,
            })
            .collect();
        if !listens.is_empty() {
            let mut site = (*self.site).clone();
            site.servers.push(Server::for_app(listens));
            self.site = Arc::new(site);
        }
        self
    }
}

/// The handler for this process.
pub(crate) fn front_handler(
    config: &Config,
    site: Option<&SiteSetup>,
    app: Option<WsgiHandler>,
) -> Arc<dyn Handler> {
    front(config, site, app).0
}

/// The handler for this process, and with `-c nginx.conf` the Site router
/// it is (kept to reopen its `access_log` files on `-s reopen`).
pub(crate) fn front(
    config: &Config,
    site: Option<&SiteSetup>,
    app: Option<WsgiHandler>,
) -> (Arc<dyn Handler>, Option<Arc<SiteHandler>>) {
    let has_app = app.is_some();
    let app = with_statics(config, app);
    let Some(setup) = site else {
        return (app, None);
    };
    let own_sockets: Vec<SiteAddr> = setup
        .site
        .servers
        .iter()
        .filter(|s| s.is_app_server())
        .flat_map(|s| s.listens.iter())
        .filter(|l| l.protocol == ListenProtocol::Uwsgi)
        .map(|l| l.addr.clone())
        .collect();
    let mut upstreams: UpstreamMap = Vec::new();
    for (target, location) in uwsgi_targets(&setup.site) {
        if upstreams.iter().any(|(t, _)| t == target) {
            continue;
        }
        let handler: Arc<dyn Handler> = if has_app && is_own_socket(target, &own_sockets) {
            portico_server::logln!("uwsgi_pass {} goes to the app in process", shown(target));
            app.clone()
        } else {
            match UwsgiUpstream::new(
                target.clone(),
                UwsgiSettings::from_location(&location.config),
            ) {
                Ok(upstream) => Arc::new(upstream),
                Err(e) => {
                    portico_server::logln!(
                        "uwsgi_pass {} ({}): {e}",
                        shown(target),
                        location.origin
                    );
                    Arc::new(NotFound)
                }
            }
        };
        upstreams.push((target.clone(), handler));
    }
    let router = Arc::new(
        SiteHandler::new(setup.site.clone(), setup.prefix.clone(), upstreams).with_app(app),
    );
    (router.clone(), Some(router))
}

/// Every `uwsgi_pass` target of the site, with the first location naming it.
fn uwsgi_targets(site: &Site) -> Vec<(&UpstreamTarget, &Location)> {
    fn walk<'a>(locations: &'a [Location], out: &mut Vec<(&'a UpstreamTarget, &'a Location)>) {
        for location in locations {
            if let Content::Uwsgi(target) = &location.content {
                out.push((target, location));
            }
            walk(&location.locations, out);
        }
    }
    let mut out = Vec::new();
    for server in &site.servers {
        walk(&server.locations, &mut out);
        walk(&server.named, &mut out);
    }
    out
}

/// Whether `uwsgi_pass` names one of this process's own uwsgi sockets.
fn is_own_socket(target: &UpstreamTarget, own: &[SiteAddr]) -> bool {
    match target {
        UpstreamTarget::Unix(path) => own
            .iter()
            .any(|a| matches!(a, SiteAddr::Unix(p) if p == path)),
        UpstreamTarget::Tcp { host, port } => {
            let Ok(resolved) = (host.as_str(), *port).to_socket_addrs() else {
                return false;
            };
            let resolved: Vec<_> = resolved.collect();
            own.iter().any(|a| match a {
                SiteAddr::Tcp(bound) => resolved.iter().any(|r| {
                    r.port() == bound.port()
                        && (r.ip() == bound.ip()
                            || (bound.ip().is_unspecified() && r.ip().is_loopback()))
                }),
                SiteAddr::Unix(_) => false,
            })
        }
        UpstreamTarget::Group(_) => false,
    }
}

fn shown(target: &UpstreamTarget) -> String {
    match target {
        UpstreamTarget::Tcp { host, port } => format!("{host}:{port}"),
        UpstreamTarget::Unix(path) => format!("unix:{}", path.display()),
        UpstreamTarget::Group(name) => name.clone(),
    }
}

/// The handler for this process: the apps, behind the static maps if any.
pub(crate) fn with_statics(config: &Config, app: Option<WsgiHandler>) -> Arc<dyn Handler> {
    let app: Arc<dyn Handler> = match app {
        Some(app) => Arc::new(app),
        None => Arc::new(NotFound),
    };
    let s = &config.statics;
    if s.maps.is_empty() && s.check_static.is_empty() {
        return app;
    }
    let mut maps: Vec<StaticMap> = s
        .maps
        .iter()
        .map(|(prefix, root, keep_prefix)| StaticMap {
            prefix: prefix.clone(),
            root: root.clone(),
            keep_prefix: *keep_prefix,
        })
        .collect();
    maps.extend(s.check_static.iter().map(|root| StaticMap {
        prefix: String::new(),
        root: root.clone(),
        keep_prefix: true,
    }));
    for map in &maps {
        portico_server::logln!(
            "static-map {} -> {}",
            if map.prefix.is_empty() {
                "/"
            } else {
                &map.prefix
            },
            map.root.display()
        );
    }
    Arc::new(WithStatic::new(
        StaticConfig {
            maps,
            index: s.index.clone(),
            expires_by_type: s.expires_by_type.clone(),
            skip_ext: s.skip_ext.clone(),
            safe: s.safe.clone(),
        },
        app,
    ))
}
