//! What upstream groups need beyond their `server` lines: `resolver` (for
//! `server ... resolve` and URLs with variables, checked as nginx 1.22
//! checks it), and nginx Plus's active health checks, which Portico
//! takes as its extension: `health_check [interval= fails= passes= uri=
//! match=]` in a location that proxies to a group, and `match NAME {
//! status ...; }` blocks in `http {}`. Only the model is built here.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::site::{HealthCheck, HealthMatch, Resolver, StatusCondition};

use super::super::ast::{Directive, NginxError};
use super::values::{atoi, parse_time};

/// nginx's default `resolver_timeout` (30s).
pub(super) const DEFAULT_RESOLVER_TIMEOUT: Duration = Duration::from_secs(30);

/// `resolver ADDRESS ... [valid=TIME] [ipv6=on|off]` (`ngx_resolver_create`).
pub(super) fn resolver(d: &Directive) -> Result<Resolver, NginxError> {
    let mut r = Resolver {
        servers: Vec::new(),
        valid: None,
        ipv4: true,
        ipv6: true,
        timeout: DEFAULT_RESOLVER_TIMEOUT,
    };
    for v in d.values() {
        let bad = || NginxError::at(d, format!("invalid parameter: {v}"));
        if let Some(t) = v.strip_prefix("valid=") {
            r.valid = Some(parse_time(t, true).ok_or_else(bad)?);
            continue;
        }
        if let Some(flag) = v.strip_prefix("ipv6=") {
            r.ipv6 = match flag {
                "on" => true,
                "off" => false,
                _ => return Err(bad()),
            };
            continue;
        }
        if v.starts_with("unix:") {
            return Err(NginxError::at(
                d,
                format!("a resolver on a unix socket (\"{v}\") is not supported by Portico"),
            ));
        }
        r.servers.extend(resolver_addrs(d, v)?);
    }
    Ok(r)
}

/// The addresses of one resolver `host[:port]` (port 53 by default).
fn resolver_addrs(d: &Directive, text: &str) -> Result<Vec<SocketAddr>, NginxError> {
    let (host, port) =
        if let Some((h, after)) = text.strip_prefix('[').and_then(|r| r.split_once(']')) {
            (h, after.strip_prefix(':'))
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                _ => (text, None),
            }
        };
    let port = match port {
        None => 53,
        Some(p) => match atoi(p) {
            Some(n) if (1..=65535).contains(&n) => n as u16,
            _ => {
                return Err(NginxError::at(
                    d,
                    format!("invalid port in resolver \"{text}\""),
                ));
            }
        },
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map(|it| it.collect())
        .unwrap_or_default();
    if found.is_empty() {
        return Err(NginxError::at(
            d,
            format!("host not found in resolver \"{text}\""),
        ));
    }
    Ok(found)
}

/// `health_check [interval=T] [fails=N] [passes=N] [uri=URI] [match=NAME]`:
/// the check, and the name of its `match` block (resolved later).
pub(super) fn health_check(d: &Directive) -> Result<(HealthCheck, Option<String>), NginxError> {
    let mut hc = HealthCheck {
        interval: Duration::from_secs(5),
        fails: 1,
        passes: 1,
        uri: "/".to_string(),
        matcher: None,
        origin: d.origin(),
    };
    let mut match_name = None;
    for v in d.values() {
        let invalid = || NginxError::at(d, format!("invalid parameter \"{v}\""));
        let count = |n: &str| {
            atoi(n)
                .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(invalid)
        };
        match v.split_once('=') {
            Some(("interval", t)) => {
                hc.interval = parse_time(t, false)
                    .filter(|t| !t.is_zero())
                    .ok_or_else(invalid)?;
            }
            Some(("fails", n)) => hc.fails = count(n)?,
            Some(("passes", n)) => hc.passes = count(n)?,
            Some(("uri", u)) if !u.is_empty() => hc.uri = u.to_string(),
            Some(("match", m)) if !m.is_empty() => match_name = Some(m.to_string()),
            Some(("jitter" | "port" | "type" | "keepalive_time", _)) => {
                return Err(unsupported_param(d, v));
            }
            None if v == "mandatory" || v == "persistent" => {
                return Err(unsupported_param(d, v));
            }
            _ => return Err(invalid()),
        }
    }
    Ok((hc, match_name))
}

fn unsupported_param(d: &Directive, v: &str) -> NginxError {
    NginxError::at(
        d,
        format!("\"health_check\" parameter \"{v}\" is not supported by Portico yet"),
    )
}

/// `match NAME { status [!] CODE|LOW-HIGH ...; }` (nginx Plus syntax; only
/// `status` conditions in Portico).
pub(super) fn match_block(d: &Directive) -> Result<HealthMatch, NginxError> {
    let name = d.args.first().map(|a| a.value.clone()).unwrap_or_default();
    let mut m = HealthMatch {
        name,
        conditions: Vec::new(),
    };
    for c in d.children.iter().flatten() {
        if c.name != "status" {
            return Err(NginxError::at(
                c,
                format!(
                    "\"{}\" in \"match\" is not supported by Portico yet (only \"status\")",
                    c.name
                ),
            ));
        }
        let mut values: Vec<&str> = c.values().collect();
        let negate = values.first() == Some(&"!");
        if negate {
            values.remove(0);
        }
        if values.is_empty() {
            return Err(NginxError::at(
                c,
                "invalid number of arguments in \"status\" directive",
            ));
        }
        let mut ranges = Vec::new();
        for v in values {
            let code = |s: &str| {
                atoi(s)
                    .filter(|n| s.len() == 3 && (100..=599).contains(n))
                    .map(|n| n as u16)
            };
            let range = match v.split_once('-') {
                Some((lo, hi)) => code(lo).zip(code(hi)).filter(|(lo, hi)| lo <= hi),
                None => code(v).map(|c| (c, c)),
            };
            ranges.push(range.ok_or_else(|| NginxError::at(c, format!("invalid status \"{v}\"")))?);
        }
        m.conditions.push(StatusCondition { negate, ranges });
    }
    Ok(m)
}
