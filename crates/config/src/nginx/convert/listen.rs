//! `listen`: the address forms nginx takes (`80`, `127.0.0.1:8080`,
//! `*:80`, `[::]:80`, `unix:/path`, a host name resolved at load time) and
//! its options; and the checks nginx makes across servers (one
//! `default_server` per address, socket options given once per address).
//! `ssl` makes the address a TLS one (the certificates are the servers'
//! `ssl_*` settings); `http2` makes it speak HTTP/2 (by ALPN with `ssl`,
//! else by prior knowledge beside HTTP/1.1); QUIC and the PROXY protocol
//! are refused with a clear message rather than silently served as plain
//! HTTP/1.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::site::{Listen, ListenAddr, ListenProtocol};

use super::super::ast::{Directive, NginxError};
use super::values::{arg, atoi};

/// One listen directive, resolved.
#[derive(Debug, Clone)]
pub(super) struct ParsedListen {
    pub listens: Vec<Listen>,
    /// An option nginx applies to the socket itself (`backlog=`,
    /// `reuseport`, `bind`, ...): only one server may give them per address.
    pub socket_options: bool,
}

/// nginx's way of printing a listen address (`0.0.0.0:80`, `[::]:80`).
pub(super) fn addr_text(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::Tcp(sa) => sa.to_string(),
        ListenAddr::Unix(p) => format!("unix:{}", p.display()),
    }
}

/// The listen nginx gives a server without one: `*:80` as root, else `*:8000`.
pub(super) fn default_listen() -> Listen {
    let root = nix::unistd::geteuid().is_root();
    Listen {
        addr: ListenAddr::Tcp(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            if root { 80 } else { 8000 },
        )),
        protocol: ListenProtocol::Http,
        default_server: false,
        backlog: None,
        reuseport: false,
        ssl: false,
        http2: false,
    }
}

fn parse_port(text: &str) -> Option<u16> {
    match atoi(text) {
        Some(p) if (1..=65535).contains(&p) => Some(p as u16),
        _ => None,
    }
}

/// The addresses of a listen argument.
fn parse_addr(d: &Directive, text: &str) -> Result<Vec<ListenAddr>, NginxError> {
    let invalid_port = || {
        NginxError::at(
            d,
            format!("invalid port in \"{text}\" of the \"listen\" directive"),
        )
    };
    let not_found = || {
        NginxError::at(
            d,
            format!("host not found in \"{text}\" of the \"listen\" directive"),
        )
    };
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(NginxError::at(
                d,
                format!(
                    "no path in the unix domain socket in \"{text}\" of the \"listen\" directive"
                ),
            ));
        }
        return Ok(vec![ListenAddr::Unix(PathBuf::from(path))]);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(NginxError::at(
                d,
                format!("invalid host in \"{text}\" of the \"listen\" directive"),
            ));
        };
        let ip: Ipv6Addr = host.parse().map_err(|_| {
            NginxError::at(
                d,
                format!("invalid host in \"{text}\" of the \"listen\" directive"),
            )
        })?;
        let port = match after {
            "" => 80,
            _ => match after.strip_prefix(':') {
                Some(p) => parse_port(p).ok_or_else(invalid_port)?,
                None => return Err(invalid_port()),
            },
        };
        return Ok(vec![ListenAddr::Tcp(SocketAddr::new(IpAddr::V6(ip), port))]);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let port = parse_port(text).ok_or_else(invalid_port)?;
        return Ok(vec![ListenAddr::Tcp(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        ))]);
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, parse_port(p).ok_or_else(invalid_port)?),
        None => (text, 80),
    };
    if host == "*" || host.is_empty() {
        return Ok(vec![ListenAddr::Tcp(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        ))]);
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(vec![ListenAddr::Tcp(SocketAddr::new(IpAddr::V4(ip), port))]);
    }
    // A host name: resolved once, now, as nginx does.
    let mut out: Vec<ListenAddr> = Vec::new();
    for sa in (host, port).to_socket_addrs().map_err(|_| not_found())? {
        let a = ListenAddr::Tcp(sa);
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(not_found());
    }
    Ok(out)
}

/// One `listen ADDRESS [options]` directive (`ngx_http_core_listen`, as
/// built for Linux). `warn` receives nginx's `[warn]` messages.
pub(super) fn parse(
    d: &Directive,
    warn: &mut dyn FnMut(&Directive, &str),
) -> Result<ParsedListen, NginxError> {
    let addrs = parse_addr(d, arg(d, 0)?)?;
    let mut default_server = false;
    let mut backlog = None;
    let mut reuseport = false;
    let mut socket_options = false;
    let mut http2 = false;
    let mut ssl = false;
    for a in d.args.iter().skip(1) {
        let p = a.value.as_str();
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        match (key, value) {
            ("default_server" | "default", None) => default_server = true,
            ("backlog", Some(v)) => {
                let n = atoi(v)
                    .and_then(|n| i32::try_from(n).ok())
                    .filter(|n| *n != 0)
                    .ok_or_else(|| NginxError::at(d, format!("invalid backlog \"{p}\"")))?;
                backlog = Some(n);
                socket_options = true;
            }
            ("fastopen", Some(v)) => {
                atoi(v).ok_or_else(|| NginxError::at(d, format!("invalid fastopen \"{p}\"")))?;
                socket_options = true;
            }
            ("rcvbuf" | "sndbuf", Some(v)) => {
                super::values::parse_size(v)
                    .ok_or_else(|| NginxError::at(d, format!("invalid {key} \"{p}\"")))?;
                socket_options = true;
            }
            ("ipv6only", Some(v)) if v.starts_with('o') => {
                if v != "on" && v != "off" {
                    return Err(NginxError::at(d, format!("invalid ipv6only flags \"{v}\"")));
                }
                socket_options = true;
            }
            ("accept_filter", Some(_)) => {
                warn(
                    d,
                    &format!("accept filters \"{p}\" are not supported on this platform, ignored"),
                );
            }
            ("reuseport", None) => {
                reuseport = true;
                socket_options = true;
            }
            ("ssl", None) => ssl = true,
            ("quic", None) => {
                return Err(NginxError::at(
                    d,
                    "\"listen ... quic\" is not supported by Portico yet (HTTP/3)",
                ));
            }
            ("http2", None) => http2 = true,
            ("proxy_protocol", None) => {
                return Err(NginxError::at(
                    d,
                    "\"listen ... proxy_protocol\" is not supported by Portico yet",
                ));
            }
            // Socket tuning Portico does not apply; harmless to accept.
            ("bind" | "deferred", None) | ("so_keepalive", Some(_)) => socket_options = true,
            _ => return Err(NginxError::at(d, format!("invalid parameter \"{p}\""))),
        }
    }
    let listens = addrs
        .into_iter()
        .map(|addr| Listen {
            addr,
            protocol: ListenProtocol::Http,
            default_server,
            backlog,
            reuseport,
            ssl,
            http2,
        })
        .collect();
    Ok(ParsedListen {
        listens,
        socket_options,
    })
}

/// What nginx remembers per address while it reads the servers.
#[derive(Debug, Default)]
pub(super) struct ListenRegistry {
    /// address → (has a default server, has socket options)
    seen: HashMap<String, (bool, bool)>,
}

impl ListenRegistry {
    /// Record the listens of one server, with nginx's cross-server checks.
    /// `own` holds the addresses this server already listed.
    pub(super) fn add(
        &mut self,
        d: &Directive,
        parsed: &ParsedListen,
        own: &[Listen],
    ) -> Result<(), NginxError> {
        for l in &parsed.listens {
            let key = addr_text(&l.addr);
            if own.iter().any(|o| o.addr == l.addr) {
                return Err(NginxError::at(d, format!("a duplicate listen {key}")));
            }
            let entry = self.seen.entry(key.clone()).or_default();
            if l.default_server {
                if entry.0 {
                    return Err(NginxError::at(
                        d,
                        format!("a duplicate default server for {key}"),
                    ));
                }
                entry.0 = true;
            }
            if parsed.socket_options {
                if entry.1 {
                    return Err(NginxError::at(
                        d,
                        format!("duplicate listen options for {key}"),
                    ));
                }
                entry.1 = true;
            }
        }
        Ok(())
    }
}
