//! `random` and `random two [least_conn]`
//! (`ngx_http_upstream_random_module.c`). A draw is `ngx_random() %
//! total_weight` located by binary search in the prefix sums of the
//! configured weights. `random`: redraw while the peer is tried, down,
//! failed or full. `two`: draw until two different eligible peers, keep
//! the one with fewer connections per weight, the second on a tie. Each
//! redraw counts; after 20, round-robin. No backup list.

use super::KEY_TRIES;
use super::peer::{Cursor, Lists};
use super::rng::RandomSource;
use super::round_robin;

/// Prefix sums of the primary peers' weights (`ranges[i].range`).
pub(crate) fn ranges(weights: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut sum = 0;
    weights
        .map(|w| {
            let start = sum;
            sum += w;
            start
        })
        .collect()
}

/// One request's random data: its redraw count.
#[derive(Debug, Clone, Default)]
pub(crate) struct RandomState {
    tries: u32,
}

/// `ngx_http_upstream_peek_random_peer`.
fn peek(ranges: &[u64], total: u64, rng: &mut RandomSource) -> usize {
    let x = u64::from(rng()) % total.max(1);
    let (mut i, mut j) = (0, ranges.len());
    while j - i > 1 {
        let k = (i + j) / 2;
        if x < ranges[k] {
            j = k;
        } else {
            i = k;
        }
    }
    i
}

/// `ngx_http_upstream_get_random_peer` / `_random2_peer`: an index in the
/// primary list.
///
/// nginx draws from the primary ranges even after a fallback moved the
/// request to a backup list (reachable only with `backup` written before
/// `random`); we go on with round-robin there instead.
pub(crate) fn get(
    lists: &mut Lists,
    cur: &mut Cursor,
    st: &mut RandomState,
    ranges: &[u64],
    two: bool,
    rng: &mut RandomSource,
    now: i64,
) -> Option<usize> {
    if st.tries > KEY_TRIES || lists.single_at(cur.backup) || cur.backup || ranges.is_empty() {
        return round_robin::get(lists, cur, now);
    }
    let total = lists.primary.total_weight;
    let list = &mut lists.primary;
    let mut prev: Option<usize> = None;
    let pick = loop {
        let i = peek(ranges, total, rng);
        let eligible = prev != Some(i) && !cur.tried.get(i) && list.peers[i].usable(now);
        if eligible {
            if !two {
                break i;
            }
            if let Some(p) = prev {
                let (a, b) = (&list.peers[i], &list.peers[p]);
                let lhs = u128::from(a.conns) * u128::from(b.weight.unsigned_abs());
                let rhs = u128::from(b.conns) * u128::from(a.weight.unsigned_abs());
                break if lhs > rhs { p } else { i };
            }
            prev = Some(i);
        }
        st.tries += 1;
        if st.tries > KEY_TRIES {
            return round_robin::get(lists, cur, now);
        }
    };
    list.peers[pick].mark_checked(now);
    cur.tried.set(pick);
    Some(pick)
}
