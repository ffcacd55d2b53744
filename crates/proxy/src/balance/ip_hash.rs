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
    pub(super) fn new(client: Option<IpAddr>) -> IpHashState {
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

#[cfg(test)]
mod tests {
    use portico_config::site::Balancer;

    use super::super::tests::{group, letter};
    use super::super::{Outcome, PickInput};

    fn pick(specs: &[&str], client: Option<&str>) -> char {
        let g = group(Balancer::IpHash, specs);
        let now = g.epoch();
        let mut a = g.start(PickInput {
            client_ip: client.and_then(|c| c.parse().ok()),
            ..PickInput::default()
        });
        let Some(p) = a.pick(now) else { return '-' };
        let l = letter(&p);
        let _ = a.release(p, Outcome::Success, now);
        l
    }

    #[test]
    fn ipv4_clients_hash_by_their_first_three_octets() {
        // 89 → 127, 0, 0 → 4040; 4040 % 3 = 2 → C (nginx.md §1.4).
        for client in ["127.0.0.1", "127.0.0.2", "127.0.0.200"] {
            assert_eq!(pick(&["A", "B", "C"], Some(client)), 'C', "{client}");
        }
    }

    #[test]
    fn unix_clients_hash_three_zero_bytes() {
        // 89 → 0, 0, 0 → 295; 295 % 3 = 1 → B.
        assert_eq!(pick(&["A", "B", "C"], None), 'B');
    }

    #[test]
    fn ipv6_clients_hash_all_sixteen_bytes() {
        // Same /24-like prefix, different last byte: different peers
        // (nginx observed fd00::1 → B, fd00::2 → C).
        assert_eq!(pick(&["A", "B", "C"], Some("fd00::1")), 'B');
        assert_eq!(pick(&["A", "B", "C"], Some("fd00::2")), 'C');
    }

    #[test]
    fn a_down_peer_moves_only_its_own_clients() {
        let clients = [
            "127.0.0.1",
            "127.0.1.1",
            "127.0.2.1",
            "127.0.3.1",
            "127.1.0.1",
        ];
        for c in clients {
            let before = pick(&["A", "B", "C"], Some(c));
            let after = pick(&["A", "B down", "C"], Some(c));
            if before != 'B' {
                assert_eq!(before, after, "{c}");
            } else {
                assert_ne!(after, 'B', "{c}");
            }
        }
    }
}
