//! nginx.conf's meaning: the syntax tree ([`ConfTree`]) becomes a [`Site`].
//! The reader has checked syntax, contexts and argument counts; here the
//! values are read (sizes, times, addresses, regexes, templates), nginx's
//! semantic errors are raised with its wording, and inheritance from
//! `http` to `server` to `location` is applied so that every location
//! carries its full configuration.
//!
//! Two passes, as nginx has them: reading every block into its own layer
//! (log formats, upstreams and maps are defined in file order), then,
//! once the whole `http {}` is known, checking variables, resolving
//! `uwsgi_pass` names against upstream blocks, and merging the layers.

mod common;
mod compress;
mod health;
mod http;
mod http2;
mod inherit;
mod listen;
mod lists;
mod location;
mod proxy;
mod proxy_pass;
mod rewrite;
mod server;
mod ssl;
mod upstream;
mod values;
mod vars;

#[cfg(test)]
mod testparse;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_blocks;
#[cfg(test)]
mod tests_compress;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_http2;
#[cfg(test)]
mod tests_proxy;
#[cfg(test)]
mod tests_proxy_model;
#[cfg(test)]
mod tests_read;
#[cfg(test)]
mod tests_ssl;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::site::{
    Content, DEFAULT_WORKER_CONNECTIONS, HealthCheck, HealthMatch, Location, LocationConfig,
    LogFormatDef, MainSettings, ProxyTarget, RewriteStep, Server, Site, Template, Upstream, VarMap,
};

use super::ast::{ConfTree, Directive, NginxError};
use inherit::Layer;
use location::RawLocation;
use server::RawServer;
use values::{arg, atoi};
use vars::VarScope;

/// The directive lists, for docs and tools: accepted with no effect (by
/// name, and by name prefix), accepted only with nginx's default value,
/// and refused.
pub use lists::{
    DEFAULT_ONLY as DEFAULT_ONLY_DIRECTIVES, IGNORED as IGNORED_DIRECTIVES, IGNORED_PREFIXES,
    TLS as TLS_DIRECTIVES, UNSUPPORTED as UNSUPPORTED_DIRECTIVES,
};

/// What the conversion keeps while it reads.
struct Ctx<'p> {
    pub prefix: &'p Path,
    pub log_formats: Vec<LogFormatDef>,
    pub upstreams: Vec<Upstream>,
    pub maps: Vec<VarMap>,
    /// `match NAME {}` blocks (nginx Plus syntax), for `health_check match=`.
    pub matches: Vec<(Directive, HealthMatch)>,
    pub scope: VarScope,
    /// `[warn] MESSAGE in FILE:LINE` lines, as nginx prints them.
    pub warnings: Vec<String>,
    /// The `http {}` block's `ssl_*` directives.
    pub http_tls: ssl::TlsLayer,
}

impl Ctx<'_> {
    fn warn(&mut self, d: &Directive, message: &str) {
        self.warnings
            .push(format!("[warn] {message} in {}", d.origin()));
    }

    /// An error for a feature Portico does not have yet.
    fn unsupported(&self, d: &Directive, what: &str) -> NginxError {
        NginxError::at(d, format!("{what} is not supported by Portico yet"))
    }

    /// A path as nginx resolves it: relative ones against the prefix.
    fn full_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.prefix.join(p)
        }
    }

    fn unknown_or_unsupported(&self, d: &Directive, name: &str) -> NginxError {
        if lists::UNSUPPORTED.contains(&name) || super::is_known(name) {
            return NginxError::at(
                d,
                format!("\"{name}\" directive is not supported by Portico yet"),
            );
        }
        NginxError::at(d, format!("unknown directive \"{name}\""))
    }

    /// A directive no block-specific code took: ignored, accepted with its
    /// default value only, or refused.
    fn other(&self, d: &Directive, name: &str) -> Result<(), NginxError> {
        let refused_first = lists::UNSUPPORTED.contains(&name);
        if lists::IGNORED.contains(&name)
            || (!refused_first && lists::IGNORED_PREFIXES.iter().any(|p| name.starts_with(p)))
        {
            return Ok(());
        }
        if let Some((_, default)) = lists::DEFAULT_ONLY.iter().find(|(n, _)| *n == name) {
            let given: Vec<&str> = d.values().collect();
            if given.len() == 1 && given[0].eq_ignore_ascii_case(default) {
                return Ok(());
            }
            return Err(NginxError::at(
                d,
                format!(
                    "\"{name}\" is supported by Portico only with nginx's default value \"{default}\""
                ),
            ));
        }
        Err(self.unknown_or_unsupported(d, name))
    }
}

/// Convert a configuration tree into a [`Site`]; relative paths (`root
/// html`, `pid`, log files) resolve against `prefix`, as nginx's `-p`.
pub fn to_site(tree: &ConfTree, prefix: &Path) -> Result<Site, NginxError> {
    to_site_with_warnings(tree, prefix).map(|(site, _)| site)
}

/// [`to_site`], plus nginx's `[warn]` lines (`load balancing method
/// redefined`, `low address bits of ... are meaningless`, ...).
pub fn to_site_with_warnings(
    tree: &ConfTree,
    prefix: &Path,
) -> Result<(Site, Vec<String>), NginxError> {
    let mut ctx = Ctx {
        prefix,
        log_formats: vec![http::combined()],
        upstreams: Vec::new(),
        maps: Vec::new(),
        matches: Vec::new(),
        scope: VarScope::default(),
        warnings: Vec::new(),
        http_tls: ssl::TlsLayer::default(),
    };
    let mut main = MainSettings {
        worker_processes: Some(1),
        worker_connections: DEFAULT_WORKER_CONNECTIONS,
        ..MainSettings::default()
    };
    let mut http_layer = Layer::default();
    let mut raw_servers = Vec::new();
    let mut http_seen = false;
    // The `worker_connections` directive, for the check once the sockets are known.
    let mut connections_at = None;
    for d in &tree.main {
        match d.name.as_str() {
            "worker_processes" => {
                let v = arg(d, 0)?;
                main.worker_processes = if v == "auto" {
                    None
                } else {
                    let n = atoi(v).ok_or_else(|| values::invalid_value(d))?;
                    Some(n as usize)
                };
            }
            "events" => {
                for c in d.children.iter().flatten() {
                    if c.name == "worker_connections" {
                        let v = arg(c, 0)?;
                        main.worker_connections = atoi(v)
                            .ok_or_else(|| NginxError::at(c, format!("invalid number \"{v}\"")))?
                            as usize;
                        connections_at = Some(c);
                    } else {
                        ctx.other(c, &c.name)?;
                    }
                }
            }
            "error_log" => {
                if main.error_log.is_none() {
                    main.error_log = error_log(&ctx, d)?;
                }
            }
            "pid" => main.pid = Some(ctx.full_path(arg(d, 0)?)),
            "user" => {
                if !nix::unistd::geteuid().is_root() {
                    ctx.warn(
                        d,
                        "the \"user\" directive makes sense only if the master process runs with super-user privileges, ignored",
                    );
                }
                let group = d.args.get(1).map(|a| a.value.clone());
                main.user = Some((arg(d, 0)?.to_string(), group));
            }
            "http" => {
                if http_seen {
                    return Err(NginxError::at(d, "\"http\" directive is duplicate"));
                }
                http_seen = true;
                read_http(&mut ctx, d, &mut http_layer, &mut raw_servers)?;
            }
            name => ctx.other(d, name)?,
        }
    }
    check_variables(&mut ctx, &mut http_layer, &mut raw_servers)?;
    let http_config = http_layer.resolve(&inherit::base_config(prefix));
    let mut resolving = Resolving {
        upstreams: &ctx.upstreams,
        matches: &ctx.matches,
        health: Vec::new(),
        http_tls: &ctx.http_tls,
    };
    let servers = raw_servers
        .into_iter()
        .map(|s| resolve_server(&mut resolving, s, &http_config))
        .collect::<Result<Vec<_>, _>>()?;
    let health = resolving.health;
    for (group, check) in health {
        if let Some(u) = ctx.upstreams.iter_mut().find(|u| u.name == group) {
            u.health_checks.push(check);
        }
    }
    for u in &mut ctx.upstreams {
        if u.resolver.is_none() {
            u.resolver = http_config.proxy.resolver.clone();
        }
    }
    let site = Site {
        servers,
        upstreams: ctx.upstreams,
        maps: ctx.maps,
        log_formats: ctx.log_formats,
        main,
    };
    enough_connections(&site, connections_at)?;
    Ok((site, ctx.warnings))
}

/// nginx's check of `worker_connections` (`ngx_event_init_conf`): one
/// connection for every listening socket and one more, or the
/// configuration is refused (`0 worker_connections are not enough for 1
/// listening sockets`), at the directive when there is one.
fn enough_connections(site: &Site, at: Option<&Directive>) -> Result<(), NginxError> {
    let connections = site.main.worker_connections;
    let sockets = site.listening_sockets().len();
    if connections > sockets {
        return Ok(());
    }
    let message =
        format!("{connections} worker_connections are not enough for {sockets} listening sockets");
    Err(match at {
        Some(d) => NginxError::at(d, message),
        None => NginxError {
            message,
            file: None,
            line: None,
        },
    })
}

/// `error_log FILE [LEVEL]` in the main context (`stderr`: `None`).
fn error_log(ctx: &Ctx, d: &Directive) -> Result<Option<PathBuf>, NginxError> {
    const LEVELS: [&str; 8] = [
        "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg",
    ];
    if let Some(level) = d
        .args
        .get(1)
        .filter(|l| !LEVELS.contains(&l.value.as_str()))
    {
        return Err(NginxError::at(
            d,
            format!("invalid log level \"{}\"", level.value),
        ));
    }
    let path = arg(d, 0)?;
    if path.starts_with("syslog:") || path.starts_with("memory:") {
        return Err(ctx.unsupported(d, "error_log to syslog or memory"));
    }
    Ok(match path {
        "stderr" => None,
        _ => Some(ctx.full_path(path)),
    })
}

/// Read the `http {}` block's own directives and its servers.
fn read_http(
    ctx: &mut Ctx,
    d: &Directive,
    layer: &mut Layer,
    servers: &mut Vec<RawServer>,
) -> Result<(), NginxError> {
    let mut registry = listen::ListenRegistry::default();
    for c in d.children.iter().flatten() {
        if common::apply(ctx, layer, c, false)? {
            continue;
        }
        match c.name.as_str() {
            "server" => servers.push(server::server(ctx, &mut registry, c)?),
            "upstream" => {
                let up = upstream::upstream(ctx, c)?;
                ctx.upstreams.push(up);
            }
            name if name.starts_with("ssl_") && ssl::apply(ctx.prefix, &mut ctx.http_tls, c)? => {}
            "log_format" => http::log_format(ctx, c)?,
            "match" => {
                let m = health::match_block(c)?;
                if ctx.matches.iter().any(|(_, o)| o.name == m.name) {
                    return Err(NginxError::at(c, format!("duplicate match \"{}\"", m.name)));
                }
                ctx.matches.push((c.clone(), m));
            }
            "map" => {
                let m = http::map(ctx, c)?;
                ctx.maps.push(m);
            }
            name => ctx.other(c, name)?,
        }
    }
    Ok(())
}

/// The variable pass over everything read (nginx does it once the whole
/// configuration is known, so a `map` may come after its users).
fn check_variables(
    ctx: &mut Ctx,
    http_layer: &mut Layer,
    servers: &mut [RawServer],
) -> Result<(), NginxError> {
    for (i, m) in ctx.maps.iter().enumerate() {
        ctx.scope.maps.insert(m.target.to_ascii_lowercase(), i);
    }
    let scope = &ctx.scope;
    let mut fix = |t: &mut Template| scope.fix(t);
    http_layer.templates_mut(&mut fix)?;
    for s in servers.iter_mut() {
        s.layer.templates_mut(&mut fix)?;
        rewrites_mut(&mut s.rewrites, &mut fix)?;
        for l in s.locations.iter_mut().chain(s.named.iter_mut()) {
            location_templates(l, &mut fix)?;
        }
    }
    for f in &mut ctx.log_formats {
        scope.fix(&mut f.template)?;
    }
    for u in &ctx.upstreams {
        if let crate::site::Balancer::Hash { key, .. } = &u.balancer {
            // Checked only: the key stays text in `Balancer::Hash`.
            let mut t = Template::parse(key).unwrap_or_default();
            scope.fix(&mut t)?;
        }
    }
    for m in &mut ctx.maps {
        scope.fix(&mut m.source)?;
        scope.fix(&mut m.default)?;
        for (_, v) in &mut m.exact {
            scope.fix(v)?;
        }
        for (_, v) in &mut m.regexes {
            scope.fix(v)?;
        }
    }
    Ok(())
}

type Fix<'a> = dyn FnMut(&mut Template) -> Result<(), NginxError> + 'a;

fn rewrites_mut(steps: &mut [RewriteStep], fix: &mut Fix) -> Result<(), NginxError> {
    for step in steps {
        match step {
            RewriteStep::Rewrite { replacement, .. } => fix(replacement)?,
            RewriteStep::Return { body: Some(t), .. } => fix(t)?,
            RewriteStep::Return { body: None, .. } => {}
        }
    }
    Ok(())
}

fn location_templates(l: &mut RawLocation, fix: &mut Fix) -> Result<(), NginxError> {
    l.layer.templates_mut(fix)?;
    if let Some(t) = l.proxy_pass.as_mut().and_then(|p| p.template_mut()) {
        fix(t)?;
    }
    rewrites_mut(&mut l.rewrites, fix)?;
    for child in &mut l.locations {
        location_templates(child, fix)?;
    }
    Ok(())
}

/// What resolving the servers needs besides their layers, and what it
/// collects: `health_check`s by the group they check.
struct Resolving<'a> {
    upstreams: &'a [Upstream],
    matches: &'a [(Directive, HealthMatch)],
    health: Vec<(String, HealthCheck)>,
    http_tls: &'a ssl::TlsLayer,
}

/// A block's resolved configuration, checked and finished: nginx's buffer
/// checks, then the default proxy headers.
fn finish_config(mut config: LocationConfig, at: &Directive) -> Result<LocationConfig, NginxError> {
    proxy::check_buffers(&config.proxy, at)?;
    proxy::finish(Arc::make_mut(&mut config.proxy));
    Ok(config)
}

/// A directive standing for a block, for messages about the block.
fn block_at(file: &Path, line: usize, name: &str) -> Directive {
    Directive {
        name: name.to_string(),
        args: Vec::new(),
        file: Arc::new(file.to_path_buf()),
        line,
        children: None,
    }
}

/// Merge a server's layers over the `http` configuration.
fn resolve_server(
    r: &mut Resolving,
    s: RawServer,
    http: &LocationConfig,
) -> Result<Server, NginxError> {
    let config = s.layer.resolve(http);
    let locations = s
        .locations
        .into_iter()
        .map(|l| resolve_location(r, l, &config, None))
        .collect::<Result<Vec<_>, _>>()?;
    let named = s
        .named
        .into_iter()
        .map(|l| resolve_location(r, l, &config, None))
        .collect::<Result<Vec<_>, _>>()?;
    let config = finish_config(config, &s.at)?;
    let tls = ssl::resolve(&s.tls, r.http_tls, &s.at)?;
    if tls.is_none() && s.listens.iter().any(|l| l.ssl) {
        return Err(NginxError::at(
            &s.at,
            "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
        ));
    }
    let mut listens = s.listens;
    if config.http2.on {
        // `http2 on;`: as `listen ... http2` on every address of the server.
        for l in &mut listens {
            l.http2 = true;
        }
    }
    Ok(Server {
        listens,
        names: s.names,
        rewrites: s.rewrites,
        locations,
        named,
        config: Arc::new(config),
        origin: s.origin,
        tls: tls.map(Arc::new),
    })
}

/// The content of a location: its `proxy_pass` or `uwsgi_pass` (the later
/// one when both are there, as in nginx), else static files.
fn content(r: &Resolving, l: &RawLocation) -> Result<Content, NginxError> {
    let uwsgi = match &l.pass {
        Some((d, addr)) => Some(upstream::pass_target(r.upstreams, d, addr)?),
        None => None,
    };
    let proxy = match &l.proxy_pass {
        Some(raw) => Some(proxy_pass::resolve(r.upstreams, raw)?),
        None => None,
    };
    Ok(match (proxy, uwsgi) {
        (Some(p), None) => Content::Proxy(p),
        (Some(p), Some(_)) if l.proxy_last => Content::Proxy(p),
        (_, Some(u)) => Content::Uwsgi(u),
        (None, None) => Content::Static,
    })
}

/// Attach a location's `health_check`s to the group it proxies to.
fn health_checks(r: &mut Resolving, l: &RawLocation, content: &Content) -> Result<(), NginxError> {
    for (d, check, match_name) in &l.health_checks {
        let Content::Proxy(pass) = content else {
            return Err(NginxError::at(
                d,
                "\"health_check\" requires \"proxy_pass\" to an upstream group in the same location",
            ));
        };
        let ProxyTarget::Group(group) = &pass.target else {
            return Err(NginxError::at(
                d,
                "\"health_check\" requires \"proxy_pass\" to an upstream group in the same location",
            ));
        };
        let mut check = check.clone();
        if let Some(name) = match_name {
            let found = r.matches.iter().find(|(_, m)| m.name == *name);
            let Some((_, m)) = found else {
                return Err(NginxError::at(d, format!("match \"{name}\" not found")));
            };
            check.matcher = Some(m.clone());
        }
        r.health.push((group.clone(), check));
    }
    Ok(())
}

/// Merge a location's layer over its parent's configuration;
/// `parent_name` is the enclosing location's name, if any.
fn resolve_location(
    r: &mut Resolving,
    l: RawLocation,
    parent: &LocationConfig,
    parent_name: Option<&str>,
) -> Result<Location, NginxError> {
    let mut config = l.layer.resolve(parent);
    if l.layer.root.is_none() {
        inherit_alias(&mut config, &l, parent_name)?;
    }
    let content = content(r, &l)?;
    health_checks(r, &l, &content)?;
    let at = block_at(&l.file, l.line, "location");
    let locations = l
        .locations
        .into_iter()
        .map(|c| resolve_location(r, c, &config, Some(&l.name)))
        .collect::<Result<Vec<_>, _>>()?;
    let config = finish_config(config, &at)?;
    Ok(Location {
        matcher: l.matcher,
        rewrites: l.rewrites,
        locations,
        content,
        config: Arc::new(config),
        origin: l.origin,
    })
}

/// An `alias` inherited from the enclosing location replaces that
/// location's prefix, not this one's (nginx keeps the length of the name
/// where `alias` was written). For a nested prefix or exact location the
/// same mapping is this location's name replaced by the alias plus the
/// part of the name past the parent's: `location /a/ { alias /x/;
/// location /a/b/ {} }` serves `/a/b/c` from `/x/b/c` either way. A nested
/// regex location gets the equivalent `root` when the alias ends with the
/// parent's prefix (`alias /srv/static/` in `/static/` is `root /srv`);
/// otherwise it is refused rather than served from the wrong path.
fn inherit_alias(
    config: &mut LocationConfig,
    l: &RawLocation,
    parent_name: Option<&str>,
) -> Result<(), NginxError> {
    use crate::site::{DocRoot, LocationMatch, TemplatePart};
    let (Some(parent_name), DocRoot::Alias(t)) = (parent_name, &config.root) else {
        return Ok(());
    };
    if matches!(l.matcher, LocationMatch::Regex(_)) {
        let root = t
            .as_literal()
            .and_then(|a| a.strip_suffix(parent_name).map(str::to_string));
        return match root {
            Some(root) => {
                config.root = DocRoot::Root(Template::literal(&root));
                Ok(())
            }
            None => Err(NginxError {
                message: format!(
                    "the regex location \"{}\" inherits \"alias\" from location \"{parent_name}\", \
                     which Portico does not support yet (set \"root\" or \"alias\" in it)",
                    l.name
                ),
                file: Some(l.file.clone()),
                line: (l.line > 0).then_some(l.line),
            }),
        };
    }
    let Some(extra) = l.name.strip_prefix(parent_name).filter(|e| !e.is_empty()) else {
        return Ok(());
    };
    let mut t = t.clone();
    t.parts.push(TemplatePart::Literal(extra.to_string()));
    config.root = DocRoot::Alias(t);
    Ok(())
}
