//! Turning an `upstream {}` block's addresses into peers at load time, as
//! nginx does (`ngx_parse_url` → `ngx_inet_resolve_host`): an IP literal
//! or a unix path is one peer; a host name becomes one peer per address
//! `getaddrinfo` returns, in its order, all sharing the server's text.
//! `server ... resolve` names are re-resolved by the caller, who swaps in
//! [`UpstreamGroup::rebuilt`] (peers that stay keep their state).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use portico_config::site::{Upstream, UpstreamServer, UpstreamTarget};

use super::{GroupError, UpstreamGroup};
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

/// The addresses of every `server` line of `up`, in order. A `server ...
/// resolve` name that does not resolve yet has none (nginx starts without
/// it too); any other such name is an error, as at nginx's load.
pub fn resolve_upstream(up: &Upstream) -> Result<Vec<Vec<PeerAddr>>, TargetError> {
    up.servers
        .iter()
        .map(|s| match resolve_target(&s.target) {
            Err(TargetError::Resolve { .. }) if s.resolve => Ok(Vec::new()),
            other => other,
        })
        .collect()
}

impl UpstreamGroup {
    /// The same group over new addresses (`server ... resolve` answered
    /// differently): a new group to swap in, in which every peer whose
    /// server text and address were already there keeps its health,
    /// weights and counters. Connection counts start at 0: picks still
    /// open belong to the old group and are released there.
    pub fn rebuilt(
        &self,
        up: &Upstream,
        resolved: &[Vec<PeerAddr>],
    ) -> Result<UpstreamGroup, GroupError> {
        let new = UpstreamGroup::new(up, resolved)?.with_epoch(self.epoch);
        {
            let old = self.lock();
            let mut state = new.lock();
            for (n, info) in new.info.iter().enumerate() {
                let Some(o) = self.info.iter().position(|o| {
                    o.addr == info.addr && o.server == info.server && o.backup == info.backup
                }) else {
                    continue;
                };
                let (old_backup, oi) = self.locate(o);
                let (new_backup, ni) = new.locate(n);
                let Some(src) = old.lists.get(old_backup).peers.get(oi) else {
                    continue;
                };
                let Some(dst) = state.lists.get_mut(new_backup).peers.get_mut(ni) else {
                    continue;
                };
                dst.effective_weight = src.effective_weight.min(dst.weight);
                dst.current_weight = src.current_weight;
                dst.fails = src.fails;
                dst.accessed = src.accessed;
                dst.checked = src.checked;
                dst.requests = src.requests;
                dst.failures = src.failures;
                dst.check = src.check;
            }
        }
        Ok(new)
    }
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
