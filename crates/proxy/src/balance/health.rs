//! Active health checks' side of the balancer (`health_check`, nginx Plus's
//! semantics): each peer keeps a [`CheckState`](super::peer::CheckState);
//! `fails` failed checks in a row make it unhealthy, `passes` passed checks
//! in a row make it healthy again. An unhealthy peer is skipped by every
//! method, the single peer included, whatever `max_fails` says: the two
//! kinds of health are separate conditions, both must allow a peer. When
//! the checks bring a peer back, its passive failures are forgotten too
//! (it answered the checks: it serves at once, not after `fail_timeout`).
//!
//! Peers start healthy (nginx Plus without `mandatory`). Who sends the
//! checks: `crate::background::check`.

use super::UpstreamGroup;
use crate::target::PeerAddr;

/// One peer to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTarget {
    /// Group index (primaries, then backups).
    pub index: usize,
    pub addr: PeerAddr,
    /// nginx's peer name (`127.0.0.1:8080`), for messages.
    pub name: String,
}

/// How many checks in a row change a peer's health (`fails=`, `passes=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRule {
    pub fails: u32,
    pub passes: u32,
}

/// A change of health a check caused (log it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// `fails` checks failed in a row: out of rotation.
    Unhealthy,
    /// `passes` checks passed in a row: back in rotation.
    Healthy,
}

impl UpstreamGroup {
    /// The peers to check: every peer not marked `down`, in group order.
    pub fn check_targets(&self) -> Vec<CheckTarget> {
        let state = self.lock();
        self.info
            .iter()
            .enumerate()
            .filter(|(index, _)| {
                let (backup, i) = self.locate(*index);
                state
                    .lists
                    .get(backup)
                    .peers
                    .get(i)
                    .is_some_and(|p| !p.down)
            })
            .map(|(index, info)| CheckTarget {
                index,
                addr: info.addr.clone(),
                name: info.name.to_string(),
            })
            .collect()
    }

    /// Record one check of `target` (ignored if the group no longer has
    /// that peer at that index). Returns the change of health it caused.
    pub fn record_check(
        &self,
        target: &CheckTarget,
        passed: bool,
        rule: CheckRule,
    ) -> Option<HealthChange> {
        let info = self.info.get(target.index)?;
        if info.addr != target.addr {
            return None;
        }
        let (backup, i) = self.locate(target.index);
        let mut state = self.lock();
        let peer = state.lists.get_mut(backup).peers.get_mut(i)?;
        let check = &mut peer.check;
        check.checks += 1;
        if passed {
            check.passes_in_row = check.passes_in_row.saturating_add(1);
            check.fails_in_row = 0;
            if check.unhealthy && check.passes_in_row >= rule.passes.max(1) {
                check.unhealthy = false;
                peer.fails = 0;
                return Some(HealthChange::Healthy);
            }
        } else {
            check.check_fails += 1;
            check.fails_in_row = check.fails_in_row.saturating_add(1);
            check.passes_in_row = 0;
            if !check.unhealthy && check.fails_in_row >= rule.fails.max(1) {
                check.unhealthy = true;
                return Some(HealthChange::Unhealthy);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use portico_config::site::Balancer;

    use super::super::tests::{group, letter};
    use super::super::{Outcome, PeerState, PickInput};
    use super::*;

    fn picks(g: &UpstreamGroup, n: usize) -> String {
        let now = g.epoch();
        (0..n)
            .map(|_| {
                let mut a = g.start(PickInput::default());
                a.pick(now).map_or('-', |p| letter(&p))
            })
            .collect()
    }

    fn check(
        g: &UpstreamGroup,
        index: usize,
        passed: bool,
        rule: CheckRule,
    ) -> Option<HealthChange> {
        let target = g.check_targets().into_iter().find(|t| t.index == index)?;
        g.record_check(&target, passed, rule)
    }

    #[test]
    fn fails_in_a_row_take_a_peer_out_and_passes_in_a_row_bring_it_back() {
        let g = group(Balancer::RoundRobin, &["A", "B"]);
        let rule = CheckRule {
            fails: 2,
            passes: 3,
        };
        assert_eq!(check(&g, 1, false, rule), None);
        assert_eq!(check(&g, 1, true, rule), None, "a pass resets the failures");
        assert_eq!(check(&g, 1, false, rule), None);
        assert_eq!(check(&g, 1, false, rule), Some(HealthChange::Unhealthy));
        assert_eq!(picks(&g, 4), "AAAA");
        assert_eq!(g.snapshot(g.epoch())[1].state, PeerState::Unhealthy);
        assert_eq!(check(&g, 1, true, rule), None);
        assert_eq!(check(&g, 1, true, rule), None);
        assert_eq!(check(&g, 1, true, rule), Some(HealthChange::Healthy));
        assert_eq!(picks(&g, 4), "ABAB");
        let stats = &g.snapshot(g.epoch())[1];
        assert_eq!((stats.checks, stats.check_fails), (7, 3));
    }

    #[test]
    fn an_unhealthy_peer_is_skipped_whatever_max_fails_allows() {
        for balancer in [
            Balancer::RoundRobin,
            Balancer::LeastConn,
            Balancer::IpHash,
            Balancer::Random {
                two: true,
                least_conn: true,
            },
        ] {
            let g = group(balancer.clone(), &["A max_fails=0", "B max_fails=0"]);
            let rule = CheckRule {
                fails: 1,
                passes: 1,
            };
            assert_eq!(check(&g, 0, false, rule), Some(HealthChange::Unhealthy));
            assert_eq!(picks(&g, 6), "BBBBBB", "{balancer:?}");
        }
    }

    #[test]
    fn an_unhealthy_single_peer_leaves_no_live_upstream() {
        let g = group(Balancer::RoundRobin, &["A"]);
        let rule = CheckRule {
            fails: 1,
            passes: 1,
        };
        assert_eq!(check(&g, 0, false, rule), Some(HealthChange::Unhealthy));
        assert_eq!(picks(&g, 2), "--");
        assert_eq!(check(&g, 0, true, rule), Some(HealthChange::Healthy));
        assert_eq!(picks(&g, 2), "AA");
    }

    #[test]
    fn backups_serve_while_every_primary_is_unhealthy() {
        let g = group(Balancer::RoundRobin, &["A", "B backup"]);
        let rule = CheckRule {
            fails: 1,
            passes: 1,
        };
        assert_eq!(check(&g, 0, false, rule), Some(HealthChange::Unhealthy));
        assert_eq!(picks(&g, 2), "BB");
    }

    #[test]
    fn coming_back_forgets_passive_failures() {
        let g = group(Balancer::RoundRobin, &["A", "B"]);
        let now = g.epoch();
        let mut a = g.start(PickInput::default());
        let Some(p) = a.pick(now) else { unreachable!() };
        assert!(a.release(p, Outcome::Failure, now).disabled);
        drop(a);
        assert_eq!(g.snapshot(now)[0].state, PeerState::Unavailable);
        let rule = CheckRule {
            fails: 1,
            passes: 1,
        };
        assert_eq!(check(&g, 0, false, rule), Some(HealthChange::Unhealthy));
        assert_eq!(check(&g, 0, true, rule), Some(HealthChange::Healthy));
        assert_eq!(g.snapshot(now)[0].state, PeerState::Up);
        // Back at once (its lowered effective weight recovers as nginx's).
        assert!(picks(&g, 3).contains('A'));
    }

    #[test]
    fn down_peers_are_not_checked_and_rebuilt_groups_keep_health() {
        let g = group(Balancer::RoundRobin, &["A", "B down", "C"]);
        let indices: Vec<usize> = g.check_targets().iter().map(|t| t.index).collect();
        assert_eq!(indices, vec![0, 2]);
        let stale = g.check_targets()[0].clone();
        let rule = CheckRule {
            fails: 1,
            passes: 1,
        };
        assert_eq!(check(&g, 2, false, rule), Some(HealthChange::Unhealthy));
        let other = CheckTarget {
            addr: g.check_targets()[1].addr.clone(),
            ..stale
        };
        assert_eq!(
            g.record_check(&other, false, rule),
            None,
            "address mismatch"
        );
        assert_eq!(picks(&g, 3), "AAA");
    }
}
