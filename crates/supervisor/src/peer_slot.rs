//! Per-worker upstream peer slots in the scoreboard: what a worker's
//! balancer groups say about each peer (requests, failures, active
//! connections, health-check counts, state), published by the worker
//! (a background task copies its groups' snapshots about every second) and
//! read by the master for the stats document (`upstreams`) and the
//! `portico_upstream_*` metrics. Balancer state is per worker, as in
//! nginx without `zone`, so each worker has its own [`MAX_PEERS`] slots;
//! peers past that are not shown. A slot is written by one worker only,
//! under a seqlock: the master copies it whole or retries.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Peer slots per worker.
pub const MAX_PEERS: usize = 32;

/// Bytes for `upstream NUL peer` (longer names are cut).
pub(crate) const PEER_TEXT_BYTES: usize = 128;

/// The states a slot can hold (index + 1 is stored; 0: unused slot). The
/// balancer's names: nginx Plus's `unavail` is passive health, `unhealthy`
/// active checks.
pub const PEER_STATES: [&str; 5] = ["up", "down", "unavail", "unhealthy", "backup"];

/// One peer as a worker publishes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRecord {
    pub upstream: String,
    pub peer: String,
    /// One of [`PEER_STATES`] (anything else reads back as `up`).
    pub state: String,
    pub requests: u64,
    pub failures: u64,
    pub active: u64,
    pub checks: u64,
    pub check_fails: u64,
}

/// One peer slot (all-zero: unused).
#[repr(C)]
#[derive(Debug)]
pub struct PeerSlot {
    /// Seqlock over the slot: odd while being written.
    seq: AtomicU32,
    /// 0 unused, else index in [`PEER_STATES`] + 1.
    state: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    active: AtomicU64,
    checks: AtomicU64,
    check_fails: AtomicU64,
    text_len: AtomicU64,
    text: [AtomicU64; PEER_TEXT_BYTES / 8],
}

impl PeerSlot {
    /// Write `r` (the worker's side).
    pub fn publish(&self, r: &PeerRecord) {
        let mut buf = [0u8; PEER_TEXT_BYTES];
        let text = r.upstream.bytes().chain([0]).chain(r.peer.bytes());
        let mut n = 0usize;
        for (slot, b) in buf.iter_mut().zip(text) {
            *slot = b;
            n += 1;
        }
        let state = PEER_STATES.iter().position(|s| *s == r.state).unwrap_or(0) as u32 + 1;
        let seq = self.seq.fetch_add(1, Ordering::AcqRel);
        for (i, word) in self.text.iter().enumerate().take(n.div_ceil(8)) {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(&buf[i * 8..i * 8 + 8]);
            word.store(u64::from_ne_bytes(chunk), Ordering::Relaxed);
        }
        self.text_len.store(n as u64, Ordering::Relaxed);
        self.requests.store(r.requests, Ordering::Relaxed);
        self.failures.store(r.failures, Ordering::Relaxed);
        self.active.store(r.active, Ordering::Relaxed);
        self.checks.store(r.checks, Ordering::Relaxed);
        self.check_fails.store(r.check_fails, Ordering::Relaxed);
        self.state.store(state, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Mark the slot unused.
    pub fn clear(&self) {
        let seq = self.seq.fetch_add(1, Ordering::AcqRel);
        self.state.store(0, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy, or `None` for an unused slot (the master's side).
    pub fn read(&self) -> Option<PeerRecord> {
        // A few tries for a consistent copy; a torn one is still only counters.
        let mut copy = None;
        for _ in 0..8 {
            let before = self.seq.load(Ordering::Acquire);
            let state = self.state.load(Ordering::Relaxed);
            let n = (self.text_len.load(Ordering::Relaxed) as usize).min(PEER_TEXT_BYTES);
            let mut raw = Vec::with_capacity(PEER_TEXT_BYTES);
            for word in self.text.iter().take(n.div_ceil(8)) {
                raw.extend_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
            raw.truncate(n);
            let counters = [
                &self.requests,
                &self.failures,
                &self.active,
                &self.checks,
                &self.check_fails,
            ]
            .map(|c| c.load(Ordering::Relaxed));
            std::sync::atomic::fence(Ordering::Acquire);
            copy = Some((state, raw, counters));
            if before.is_multiple_of(2) && self.seq.load(Ordering::Relaxed) == before {
                break;
            }
        }
        let (state, raw, [requests, failures, active, checks, check_fails]) = copy?;
        let name = PEER_STATES.get((state as usize).checked_sub(1)?)?;
        let mut parts = raw.splitn(2, |&b| b == 0);
        let mut text = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        Some(PeerRecord {
            upstream: text(),
            peer: text(),
            state: (*name).to_string(),
            requests,
            failures,
            active,
            checks,
            check_fails,
        })
    }
}

impl crate::Scoreboard {
    /// Every used peer slot, as (worker id, record), by worker then slot.
    pub fn peers(&self) -> Vec<(usize, PeerRecord)> {
        (1..=self.workers())
            .flat_map(|wid| {
                (0..MAX_PEERS).filter_map(move |i| self.peer(wid, i).read().map(|r| (wid, r)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scoreboard;

    #[test]
    fn peer_slots_round_trip_clear_and_belong_to_one_worker() {
        let board = Scoreboard::new(2, 3).expect("map");
        let r = PeerRecord {
            upstream: "backend".into(),
            peer: "127.0.0.1:8081".into(),
            state: "unhealthy".into(),
            requests: 5,
            failures: 2,
            active: 1,
            checks: 40,
            check_fails: 3,
        };
        assert_eq!(board.peer(1, 0).read(), None, "zeroed slots are unused");
        board.peer(2, MAX_PEERS - 1).publish(&r);
        assert_eq!(board.peer(2, MAX_PEERS - 1).read(), Some(r.clone()));
        assert_eq!(board.peer(1, MAX_PEERS - 1).read(), None);
        assert_eq!(board.core(2, 2).started_us.load(Ordering::Relaxed), 0);
        board.peer(2, MAX_PEERS - 1).clear();
        assert_eq!(board.peer(2, MAX_PEERS - 1).read(), None);
    }

    #[test]
    fn long_names_are_cut_and_unknown_states_read_as_up() {
        let board = Scoreboard::new(1, 1).expect("map");
        let r = PeerRecord {
            upstream: "u".repeat(100),
            peer: "p".repeat(100),
            state: "draining".into(),
            ..PeerRecord::default()
        };
        board.peer(1, 0).publish(&r);
        let back = board.peer(1, 0).read().expect("published");
        assert_eq!(back.upstream.len(), 100);
        assert_eq!(back.peer.len(), PEER_TEXT_BYTES - 101);
        assert_eq!(back.state, "up");
    }
}
