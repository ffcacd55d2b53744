//! Per-peer counters for the stats server and metrics: requests, failures,
//! state and active connections of each peer of a group, copied out under
//! the group's lock by [`UpstreamGroup::snapshot`]. Serving them is the
//! stats server's job, not this file's.

use std::time::Instant;

use super::UpstreamGroup;

/// A peer's state as the stats show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// In rotation.
    Up,
    /// Marked `down` in the configuration.
    Down,
    /// Failed `max_fails` times and inside `fail_timeout`: skipped
    /// (nginx Plus's `unavail`).
    Unavailable,
    /// Failing its active health checks: skipped until they pass.
    Unhealthy,
    /// A healthy `backup` peer (used only when no primary can be).
    Backup,
}

impl PeerState {
    /// Lower-case name for JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Up => "up",
            PeerState::Down => "down",
            PeerState::Unavailable => "unavail",
            PeerState::Unhealthy => "unhealthy",
            PeerState::Backup => "backup",
        }
    }
}

/// One peer's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// nginx's peer name (`127.0.0.1:8080`).
    pub name: String,
    /// The `server` text it came from.
    pub server: String,
    pub backup: bool,
    pub weight: u32,
    pub state: PeerState,
    /// Times picked.
    pub requests: u64,
    /// Tries released as failed.
    pub failures: u64,
    /// Picked and not yet released.
    pub active: u64,
    /// Active health checks made.
    pub checks: u64,
    /// Active health checks failed.
    pub check_fails: u64,
}

impl UpstreamGroup {
    /// Every peer's counters, in group order (primaries, then backups).
    pub fn snapshot(&self, now: Instant) -> Vec<PeerStats> {
        let secs = self.secs(now);
        let state = self.lock();
        self.info
            .iter()
            .enumerate()
            .filter_map(|(index, info)| {
                let (backup, i) = self.locate(index);
                let peer = state.lists.get(backup).peers.get(i)?;
                let health = if peer.down {
                    PeerState::Down
                } else if peer.check.unhealthy {
                    PeerState::Unhealthy
                } else if peer.failed(secs) {
                    PeerState::Unavailable
                } else if backup {
                    PeerState::Backup
                } else {
                    PeerState::Up
                };
                Some(PeerStats {
                    name: info.name.to_string(),
                    server: info.server.clone(),
                    backup,
                    weight: info.weight,
                    state: health,
                    requests: peer.requests,
                    failures: peer.failures,
                    active: peer.conns,
                    checks: peer.check.checks,
                    check_fails: peer.check.check_fails,
                })
            })
            .collect()
    }
}
