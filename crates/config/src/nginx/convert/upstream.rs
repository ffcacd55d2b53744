//! `upstream NAME {}` blocks (servers with their parameters, the balancing
//! method, `keepalive` and its timeouts, `zone`, `resolver`) and the address
//! of `uwsgi_pass`, with nginx's checks: which parameters a balancing method
//! allows, ports, names resolved at load time (unless `resolve`).

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::site::{Balancer, Upstream, UpstreamServer, UpstreamTarget};

use super::common::once;

use super::super::ast::{Directive, NginxError};
use super::Ctx;
use super::values::{arg, atoi, msec, number, parse_size, parse_time};

/// nginx's default `fail_timeout` (10s).
const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// `host[:port]` or `unix:/path` of an upstream server (default port 80);
/// a name is resolved now unless `resolve` says at run time.
fn server_target(d: &Directive, text: &str, resolve: bool) -> Result<UpstreamTarget, NginxError> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(no_unix_path(d, text));
        }
        return Ok(UpstreamTarget::Unix(PathBuf::from(path)));
    }
    let (host, port) = split_host_port(text);
    let port = match port {
        None => 80,
        Some(p) => match atoi(p) {
            Some(n) if (1..=65535).contains(&n) => n as u16,
            _ => {
                return Err(NginxError::at(
                    d,
                    format!("invalid port in upstream \"{text}\""),
                ));
            }
        },
    };
    if resolve {
        return Ok(UpstreamTarget::Tcp { host, port });
    }
    resolve_check(&host, port)
        .ok_or_else(|| NginxError::at(d, format!("host not found in upstream \"{text}\"")))?;
    Ok(UpstreamTarget::Tcp { host, port })
}

fn no_unix_path(d: &Directive, text: &str) -> NginxError {
    NginxError::at(
        d,
        format!("no path in the unix domain socket in upstream \"{text}\""),
    )
}

/// Split `host:port`, `[v6]:port`, `[v6]`, `host` (brackets removed).
fn split_host_port(text: &str) -> (String, Option<&str>) {
    if let Some((h, after)) = text.strip_prefix('[').and_then(|r| r.split_once(']')) {
        return (h.to_string(), after.strip_prefix(':'));
    }
    match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
        _ => (text.to_string(), None),
    }
}

/// Whether `host` is an address or a name that resolves now.
pub(super) fn resolve_check(host: &str, port: u16) -> Option<()> {
    if host.parse::<IpAddr>().is_ok() {
        return Some(());
    }
    (host, port).to_socket_addrs().ok()?.next().map(|_| ())
}

/// Whether the balancing method allows `backup` servers.
fn allows_backup(b: &Balancer) -> bool {
    matches!(b, Balancer::RoundRobin | Balancer::LeastConn)
}

/// One `upstream NAME { ... }` block.
pub(super) fn upstream(ctx: &mut Ctx, d: &Directive) -> Result<Upstream, NginxError> {
    let name = arg(d, 0)?.to_string();
    if ctx
        .upstreams
        .iter()
        .any(|u| u.name.eq_ignore_ascii_case(&name))
    {
        return Err(NginxError::at(d, format!("duplicate upstream \"{name}\"")));
    }
    let mut up = Upstream {
        name,
        origin: d.origin(),
        ..Upstream::default()
    };
    let mut method_set = false;
    let (mut ka_timeout, mut ka_requests, mut ka_time) = (None, None, None);
    let (mut resolver, mut resolver_timeout) = (None, None);
    for c in d.children.iter().flatten() {
        let balancer = match c.name.as_str() {
            "server" => {
                up.servers.push(server(c, &up.balancer)?);
                continue;
            }
            "keepalive" => {
                let v = arg(c, 0)?;
                // `keepalive 0` turns the cache off (nginx 1.29.7+; 1.22
                // refuses it): the way back to nginx 1.22's behaviour.
                match atoi(v) {
                    Some(n) => up.keepalive = Some(n as usize),
                    _ => {
                        return Err(NginxError::at(
                            c,
                            format!("invalid value \"{v}\" in \"keepalive\" directive"),
                        ));
                    }
                }
                continue;
            }
            "keepalive_timeout" => {
                once(&mut ka_timeout, c, msec(c)?)?;
                continue;
            }
            "keepalive_time" => {
                once(&mut ka_time, c, msec(c)?)?;
                continue;
            }
            "keepalive_requests" => {
                once(&mut ka_requests, c, number(c)?)?;
                continue;
            }
            "zone" => {
                if up.zone.is_some() {
                    return Err(NginxError::at(c, "\"zone\" directive is duplicate"));
                }
                up.zone = Some(zone(c)?);
                continue;
            }
            "resolver" => {
                once(&mut resolver, c, super::health::resolver(c)?)?;
                continue;
            }
            "resolver_timeout" => {
                once(&mut resolver_timeout, c, msec(c)?)?;
                continue;
            }
            "ip_hash" => Balancer::IpHash,
            "least_conn" => Balancer::LeastConn,
            "hash" => {
                let key = arg(c, 0)?.to_string();
                let consistent = match c.args.get(1).map(|a| a.value.as_str()) {
                    None => false,
                    Some("consistent") => true,
                    Some(other) => {
                        return Err(NginxError::at(c, format!("invalid parameter \"{other}\"")));
                    }
                };
                super::vars::template(c, &key)?;
                Balancer::Hash { key, consistent }
            }
            "random" => {
                let mut two = false;
                let mut least_conn = false;
                for (i, a) in c.args.iter().enumerate() {
                    match (i, a.value.as_str()) {
                        (0, "two") => two = true,
                        (1, "least_conn") if two => least_conn = true,
                        (_, other) => {
                            return Err(NginxError::at(
                                c,
                                format!("invalid parameter \"{other}\""),
                            ));
                        }
                    }
                }
                Balancer::Random { two, least_conn }
            }
            other => return Err(ctx.unknown_or_unsupported(c, other)),
        };
        if method_set {
            ctx.warn(c, "load balancing method redefined");
        }
        method_set = true;
        up.balancer = balancer;
    }
    if up.servers.is_empty() {
        return Err(NginxError::at(d, "no servers are inside upstream"));
    }
    up.keepalive_timeout = ka_timeout.unwrap_or(up.keepalive_timeout);
    up.keepalive_requests = ka_requests.unwrap_or(up.keepalive_requests);
    up.keepalive_time = ka_time.unwrap_or(up.keepalive_time);
    up.resolver = resolver.map(|mut r: crate::site::Resolver| {
        r.timeout = resolver_timeout.unwrap_or(r.timeout);
        r
    });
    Ok(up)
}

/// `zone NAME [SIZE]` (`ngx_http_upstream_zone`): the name, its size checked.
fn zone(d: &Directive) -> Result<String, NginxError> {
    let name = arg(d, 0)?.to_string();
    if let Some(size) = d.args.get(1).map(|a| a.value.as_str()) {
        let n = parse_size(size)
            .ok_or_else(|| NginxError::at(d, format!("invalid zone size \"{size}\"")))?;
        if n < 8 * 4096 {
            return Err(NginxError::at(d, format!("zone \"{name}\" is too small")));
        }
    }
    Ok(name)
}

/// `server ADDRESS [weight= max_fails= fail_timeout= max_conns= backup down]`.
fn server(d: &Directive, balancer: &Balancer) -> Result<UpstreamServer, NginxError> {
    let name = arg(d, 0)?;
    let resolve = d.args.iter().skip(1).any(|a| a.value == "resolve");
    let target = server_target(d, name, resolve)?;
    let mut s = UpstreamServer {
        target,
        name: name.to_string(),
        weight: 1,
        max_fails: 1,
        fail_timeout: DEFAULT_FAIL_TIMEOUT,
        max_conns: 0,
        backup: false,
        down: false,
        resolve,
    };
    for a in d.args.iter().skip(1) {
        let p = a.value.as_str();
        let invalid = || NginxError::at(d, format!("invalid parameter \"{p}\""));
        let num = |v: &str| {
            atoi(v)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(invalid)
        };
        match p.split_once('=') {
            Some(("weight", v)) => {
                s.weight = num(v)?;
                if s.weight == 0 {
                    return Err(invalid());
                }
            }
            Some(("max_fails", v)) => s.max_fails = num(v)?,
            Some(("max_conns", v)) => s.max_conns = num(v)?,
            Some(("fail_timeout", v)) => {
                s.fail_timeout = parse_time(v, true).ok_or_else(invalid)?;
            }
            None if p == "backup" => {
                if !allows_backup(balancer) {
                    return Err(NginxError::at(
                        d,
                        "balancing method does not support parameter \"backup\"",
                    ));
                }
                s.backup = true;
            }
            None if p == "down" => s.down = true,
            None if p == "resolve" => {}
            _ => return Err(invalid()),
        }
    }
    Ok(s)
}

/// What `uwsgi_pass ADDRESS` names, before upstream blocks are known:
/// a unix path, or a host with an optional port.
#[derive(Debug, Clone)]
pub(super) enum PassAddr {
    Unix(PathBuf),
    Host { host: String, port: Option<u16> },
}

/// Read the argument of `uwsgi_pass`.
pub(super) fn pass_addr(ctx: &Ctx, d: &Directive) -> Result<PassAddr, NginxError> {
    let raw = arg(d, 0)?;
    if raw.contains('$') {
        return Err(ctx.unsupported(d, "uwsgi_pass with variables"));
    }
    if raw.starts_with("suwsgi://") {
        return Err(ctx.unsupported(d, "uwsgi_pass over TLS (suwsgi://)"));
    }
    let text = raw.strip_prefix("uwsgi://").unwrap_or(raw);
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(no_unix_path(d, text));
        }
        return Ok(PassAddr::Unix(PathBuf::from(path)));
    }
    let (host, port) = split_host_port(text);
    let port = match port {
        None => None,
        Some(p) => match atoi(p) {
            Some(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => {
                return Err(NginxError::at(
                    d,
                    format!("invalid port in upstream \"{text}\""),
                ));
            }
        },
    };
    Ok(PassAddr::Host { host, port })
}

/// Resolve a `uwsgi_pass` address once every upstream block is known.
pub(super) fn pass_target(
    upstreams: &[Upstream],
    d: &Directive,
    addr: &PassAddr,
) -> Result<UpstreamTarget, NginxError> {
    match addr {
        PassAddr::Unix(p) => Ok(UpstreamTarget::Unix(p.clone())),
        PassAddr::Host { host, port } => {
            if port.is_none() {
                if let Some(u) = upstreams.iter().find(|u| u.name.eq_ignore_ascii_case(host)) {
                    return Ok(UpstreamTarget::Group(u.name.clone()));
                }
                return Err(NginxError::at(d, format!("no port in upstream \"{host}\"")));
            }
            // With a port, the name is a host, never an upstream block.
            let port = port.unwrap_or(80);
            resolve_check(host, port).ok_or_else(|| {
                NginxError::at(d, format!("host not found in upstream \"{host}\""))
            })?;
            Ok(UpstreamTarget::Tcp {
                host: host.clone(),
                port,
            })
        }
    }
}
