//! Smooth weighted round-robin, nginx's default method and every other
//! method's fallback (`ngx_http_upstream_get_round_robin_peer` and
//! `ngx_http_upstream_get_peer` in `ngx_http_upstream_round_robin.c`).
//!
//! Per pick, over the request's current list: every eligible peer (not
//! tried, not down, not failed, not full) gains its effective weight;
//! the highest score wins (strict `>`: ties go to the earliest peer) and
//! pays back the total. No primary left → the backup list, for good.

use super::peer::{Cursor, Lists, PeerList, Tried};

/// `ngx_http_upstream_get_peer`: the smooth-WRR winner of `list`, marked
/// tried, or `None` when nothing is eligible.
pub(crate) fn best(list: &mut PeerList, tried: &mut Tried, now: i64) -> Option<usize> {
    // (index, current_weight) of the leader so far.
    let mut best: Option<(usize, i64)> = None;
    let mut total = 0i64;
    for (i, peer) in list.peers.iter_mut().enumerate() {
        if tried.get(i) || !peer.usable(now) {
            continue;
        }
        peer.current_weight += peer.effective_weight;
        total += peer.effective_weight;
        if peer.effective_weight < peer.weight {
            peer.effective_weight += 1;
        }
        if best.is_none_or(|(_, score)| peer.current_weight > score) {
            best = Some((i, peer.current_weight));
        }
    }
    let (b, _) = best?;
    tried.set(b);
    let peer = &mut list.peers[b];
    peer.current_weight -= total;
    peer.mark_checked(now);
    Some(b)
}

/// `ngx_http_upstream_get_round_robin_peer`: the single peer, or the
/// smooth-WRR winner of the current list, else of the backup list (the
/// request moves there with a cleared tried bitmap). Returns the index in
/// the cursor's (possibly new) list.
pub(crate) fn get(lists: &mut Lists, cur: &mut Cursor, now: i64) -> Option<usize> {
    if lists.single && !cur.backup {
        // nginx's single peer: used unless down, failing its health checks
        // or full; no tried bit, no `checked` update.
        let peer = &lists.primary.peers[0];
        if !peer.down && !peer.check.unhealthy && !peer.full() {
            return Some(0);
        }
    } else if let Some(i) = best(lists.get_mut(cur.backup), &mut cur.tried, now) {
        return Some(i);
    }
    if !cur.backup && lists.backup.is_some() {
        cur.backup = true;
        cur.tried.clear();
        return best(lists.get_mut(true), &mut cur.tried, now);
    }
    None
}
