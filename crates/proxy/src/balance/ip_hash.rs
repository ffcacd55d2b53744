//! `ip_hash` (`ngx_http_upstream_ip_hash_module.c`): the client's /24
//! (IPv4: first three octets), whole IPv6 address, or three zero bytes
//! (unix socket) keeps a client on one peer.
//!
//! `hash` starts at 89; each attempt runs every key byte through
//! `hash = (hash * 113 + byte) % 6271`, walks the primary list by
//! configured weight (`down` peers stay in the walk, so marking one down
//! moves only its own clients) and retries from the current hash when the
//! peer is tried, down, failed or full: after 20 misses, round-robin.

use std::net::IpAddr;

use super::KEY_TRIES;
use super::peer::{Cursor, Lists};
use super::round_robin;

/// nginx's initial hash.
const SEED: u64 = 89;
/// `hash = (hash * MULTIPLIER + byte) % MODULUS`.
const MULTIPLIER: u64 = 113;
const MODULUS: u64 = 6271;

/// One request's `ip_hash` data (`ngx_http_upstream_ip_hash_peer_data_t`).
#[derive(Debug, Clone)]
pub(crate) struct IpHashState {
    addr: [u8; 16],
    len: usize,
    hash: u64,
    tries: u32,
}

impl IpHashState {
    pub fn new(client: Option<IpAddr>) -> IpHashState {
        let mut addr = [0u8; 16];
        let len = match client {
            Some(IpAddr::V4(v4)) => {
                addr[..4].copy_from_slice(&v4.octets());
                3
            }
            Some(IpAddr::V6(v6)) => {
                addr.copy_from_slice(&v6.octets());
                16
            }
            // A unix-socket client: nginx's 3-byte pseudo address, zeros.
            None => 3,
        };
        IpHashState {
            addr,
            len,
            hash: SEED,
            tries: 0,
        }
    }
}

/// `ngx_http_upstream_get_ip_hash_peer`: an index in the cursor's list.
pub(crate) fn get(
    lists: &mut Lists,
    cur: &mut Cursor,
    st: &mut IpHashState,
    now: i64,
) -> Option<usize> {
    let total = lists.get(cur.backup).total_weight;
    if st.tries > KEY_TRIES || lists.single_at(cur.backup) || total == 0 {
        return round_robin::get(lists, cur, now);
    }
    let list = lists.get_mut(cur.backup);
    let mut hash = st.hash;
    let p = loop {
        for &b in &st.addr[..st.len] {
            hash = (hash * MULTIPLIER + u64::from(b)) % MODULUS;
        }
        let p = list.walk(hash % total);
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
    st.hash = hash;
    Some(p)
}
