//! `least_conn` (`ngx_http_upstream_least_conn_module.c`): the eligible
//! peer with the fewest connections per unit of weight (`conns / weight`,
//! compared by cross-multiplying); several tied → smooth weighted
//! round-robin among the tied ones, starting from the first. No eligible
//! primary → the backup list. Connection counts are this worker's.

use super::peer::{Cursor, Lists, Peer};
use super::round_robin;

/// `a.conns / a.weight` compared with `b.conns / b.weight`.
fn load_cmp(a: &Peer, b: &Peer) -> std::cmp::Ordering {
    let lhs = u128::from(a.conns) * u128::from(b.weight.unsigned_abs());
    let rhs = u128::from(b.conns) * u128::from(a.weight.unsigned_abs());
    lhs.cmp(&rhs)
}

/// `ngx_http_upstream_get_least_conn_peer`: an index in the cursor's list.
pub(crate) fn get(lists: &mut Lists, cur: &mut Cursor, now: i64) -> Option<usize> {
    if lists.single_at(cur.backup) {
        return round_robin::get(lists, cur, now);
    }
    let list = lists.get_mut(cur.backup);
    let mut best: Option<usize> = None;
    let mut many = false;
    for (i, peer) in list.peers.iter().enumerate() {
        if cur.tried.get(i) || !peer.usable(now) {
            continue;
        }
        match best.map(|b| load_cmp(peer, &list.peers[b])) {
            None | Some(std::cmp::Ordering::Less) => {
                best = Some(i);
                many = false;
            }
            Some(std::cmp::Ordering::Equal) => many = true,
            Some(std::cmp::Ordering::Greater) => {}
        }
    }
    let Some(first) = best else {
        if !cur.backup && lists.backup.is_some() {
            cur.backup = true;
            cur.tried.clear();
            return get(lists, cur, now);
        }
        return None;
    };
    let mut best = first;
    let mut total = 0i64;
    if many {
        for i in first..list.peers.len() {
            let tied = load_cmp(&list.peers[i], &list.peers[best]).is_eq();
            let peer = &list.peers[i];
            if cur.tried.get(i) || !tied || !peer.usable(now) {
                continue;
            }
            let peer = &mut list.peers[i];
            peer.current_weight += peer.effective_weight;
            total += peer.effective_weight;
            if peer.effective_weight < peer.weight {
                peer.effective_weight += 1;
            }
            if peer.current_weight > list.peers[best].current_weight {
                best = i;
            }
        }
    }
    let peer = &mut list.peers[best];
    peer.current_weight -= total;
    peer.mark_checked(now);
    cur.tried.set(best);
    Some(best)
}

#[cfg(test)]
mod tests {
    use portico_config::site::Balancer;

    use super::super::tests::{group, letter};
    use super::super::{Attempt, PickInput, UpstreamGroup};

    /// Pick `n` times without releasing (overlapping requests).
    fn hold<'g>(g: &'g UpstreamGroup, n: usize) -> (Vec<Attempt<'g>>, String) {
        let now = g.epoch();
        let mut held = Vec::new();
        let mut picks = String::new();
        for _ in 0..n {
            let mut a = g.start(PickInput::default());
            picks.push(a.pick(now).map_or('-', |p| letter(&p)));
            held.push(a);
        }
        (held, picks)
    }

    #[test]
    fn fewest_connections_per_weight_wins_and_ties_go_round_robin() {
        let g = group(Balancer::LeastConn, &["A", "B weight=2", "C"]);
        // nginx observed the same for overlapping requests.
        let (_held, picks) = hold(&g, 6);
        assert_eq!(picks, "BACBCA");
    }

    #[test]
    fn full_peers_are_skipped_then_backups_serve() {
        let g = group(
            Balancer::LeastConn,
            &["A max_conns=1", "B max_conns=1", "C backup"],
        );
        let (_held, picks) = hold(&g, 4);
        assert_eq!(picks, "ABCC");
    }
}
