//! A stand-in for the `balancers` branch's `balance` module, with its API
//! (`UpstreamGroup::start` → `Attempt::pick` / `release` / `tries_left`),
//! so the HTTP proxy is written against the real shape and the swap is one
//! `use` line. Plain round-robin over the addresses, every peer tried once
//! per request, no weights and no failure accounting: not nginx's
//! algorithms, which live in `balance/` once merged.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::target::PeerAddr;

/// What a request brings to the balancer.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickInput<'a> {
    pub client_ip: Option<IpAddr>,
    pub hash_key: Option<&'a [u8]>,
    /// `proxy_next_upstream_tries` (0: no cap).
    pub next_upstream_tries: usize,
}

/// The peer to try now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picked<'g> {
    pub index: usize,
    pub addr: &'g PeerAddr,
    /// `$upstream_addr`'s name for it.
    pub name: &'g str,
}

/// How a try ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    NextNotCounted,
}

/// What a release did (`disabled`: log nginx's warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub disabled: bool,
}

/// The warning nginx logs when a failure takes a peer out.
pub const TEMPORARILY_DISABLED: &str = "upstream server temporarily disabled";

/// A group of addresses.
#[derive(Debug)]
pub struct UpstreamGroup {
    name: String,
    addrs: Vec<PeerAddr>,
    names: Vec<String>,
    next: Mutex<usize>,
}

impl UpstreamGroup {
    /// One peer, never retried (nginx's implicit upstream).
    pub fn single(addr: PeerAddr) -> UpstreamGroup {
        let name = addr.to_string();
        UpstreamGroup::implicit(&name, vec![addr])
    }

    /// Several addresses under one name, round-robin.
    pub fn implicit(name: &str, addrs: Vec<PeerAddr>) -> UpstreamGroup {
        UpstreamGroup {
            name: name.to_string(),
            names: addrs.iter().map(ToString::to_string).collect(),
            addrs,
            next: Mutex::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn start(&self, input: PickInput<'_>) -> Attempt<'_> {
        let n = self.addrs.len();
        let start = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let start = *next;
            *next = (start + 1) % n.max(1);
            start
        };
        let tries = match input.next_upstream_tries {
            0 => n,
            cap => n.min(cap),
        };
        Attempt {
            group: self,
            start,
            done: 0,
            tries,
        }
    }
}

/// One request's tries through a group.
#[derive(Debug)]
pub struct Attempt<'g> {
    group: &'g UpstreamGroup,
    start: usize,
    done: usize,
    tries: usize,
}

impl<'g> Attempt<'g> {
    pub fn pick(&mut self, _now: Instant) -> Option<Picked<'g>> {
        let n = self.group.addrs.len();
        if self.done >= n {
            return None;
        }
        let index = (self.start + self.done) % n;
        self.done += 1;
        Some(Picked {
            index,
            addr: &self.group.addrs[index],
            name: &self.group.names[index],
        })
    }

    pub fn release(&mut self, _picked: Picked<'_>, _outcome: Outcome, _now: Instant) -> Released {
        self.tries = self.tries.saturating_sub(1);
        Released { disabled: false }
    }

    pub fn tries_left(&self) -> usize {
        self.tries
    }
}
