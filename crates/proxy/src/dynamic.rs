//! `proxy_pass` with variables in the host (`proxy_pass http://$arg_to;`),
//! resolved per request as nginx's `ngx_http_upstream_init_request` does:
//!
//! 1. a host without a port that names an `upstream {}` block (any case)
//!    goes to that group, with its balancer, pool and passive health;
//! 2. an IP address (`10.0.0.7:8080`, `[::1]`) is connected to directly;
//! 3. any other name needs a `resolver`: without one nginx logs
//!    `no resolver defined to resolve NAME` and answers 502; with one the
//!    name is resolved (within `resolver_timeout`) and its addresses form
//!    the request's peers, without keep-alive, as nginx's implicit upstream
//!    of a resolved name. Portico asks the system's resolver
//!    (getaddrinfo), not the servers `resolver` lists (docs/compat.md).
//!
//! The engine evaluates the URL and hands over its `host[:port]`
//! ([`ProxyCall::authority`]); everything else of the request (the URI
//! part, the headers) was made by the engine as for any `proxy_pass`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use portico_config::site::{ProxySettings, Resolver};
use portico_server::{ProxyCall, ProxyFuture, ProxyOutcome, ProxyUpstream};

use crate::balance::UpstreamGroup;
use crate::error::{ErrorKind, Phase, ProxyError};
use crate::error_page::error_response;
use crate::log::LogContext;
use crate::proxy::HttpProxy;
use crate::target::PeerAddr;

/// One location's `proxy_pass` with a variable host.
pub struct DynamicProxy {
    /// The `upstream {}` blocks by name, each as this location's proxy.
    groups: Vec<(String, HttpProxy)>,
    settings: Arc<ProxySettings>,
}

impl DynamicProxy {
    /// `groups`: every `upstream {}` block of the site, as a proxy with
    /// this location's settings (`settings`, whose `resolver` decides
    /// whether other names are looked up).
    pub fn new(groups: Vec<(String, HttpProxy)>, settings: Arc<ProxySettings>) -> DynamicProxy {
        DynamicProxy { groups, settings }
    }
}

/// Where one request goes.
enum Route<'a> {
    Group(&'a HttpProxy),
    Addresses(String, Vec<SocketAddr>),
    Resolve {
        host: String,
        port: u16,
        resolver: &'a Resolver,
    },
    NoResolver(String),
    Invalid(String),
}

impl DynamicProxy {
    fn route(&self, authority: &str) -> Route<'_> {
        let (host, port) = match split_authority(authority) {
            Some(parts) => parts,
            None => return Route::Invalid(authority.to_string()),
        };
        if port.is_none()
            && let Some((_, proxy)) = self
                .groups
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(host))
        {
            return Route::Group(proxy);
        }
        let port = port.unwrap_or(80);
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port);
            return Route::Addresses(addr.to_string(), vec![addr]);
        }
        match &self.settings.resolver {
            Some(resolver) => Route::Resolve {
                host: host.to_string(),
                port,
                resolver,
            },
            None => Route::NoResolver(host.to_string()),
        }
    }

    fn direct(&self, name: &str, addrs: Vec<SocketAddr>) -> HttpProxy {
        let peers = addrs.into_iter().map(PeerAddr::Tcp).collect();
        let group = UpstreamGroup::implicit(name, peers);
        HttpProxy::new(Arc::new(group), self.settings.clone(), None)
    }
}

/// `host[:port]` → host and the port when one is written; `None` when the
/// port is not a number.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let colon = authority
        .rfind(':')
        .filter(|&c| !authority[c..].contains(']'));
    match colon {
        Some(c) => Some((&authority[..c], Some(authority[c + 1..].parse().ok()?))),
        None => Some((authority, None)),
    }
}

impl ProxyUpstream for DynamicProxy {
    fn forward(&self, call: ProxyCall) -> ProxyFuture {
        let authority = call
            .authority
            .as_ref()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_default();
        let fail = |call: &ProxyCall, e: ProxyError| -> ProxyOutcome {
            LogContext::new(&call.request).log(&e);
            ProxyOutcome {
                response: error_response(502, "portico"),
                from_upstream: false,
                tries: Default::default(),
            }
        };
        let proxy = match self.route(&authority) {
            Route::Group(proxy) => return proxy.forward(call),
            Route::Addresses(name, addrs) => self.direct(&name, addrs),
            Route::NoResolver(host) => {
                let e = ProxyError::new(
                    ErrorKind::Connect,
                    Phase::Preparing,
                    format!("no resolver defined to resolve {host}"),
                );
                let outcome = fail(&call, e);
                return ProxyFuture::new(move || async move { outcome });
            }
            Route::Invalid(text) => {
                let e = ProxyError::new(
                    ErrorKind::Connect,
                    Phase::Preparing,
                    format!("invalid port in upstream \"{text}\""),
                );
                let outcome = fail(&call, e);
                return ProxyFuture::new(move || async move { outcome });
            }
            Route::Resolve {
                host,
                port,
                resolver,
            } => {
                let (timeout, v4, v6) = (resolver.timeout, resolver.ipv4, resolver.ipv6);
                let settings = self.settings.clone();
                return ProxyFuture::new(move || async move {
                    let lookup = tokio::net::lookup_host((host.as_str(), port));
                    let addrs: Vec<SocketAddr> = match tokio::time::timeout(timeout, lookup).await {
                        Ok(Ok(found)) => found
                            .filter(|a| if a.is_ipv4() { v4 } else { v6 })
                            .collect(),
                        _ => Vec::new(),
                    };
                    if addrs.is_empty() {
                        let e = ProxyError::new(
                            ErrorKind::Connect,
                            Phase::Preparing,
                            format!("{host} could not be resolved (3: Host not found)"),
                        );
                        return fail(&call, e);
                    }
                    let peers = addrs.into_iter().map(PeerAddr::Tcp).collect();
                    let group = UpstreamGroup::implicit(&format!("{host}:{port}"), peers);
                    HttpProxy::new(Arc::new(group), settings, None)
                        .forward(call)
                        .await
                });
            }
        };
        proxy.forward(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_into_host_and_written_port() {
        assert_eq!(split_authority("app"), Some(("app", None)));
        assert_eq!(split_authority("app:8080"), Some(("app", Some(8080))));
        assert_eq!(split_authority("[::1]:81"), Some(("[::1]", Some(81))));
        assert_eq!(split_authority("[::1]"), Some(("[::1]", None)));
        assert_eq!(split_authority("app:x"), None);
    }

    fn proxy(resolver: Option<Resolver>) -> DynamicProxy {
        let settings = Arc::new(ProxySettings {
            resolver,
            ..ProxySettings::default()
        });
        let group = HttpProxy::new(
            Arc::new(UpstreamGroup::single(PeerAddr::Tcp(SocketAddr::from((
                [127, 0, 0, 1],
                9,
            ))))),
            settings.clone(),
            None,
        );
        DynamicProxy::new(vec![("Backend".to_string(), group)], settings)
    }

    #[test]
    fn a_block_name_without_a_port_is_the_group_else_an_address_or_a_name_to_resolve() {
        let p = proxy(None);
        assert!(matches!(p.route("backend"), Route::Group(_)), "any case");
        assert!(matches!(p.route("backend:80"), Route::NoResolver(h) if h == "backend"));
        assert!(
            matches!(p.route("10.0.0.7:8080"), Route::Addresses(n, a) if n == "10.0.0.7:8080" && a.len() == 1)
        );
        assert!(matches!(p.route("[::1]"), Route::Addresses(n, _) if n == "[::1]:80"));
        assert!(matches!(p.route("app.example"), Route::NoResolver(h) if h == "app.example"));
        let resolver = Resolver {
            servers: Vec::new(),
            valid: None,
            ipv4: true,
            ipv6: false,
            timeout: std::time::Duration::from_secs(1),
        };
        let p = proxy(Some(resolver));
        assert!(
            matches!(p.route("app.example:81"), Route::Resolve { host, port: 81, .. } if host == "app.example")
        );
    }
}
