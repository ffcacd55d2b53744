//! The sockets a site listens on: one per distinct `listen` address, except
//! that a specific address whose port also has a wildcard `listen` is
//! served by the wildcard's socket (the router tells them apart by the
//! connection's local address), as nginx does without `bind`. What
//! `portico -c` binds, and what nginx's `worker_connections` check counts.

use std::collections::HashSet;

use super::{Listen, ListenAddr, Site};

impl Site {
    /// The first `listen` of every address that gets a socket of its own,
    /// in configuration order.
    pub fn listening_sockets(&self) -> Vec<&Listen> {
        let all = self.servers.iter().flat_map(|s| s.listens.iter());
        let wildcard_ports: HashSet<(bool, u16)> = all
            .clone()
            .filter_map(|l| match &l.addr {
                ListenAddr::Tcp(a) if a.ip().is_unspecified() => Some((a.is_ipv6(), a.port())),
                _ => None,
            })
            .collect();
        let mut seen: Vec<&ListenAddr> = Vec::new();
        let mut sockets = Vec::new();
        for listen in all {
            if seen.contains(&&listen.addr) {
                continue;
            }
            seen.push(&listen.addr);
            let merged = matches!(&listen.addr, ListenAddr::Tcp(a)
                if !a.ip().is_unspecified() && wildcard_ports.contains(&(a.is_ipv6(), a.port())));
            if !merged {
                sockets.push(listen);
            }
        }
        sockets
    }
}
