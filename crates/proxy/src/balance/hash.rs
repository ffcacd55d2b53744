//! `hash KEY` without `consistent` (`ngx_http_upstream_hash_module.c`,
//! Cache::Memcached compatible): attempt n adds
//! `(crc32([n if n > 0] KEY) >> 16) & 0x7fff` to a running sum and walks
//! the primary list by configured weight at `sum % total_weight` (`down`
//! peers stay in the walk). A tried, down, failed or full peer → the next
//! attempt; after 20, or with an empty key or a single peer: round-robin.

use super::KEY_TRIES;
use super::crc32::Crc32;
use super::peer::{Cursor, Lists};
use super::round_robin;

/// One request's `hash` data (`ngx_http_upstream_hash_peer_data_t`).
#[derive(Debug, Clone)]
pub(crate) struct HashState {
    key: Vec<u8>,
    hash: u32,
    rehash: u64,
    tries: u32,
}

impl HashState {
    pub(super) fn new(key: &[u8]) -> HashState {
        HashState {
            key: key.to_vec(),
            hash: 0,
            rehash: 0,
            tries: 0,
        }
    }
}

/// `ngx_http_upstream_get_hash_peer`: an index in the cursor's list.
pub(crate) fn get(
    lists: &mut Lists,
    cur: &mut Cursor,
    st: &mut HashState,
    now: i64,
) -> Option<usize> {
    let total = lists.get(cur.backup).total_weight;
    if st.tries > KEY_TRIES || lists.single_at(cur.backup) || st.key.is_empty() || total == 0 {
        return round_robin::get(lists, cur, now);
    }
    let list = lists.get_mut(cur.backup);
    let p = loop {
        let mut crc = Crc32::new();
        if st.rehash > 0 {
            crc = crc.update(st.rehash.to_string().as_bytes());
        }
        let h = (crc.update(&st.key).finish() >> 16) & 0x7fff;
        st.hash = st.hash.wrapping_add(h);
        st.rehash += 1;
        let p = list.walk(u64::from(st.hash) % total);
        if !cur.tried.get(p) && list.peers[p].usable(now) {
            break p;
        }
        st.tries += 1;
        if st.tries > KEY_TRIES {
            return round_robin::get(lists, cur, now);
        }
    };
    list.peers[p].mark_checked(now);
    cur.tried.set(p);
    Some(p)
}
