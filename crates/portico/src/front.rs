//! The handler a serving process answers with: the option-style app (the
//! WSGI apps behind uWSGI's `--static-map` files), or, with `-c
//! nginx.conf`, the Site router in front of it. `uwsgi_pass` to one of this
//! process's own app sockets goes to the app in process: no socket, no
//! uwsgi encoding, the same environ the app would get through nginx.
//! `proxy_pass` locations get an [`HttpProxy`] each, over one balancer
//! group per `upstream {}` block (built here, in the worker, so peer state
//! is per worker as in nginx) or an implicit group for a literal address;
//! `uwsgi_pass` to an `upstream {}` block balances over the same group.
//! A block with `health_check` or `server ... resolve` also gets its
//! background tasks (checks, re-resolution) here, returned to be spawned by
//! `serve` before the first accept: checks start with the worker, not with
//! its first request, so a dead peer is out before requests reach it.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;

use portico_config::Config;
use portico_config::site::{
    Balancer, CompressSettings, Content, Listen, ListenAddr as SiteAddr, ListenProtocol, Location,
    ProxyTarget, Server, Site, Template, TemplatePart, UpstreamTarget,
};
use portico_proxy::background::check::HealthChecker;
use portico_proxy::background::reresolve::{Reresolver, system_lookup};
use portico_proxy::balance::resolve_target;
use portico_proxy::{
    ConnPool, DynamicProxy, GroupSlot, HttpProxy, UpstreamGroup, UwsgiSettings, UwsgiUpstream,
    upstream_pool,
};
use portico_server::compress::Compress;
use portico_server::{
    BackgroundTask, BoundListener, Handler, NotFound, ProxyMap, ProxyUpstream, SiteHandler,
    StaticConfig, StaticMap, UpstreamMap, UwsgiLocationMap, Wire, WithStatic, proxy_locations,
    uwsgi_locations,
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
    /// The option style's `--gzip`/`--brotli` settings, for the app's server.
    pub app_compress: Option<Arc<CompressSettings>>,
}

impl SiteSetup {
    /// Add the option-style app's server, listening where its sockets were
    /// actually bound (port 0 is known only now).
    pub(crate) fn with_bound(mut self, listeners: &[BoundListener]) -> SiteSetup {
        let listens: Vec<Listen> = listeners
            .iter()
            .take(self.app_listeners)
            .map(|l| Listen {
                addr: l.info.addr.clone(),
                protocol: match l.info.wire {
                    Wire::Http => ListenProtocol::Http,
                    Wire::Uwsgi => ListenProtocol::Uwsgi,
                },
                default_server: true,
                backlog: None,
                reuseport: false,
                ssl: false,
                http2: false,
            })
            .collect();
        if !listens.is_empty() {
            let mut site = (*self.site).clone();
            let mut server = Server::for_app(listens);
            if let Some(settings) = &self.app_compress {
                server.set_compress(settings.clone());
            }
            site.servers.push(server);
            self.site = Arc::new(site);
        }
        self
    }
}

/// What a serving process answers with, and runs beside.
pub(crate) struct Front {
    pub handler: Arc<dyn Handler>,
    /// With `-c nginx.conf`, the Site router the handler is (kept to
    /// reopen its `access_log` files on `-s reopen`).
    pub router: Option<Arc<SiteHandler>>,
    /// The upstream blocks' background tasks (checks, re-resolution).
    pub background: Vec<BackgroundTask>,
    /// Every `upstream {}` block's group in this process, by name (the
    /// stats publish their peers).
    pub groups: Vec<(String, Arc<GroupSlot>)>,
}

/// The handler for this process and the tasks to run beside it.
pub(crate) fn front_handler(
    config: &Config,
    site: Option<&SiteSetup>,
    app: Option<WsgiHandler>,
) -> (Arc<dyn Handler>, Vec<BackgroundTask>) {
    let f = front(config, site, app);
    (f.handler, f.background)
}

/// The handler for this process and what goes with it ([`Front`]).
pub(crate) fn front(config: &Config, site: Option<&SiteSetup>, app: Option<WsgiHandler>) -> Front {
    let has_app = app.is_some();
    let app = with_statics(config, app);
    // uWSGI's --http-auto-gzip marks answers in the app; --gzip/--brotli
    // cover every answer of the option style (with a site, its app server's
    // location does that instead: `SiteSetup::app_compress`).
    let app = with_compress(config, app, site.is_none());
    let Some(setup) = site else {
        return Front {
            handler: portico_server::test_hooks::wrap(app),
            router: None,
            background: Vec::new(),
            groups: Vec::new(),
        };
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
    let mut singles: Vec<(UpstreamTarget, Arc<UwsgiUpstream>)> = Vec::new();
    for (target, location) in uwsgi_targets(&setup.site) {
        if upstreams.iter().any(|(t, _)| t == target) {
            continue;
        }
        let handler: Arc<dyn Handler> = if has_app && is_own_socket(target, &own_sockets) {
            portico_server::logln!("uwsgi_pass {} goes to the app in process", shown(target));
            app.clone()
        } else if let UpstreamTarget::Group(_) = target {
            continue; // per location: uwsgi_group_locations
        } else {
            match UwsgiUpstream::new(
                target.clone(),
                UwsgiSettings::from_location(&location.config),
            ) {
                Ok(upstream) => {
                    let upstream = Arc::new(upstream);
                    singles.push((target.clone(), upstream.clone()));
                    upstream
                }
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
    // One group per `upstream {}` block and worker, shared by its
    // proxy_pass and uwsgi_pass locations (one peer state, as in nginx).
    let mut parts: Vec<GroupParts> = Vec::new();
    let mut background = Vec::new();
    let mut proxies = proxy_upstreams(&setup.site, &mut parts, &mut background);
    let by_location = uwsgi_group_locations(
        &setup.site,
        &mut parts,
        &mut background,
        &mut proxies,
        &singles,
    );
    let groups = parts.into_iter().map(|g| (g.name, g.slot)).collect();
    let router = Arc::new(
        SiteHandler::new(setup.site.clone(), setup.prefix.clone(), upstreams)
            .with_app(app)
            .with_proxies(proxies)
            .with_uwsgi_locations(by_location),
    );
    Front {
        handler: portico_server::test_hooks::wrap(router.clone()),
        router: Some(router),
        background,
        groups,
    }
}

/// One `upstream {}` block's shared parts in this worker: its balancer
/// group and, under an explicit `keepalive N`, its one keep-alive pool.
struct GroupParts {
    name: String,
    slot: Arc<GroupSlot>,
    shared_pool: Option<Arc<ConnPool>>,
}

/// The [`HttpProxy`] of every `proxy_pass` location: locations naming
/// the same `upstream {}` block share its group (and, with `keepalive N`,
/// its pool; without, each location keeps its own, as nginx 1.29.7's
/// implicit `keepalive 32 local`); a literal address gets an implicit
/// group of the addresses its name resolves to, without keep-alive. A URL
/// with variables is wired when its host is literal (`http://app/v$uri`):
/// the engine sends the URI it evaluates to; with variables in the host
/// a [`DynamicProxy`] picks a block, an address or a name to resolve per
/// request (over every block of the site). A location that cannot be
/// wired is logged and answers 502. The blocks' groups go to `groups`,
/// their background tasks ([`background_tasks`]) to `tasks`.
fn proxy_upstreams(
    site: &Site,
    groups: &mut Vec<GroupParts>,
    tasks: &mut Vec<BackgroundTask>,
) -> ProxyMap {
    let mut map = ProxyMap::new();
    for (id, location, pass) in proxy_locations(site) {
        let settings = location.config.proxy.clone();
        let target = match &pass.target {
            ProxyTarget::Group(name) => Ok(Via::Group(name.clone())),
            ProxyTarget::Peer(target) => Ok(Via::Peer(target.clone())),
            ProxyTarget::Dynamic(url) => dynamic_target(site, url).or(Ok(Via::PerRequest)),
        };
        let proxy = match target {
            Ok(Via::Group(name)) => group_proxy(site, &name, settings, groups, tasks)
                .map(|p| Arc::new(p) as Arc<dyn ProxyUpstream>),
            Ok(Via::Peer(target)) => resolve_target(&target)
                .map(|addrs| {
                    let group = UpstreamGroup::implicit(&shown(&target), addrs);
                    Arc::new(HttpProxy::new(Arc::new(group), settings, None))
                        as Arc<dyn ProxyUpstream>
                })
                .map_err(|e| e.to_string()),
            Ok(Via::PerRequest) => {
                let mut by_name = Vec::new();
                for up in &site.upstreams {
                    match group_proxy(site, &up.name, settings.clone(), groups, tasks) {
                        Ok(proxy) => by_name.push((up.name.clone(), proxy)),
                        Err(e) => portico_server::logln!("upstream \"{}\": {e}", up.name),
                    }
                }
                Ok(Arc::new(DynamicProxy::new(by_name, settings)) as Arc<dyn ProxyUpstream>)
            }
            Err(e) => Err(e),
        };
        match proxy {
            Ok(proxy) => map.push((id, proxy)),
            Err(e) => portico_server::logln!(
                "proxy_pass {} ({}): {e}; answering 502",
                pass.url,
                location.origin
            ),
        }
    }
    map
}

/// The client of every `uwsgi_pass` location naming an `upstream {}`
/// block: each location's own settings (`uwsgi_next_upstream*`, timeouts)
/// over the block's one group (built here if no `proxy_pass` location
/// built it). A location that cannot be wired is logged and answers 502.
fn uwsgi_group_locations(
    site: &Site,
    groups: &mut Vec<GroupParts>,
    tasks: &mut Vec<BackgroundTask>,
    proxies: &mut ProxyMap,
    singles: &[(UpstreamTarget, Arc<UwsgiUpstream>)],
) -> UwsgiLocationMap {
    let mut map = UwsgiLocationMap::new();
    for (id, location, target) in uwsgi_locations(site) {
        let UpstreamTarget::Group(name) = target else {
            // One address: the engine goes through the proxy seam too, so
            // `$upstream_*` are known (the in-process app is not in `singles`).
            if let Some((_, upstream)) = singles.iter().find(|(t, _)| t == target) {
                proxies.push((id, upstream.clone() as Arc<dyn ProxyUpstream>));
            }
            continue;
        };
        match group_parts(site, name, &location.config.proxy, groups, tasks) {
            Ok(parts) => {
                let settings = UwsgiSettings::from_location(&location.config);
                let mut upstream = UwsgiUpstream::in_slot(parts.slot.clone(), settings);
                let balancer = site.upstreams.iter().find(|u| &u.name == name);
                if let Some(Balancer::Hash { key, .. }) = balancer.map(|u| &u.balancer) {
                    match Template::parse(key) {
                        Ok(key) => upstream = upstream.with_hash_key(key),
                        Err(e) => portico_server::logln!("upstream \"{name}\" hash key: {e}"),
                    }
                }
                let upstream = Arc::new(upstream);
                proxies.push((id, upstream.clone() as Arc<dyn ProxyUpstream>));
                map.push((id, upstream as Arc<dyn Handler>));
            }
            Err(e) => portico_server::logln!(
                "uwsgi_pass {name} ({}): {e}; answering 502",
                location.origin
            ),
        }
    }
    map
}

/// Where a `proxy_pass` goes: an `upstream {}` block, an address, or (a
/// host with variables) whatever each request's URL names.
enum Via {
    Group(String),
    Peer(UpstreamTarget),
    PerRequest,
}

/// The group or address of a `proxy_pass` URL with variables whose
/// `http://host[:port]` is literal: an upstream block of that host name
/// (nginx looks the host up among them first), else the address.
fn dynamic_target(site: &Site, url: &Template) -> Result<Via, String> {
    let unsupported = || "the host has variables".to_string();
    let Some(TemplatePart::Literal(text)) = url.parts.first() else {
        return Err(unsupported());
    };
    let rest = text
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &text[7..])
        .ok_or_else(unsupported)?;
    let authority = match rest.find('/') {
        Some(slash) => &rest[..slash],
        None if url.parts.len() == 1 => rest,
        None => return Err(unsupported()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("invalid port in \"{authority}\""))?;
            (host, port)
        }
        _ => (authority, 80),
    };
    if let Some(up) = site
        .upstreams
        .iter()
        .find(|u| u.name.eq_ignore_ascii_case(host))
    {
        return Ok(Via::Group(up.name.clone()));
    }
    Ok(Via::Peer(UpstreamTarget::Tcp {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    }))
}

/// The proxy of a location through the `upstream {}` block `name`: its
/// group built once per worker and shared.
fn group_proxy(
    site: &Site,
    name: &str,
    settings: Arc<portico_config::site::ProxySettings>,
    groups: &mut Vec<GroupParts>,
    tasks: &mut Vec<BackgroundTask>,
) -> Result<HttpProxy, String> {
    let Some(up) = site.upstreams.iter().find(|u| u.name == name) else {
        return Err(format!("no upstream \"{name}\""));
    };
    let parts = group_parts(site, name, &settings, groups, tasks)?;
    let pool = match up.keepalive {
        Some(_) => parts.shared_pool.clone(),
        None => upstream_pool(up),
    };
    let proxy = HttpProxy::in_slot(parts.slot.clone(), settings, pool);
    Ok(match &up.balancer {
        Balancer::Hash { key, .. } => match Template::parse(key) {
            Ok(key) => proxy.with_hash_key(key),
            Err(e) => {
                portico_server::logln!("upstream \"{name}\" hash key: {e}");
                proxy
            }
        },
        _ => proxy,
    })
}

/// The shared parts of the `upstream {}` block `name`, built (with its
/// background tasks, the timeouts of `settings`) on first use.
fn group_parts<'a>(
    site: &Site,
    name: &str,
    settings: &portico_config::site::ProxySettings,
    groups: &'a mut Vec<GroupParts>,
    tasks: &mut Vec<BackgroundTask>,
) -> Result<&'a GroupParts, String> {
    let Some(up) = site.upstreams.iter().find(|u| u.name == name) else {
        return Err(format!("no upstream \"{name}\""));
    };
    let at = match groups.iter().position(|g| g.name == name) {
        Some(at) => at,
        None => {
            let group = UpstreamGroup::resolve(up)
                .map_err(|e| format!("upstream \"{name}\" ({}): {e}", up.origin))?;
            let slot = Arc::new(GroupSlot::new(Arc::new(group)));
            tasks.extend(background_tasks(up, &slot, settings));
            groups.push(GroupParts {
                name: name.to_string(),
                slot,
                shared_pool: up.keepalive.and_then(|_| upstream_pool(up)),
            });
            groups.len() - 1
        }
    };
    groups
        .get(at)
        .ok_or_else(|| format!("upstream \"{name}\" was not built"))
}

/// The background tasks of the block `up` in this worker: its health
/// checks (the first `health_check` of the locations proxying to it, with
/// the timeouts of the first such location: one set of per-peer counters
/// per block) and the re-resolution of its `server ... resolve` names.
fn background_tasks(
    up: &portico_config::site::Upstream,
    slot: &Arc<GroupSlot>,
    settings: &portico_config::site::ProxySettings,
) -> Vec<BackgroundTask> {
    let mut tasks: Vec<BackgroundTask> = Vec::new();
    if let Some(check) = up.health_checks.first() {
        if up.health_checks.iter().any(|c| c != check) {
            portico_server::logln!(
                "upstream \"{}\": several different health_check directives, the one in {} is used",
                up.name,
                check.origin
            );
        }
        let checker = HealthChecker::new(
            slot.clone(),
            &up.name,
            check.clone(),
            settings.connect_timeout,
            settings.read_timeout,
        );
        tasks.push(Arc::new(move || Box::pin(checker.clone().run())));
    }
    let up = Arc::new(up.clone());
    if let Some(r) = Reresolver::new(slot.clone(), up, system_lookup()) {
        let r = Arc::new(r);
        tasks.push(Arc::new(move || Box::pin(r.clone().run())));
    }
    tasks
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

/// Log each static mapping (`static-map /URL -> DIR`), once, in the process
/// that starts the workers (each worker builds its own handler silently).
pub(crate) fn log_static_maps(config: &Config) {
    let s = &config.statics;
    let maps = s
        .maps
        .iter()
        .map(|(prefix, root, _)| (prefix.as_str(), root));
    let checks = s.check_static.iter().map(|root| ("", root));
    for (prefix, root) in maps.chain(checks) {
        let prefix = if prefix.is_empty() { "/" } else { prefix };
        portico_server::logln!("static-map {prefix} -> {}", root.display());
    }
}

/// `handler` behind the compression filters the options ask for: all of
/// them when `whole` (the option style alone), else only
/// `--http-auto-gzip`.
fn with_compress(config: &Config, handler: Arc<dyn Handler>, whole: bool) -> Arc<dyn Handler> {
    let options = &config.compress;
    let settings = options.settings().filter(|_| whole);
    if settings.is_none() && !options.auto_gzip {
        return handler;
    }
    Arc::new(Compress::new(
        handler,
        Arc::new(settings.unwrap_or_default()),
        options.auto_gzip,
    ))
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
