//! The shared peer state every balancer reads and writes, as nginx keeps it
//! in `ngx_http_upstream_rr_peer_t` / `_rr_peers_t` / `_rr_peer_data_t`
//! (`src/http/ngx_http_upstream_round_robin.{c,h}`): weights, connection
//! counts, failure accounting, the per-request "tried" bitmap, and nginx's
//! `free_peer` (what a finished try does to its peer).
//!
//! Times are whole seconds on the group's clock, as nginx's `ngx_time()`
//! is: a peer failed at second `t` is skipped while `now - t <= fail_timeout`.
//! Not here: which peer to pick (one file per method next to this one).

use portico_config::site::UpstreamServer;

/// "Never": nginx's peers start with `accessed = checked = 0` (1970), long
/// before any `now`. Far enough in the past that no subtraction overflows.
pub(crate) const NEVER: i64 = i64::MIN / 4;

/// nginx's defaults for the peers of an implicit upstream (`proxy_pass` to
/// an address): `max_fails=1 fail_timeout=10`.
const IMPLICIT_MAX_FAILS: u64 = 1;
const IMPLICIT_FAIL_TIMEOUT_SECS: i64 = 10;

/// One peer's mutable state (one address of one `server` line).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Configured weight.
    pub weight: i64,
    /// Lowered by failures, recovers by one per selection round.
    pub effective_weight: i64,
    /// Smooth weighted round-robin's running score.
    pub current_weight: i64,
    /// Connections in use by this worker (picked, not yet released).
    pub conns: u64,
    /// `max_conns` (0: no limit).
    pub max_conns: u64,
    pub fails: u64,
    pub accessed: i64,
    pub checked: i64,
    /// `max_fails` (0: failures never disable the peer).
    pub max_fails: u64,
    /// `fail_timeout` in whole seconds.
    pub fail_timeout: i64,
    pub down: bool,
    /// Stats: picks.
    pub requests: u64,
    /// Stats: tries released as failed.
    pub failures: u64,
    /// Active health checks (`health_check`): out of rotation while
    /// `check.unhealthy`, whatever passive health says.
    pub check: CheckState,
}

/// A peer's active health-check record (`health::record_check` keeps it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CheckState {
    /// Failed `fails` checks in a row and not yet passed `passes` in a row.
    pub unhealthy: bool,
    /// Consecutive failed checks.
    pub fails_in_row: u32,
    /// Consecutive passed checks.
    pub passes_in_row: u32,
    /// Stats: checks made.
    pub checks: u64,
    /// Stats: checks failed.
    pub check_fails: u64,
}

impl Peer {
    /// A peer of a `server` line.
    pub(super) fn from_server(s: &UpstreamServer) -> Peer {
        let fail_timeout = i64::try_from(s.fail_timeout.as_secs()).unwrap_or(i64::MAX / 4);
        Peer::with(
            i64::from(s.weight.max(1)),
            u64::from(s.max_fails),
            fail_timeout,
            u64::from(s.max_conns),
            s.down,
        )
    }

    /// A peer of an implicit upstream (weight 1, nginx's fixed defaults).
    pub(super) fn implicit() -> Peer {
        Peer::with(1, IMPLICIT_MAX_FAILS, IMPLICIT_FAIL_TIMEOUT_SECS, 0, false)
    }

    fn with(weight: i64, max_fails: u64, fail_timeout: i64, max_conns: u64, down: bool) -> Peer {
        Peer {
            weight,
            effective_weight: weight,
            current_weight: 0,
            conns: 0,
            max_conns,
            fails: 0,
            accessed: NEVER,
            checked: NEVER,
            max_fails,
            fail_timeout,
            down,
            requests: 0,
            failures: 0,
            check: CheckState::default(),
        }
    }

    /// Failed and still inside its `fail_timeout` window.
    pub(super) fn failed(&self, now: i64) -> bool {
        self.max_fails != 0
            && self.fails >= self.max_fails
            && now - self.checked <= self.fail_timeout
    }

    /// At `max_conns`.
    pub(super) fn full(&self) -> bool {
        self.max_conns != 0 && self.conns >= self.max_conns
    }

    /// Neither down, failing its health checks, failed nor full (the
    /// tried bit is the caller's).
    pub(super) fn usable(&self, now: i64) -> bool {
        !self.down && !self.check.unhealthy && !self.failed(now) && !self.full()
    }

    /// What every method does to the peer it picks (besides `conns++`):
    /// a pick after the window opens a new one (one trial request).
    pub(super) fn mark_checked(&mut self, now: i64) {
        if now - self.checked > self.fail_timeout {
            self.checked = now;
        }
    }
}

/// One of nginx's two peer lists (primary, backup).
#[derive(Debug, Clone)]
pub(crate) struct PeerList {
    pub peers: Vec<Peer>,
    /// Sum of configured weights, `down` peers included.
    pub total_weight: u64,
}

impl PeerList {
    pub(super) fn new(peers: Vec<Peer>) -> PeerList {
        let total_weight = peers.iter().map(|p| p.weight.unsigned_abs()).sum();
        PeerList {
            peers,
            total_weight,
        }
    }

    /// Peers that are not `down`: each may be tried once per request.
    pub(super) fn tries(&self) -> usize {
        self.peers.iter().filter(|p| !p.down).count()
    }

    /// The weighted walk of `ip_hash` and `hash`: the peer whose slice of
    /// `[0, total_weight)` holds `w` (configured weights, `down` included).
    pub(super) fn walk(&self, mut w: u64) -> usize {
        for (i, p) in self.peers.iter().enumerate() {
            let weight = p.weight.unsigned_abs();
            if w < weight {
                return i;
            }
            w -= weight;
        }
        debug_assert!(false, "walk past the end: w >= total_weight");
        self.peers.len().saturating_sub(1)
    }
}

/// Both lists and whether the group is nginx's "single" peer (one primary
/// address and no backup): no selection, no failure accounting.
#[derive(Debug, Clone)]
pub(crate) struct Lists {
    pub primary: PeerList,
    pub backup: Option<PeerList>,
    pub single: bool,
}

impl Lists {
    /// nginx's `peers->single` of the list a request is on (the backup
    /// list never is).
    pub(super) fn single_at(&self, backup: bool) -> bool {
        self.single && !backup
    }

    pub(super) fn get(&self, backup: bool) -> &PeerList {
        match (&self.backup, backup) {
            (Some(b), true) => b,
            _ => &self.primary,
        }
    }

    pub(super) fn get_mut(&mut self, backup: bool) -> &mut PeerList {
        match (&mut self.backup, backup) {
            (Some(b), true) => b,
            _ => &mut self.primary,
        }
    }
}

/// The tried bitmap of one request, over the current list's indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tried {
    inline: u64,
    heap: Vec<u64>,
}

impl Tried {
    pub(super) fn new(n: usize) -> Tried {
        if n <= 64 {
            return Tried::default();
        }
        Tried {
            inline: 0,
            heap: vec![0; n.div_ceil(64)],
        }
    }

    pub(super) fn get(&self, i: usize) -> bool {
        let bit = 1u64 << (i % 64);
        if self.heap.is_empty() {
            i < 64 && self.inline & bit != 0
        } else {
            self.heap.get(i / 64).is_some_and(|w| w & bit != 0)
        }
    }

    pub(super) fn set(&mut self, i: usize) {
        let bit = 1u64 << (i % 64);
        if self.heap.is_empty() {
            if i < 64 {
                self.inline |= bit;
            }
        } else if let Some(w) = self.heap.get_mut(i / 64) {
            *w |= bit;
        }
    }

    pub(super) fn clear(&mut self) {
        self.inline = 0;
        self.heap.iter_mut().for_each(|w| *w = 0);
    }
}

/// nginx's `rrp`: which list this request walks (it moves to the backup
/// list once the primaries are exhausted, for good) and what it tried.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pub backup: bool,
    pub tried: Tried,
}

/// How a try ended, as nginx's `free_peer` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FreeState {
    /// `NGX_PEER_FAILED`.
    Failed,
    /// Anything else (success, `NGX_PEER_NEXT`, finalize's 0).
    Other,
}

/// `ngx_http_upstream_free_round_robin_peer` for a non-single group.
/// Returns whether the peer just reached `max_fails` (nginx's `[warn]
/// upstream server temporarily disabled`).
pub(crate) fn free_peer(peer: &mut Peer, state: FreeState, now: i64) -> bool {
    let mut disabled = false;
    match state {
        FreeState::Failed => {
            peer.fails += 1;
            peer.accessed = now;
            peer.checked = now;
            if peer.max_fails != 0 {
                // u64 → i64: max_fails comes from a u32.
                let max_fails = i64::try_from(peer.max_fails).unwrap_or(i64::MAX);
                peer.effective_weight -= peer.weight / max_fails;
                disabled = peer.fails >= peer.max_fails;
            }
            if peer.effective_weight < 0 {
                peer.effective_weight = 0;
            }
        }
        FreeState::Other => {
            // Mark the peer live if the trial passed.
            if peer.accessed < peer.checked {
                peer.fails = 0;
            }
        }
    }
    peer.conns = peer.conns.saturating_sub(1);
    disabled
}
