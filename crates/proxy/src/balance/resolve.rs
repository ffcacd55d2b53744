//! Turning an `upstream {}` block's addresses into peers at load time, as
//! nginx does (`ngx_parse_url` → `ngx_inet_resolve_host`): an IP literal
//! or a unix path is one peer; a host name becomes one peer per address
//! `getaddrinfo` returns, in its order, all sharing the server's text.
//! Not re-resolved later (that is `server ... resolve`, not done here).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use portico_config::site::{Upstream, UpstreamServer, UpstreamTarget};

use crate::target::{PeerAddr, TargetError};

/// Every address of `target` (an `upstream {}` name is refused).
pub fn resolve_target(target: &UpstreamTarget) -> Result<Vec<PeerAddr>, TargetError> {
    match target {
        UpstreamTarget::Unix(path) => Ok(vec![PeerAddr::Unix(path.clone())]),
        UpstreamTarget::Group(name) => Err(TargetError::Group(name.clone())),
        UpstreamTarget::Tcp { host, port } => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                return Ok(vec![PeerAddr::Tcp(SocketAddr::new(ip, *port))]);
            }
            let resolve_err = |why: String| TargetError::Resolve {
                host: host.clone(),
                port: *port,
                why,
            };
            let addrs: Vec<PeerAddr> = (bare, *port)
                .to_socket_addrs()
                .map_err(|e| resolve_err(e.to_string()))?
                .map(PeerAddr::Tcp)
                .collect();
            if addrs.is_empty() {
                return Err(resolve_err("no address".to_string()));
            }
            Ok(addrs)
        }
    }
}

/// The addresses of every `server` line of `up`, in order.
pub fn resolve_upstream(up: &Upstream) -> Result<Vec<Vec<PeerAddr>>, TargetError> {
    up.servers
        .iter()
        .map(|s| resolve_target(&s.target))
        .collect()
}

/// nginx's server name: the address as written, or (for a model built
/// without it) the target printed back.
pub(crate) fn server_text(s: &UpstreamServer) -> String {
    if !s.name.is_empty() {
        return s.name.clone();
    }
    match &s.target {
        UpstreamTarget::Tcp { host, port } if host.contains(':') && !host.starts_with('[') => {
            format!("[{host}]:{port}")
        }
        UpstreamTarget::Tcp { host, port } => format!("{host}:{port}"),
        UpstreamTarget::Unix(path) => format!("unix:{}", path.display()),
        UpstreamTarget::Group(name) => name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_resolve_to_one_peer_each() {
        let v4 = resolve_target(&UpstreamTarget::Tcp {
            host: "127.0.0.1".into(),
            port: 8080,
        });
        assert_eq!(v4.map(|a| a.len()), Ok(1));
        let v6 = resolve_target(&UpstreamTarget::Tcp {
            host: "::1".into(),
            port: 8080,
        });
        assert_eq!(
            v6.map(|a| a.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Ok(vec!["[::1]:8080".to_string()])
        );
    }

    #[test]
    fn group_names_are_not_addresses() {
        let err = resolve_target(&UpstreamTarget::Group("app".into()));
        assert_eq!(err, Err(TargetError::Group("app".into())));
    }
}
