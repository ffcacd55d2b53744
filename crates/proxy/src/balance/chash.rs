//! `hash KEY consistent` (`ngx_http_upstream_hash_module.c`, ketama as in
//! Cache::Memcached::Fast). At load, each primary peer (down ones too) puts
//! `160 × weight` points on a ring: from `base = crc32(HOST "\0" PORT)`
//! (split from the server text as written), point j is `base` continued
//! with the previous point's 4 little-endian bytes (0 for the first).
//! Points are sorted and duplicates dropped. A request starts at the first
//! point `>= crc32(KEY)` (wrapping), picks by smooth WRR among the eligible
//! peers sharing that point's server text (the addresses of one name), and
//! moves to the next point when none is; after 20, round-robin.

use super::KEY_TRIES;
use super::crc32::{Crc32, crc32};
use super::peer::{Cursor, Lists};
use super::round_robin;

/// Points per unit of weight.
const POINTS_PER_WEIGHT: u64 = 160;

/// One ring point: its hash and the id of the server text it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    pub hash: u32,
    pub server: u32,
}

/// `(HOST, PORT)` of a server text as nginx splits it: `unix:PATH` →
/// (PATH, ""); a trailing `:DIGITS` → split there; else (text, "").
pub(crate) fn split_server(text: &str) -> (&[u8], &[u8]) {
    let b = text.as_bytes();
    if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"unix:") {
        return (&b[5..], b"");
    }
    for j in 0..b.len() {
        let c = b[b.len() - j - 1];
        if c == b':' {
            return (&b[..b.len() - j - 1], &b[b.len() - j..]);
        }
        if !c.is_ascii_digit() {
            break;
        }
    }
    (b, b"")
}

/// The ring over `peers`: (server text, its id, weight) per primary peer,
/// in configuration order.
pub(crate) fn build(peers: &[(&str, u32, u64)]) -> Vec<Point> {
    let mut points = Vec::new();
    for &(text, server, weight) in peers {
        let (host, port) = split_server(text);
        let base = Crc32::new().update(host).update(b"\0").update(port);
        let mut prev = 0u32;
        for _ in 0..weight * POINTS_PER_WEIGHT {
            let hash = base.update(&prev.to_le_bytes()).finish();
            points.push(Point { hash, server });
            prev = hash;
        }
    }
    points.sort_by_key(|p| p.hash);
    points.dedup_by_key(|p| p.hash);
    points
}

/// `ngx_http_upstream_find_chash_point`: the first point `>= hash`
/// (`points.len()` when past the last: the modulo wraps it).
pub(crate) fn find(points: &[Point], hash: u32) -> usize {
    points.partition_point(|p| p.hash < hash)
}

/// One request's consistent-hash data.
#[derive(Debug, Clone)]
pub(crate) struct ChashState {
    point: usize,
    tries: u32,
    empty_key: bool,
}

impl ChashState {
    pub(super) fn new(points: &[Point], key: &[u8]) -> ChashState {
        ChashState {
            point: find(points, crc32(key)),
            tries: 0,
            empty_key: key.is_empty(),
        }
    }
}

/// `ngx_http_upstream_get_chash_peer`: an index in the cursor's list.
/// `servers[i]` is the server-text id of the list's peer i.
pub(crate) fn get(
    lists: &mut Lists,
    cur: &mut Cursor,
    st: &mut ChashState,
    points: &[Point],
    servers: &[u32],
    now: i64,
) -> Option<usize> {
    if st.tries > KEY_TRIES || lists.single_at(cur.backup) || st.empty_key || points.is_empty() {
        return round_robin::get(lists, cur, now);
    }
    let list = lists.get_mut(cur.backup);
    let best = loop {
        let server = points[st.point % points.len()].server;
        let mut best: Option<(usize, i64)> = None;
        let mut total = 0i64;
        for (i, peer) in list.peers.iter_mut().enumerate() {
            if cur.tried.get(i) || !peer.usable(now) || servers.get(i) != Some(&server) {
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
        if let Some((b, _)) = best {
            list.peers[b].current_weight -= total;
            break b;
        }
        st.point += 1;
        st.tries += 1;
        if st.tries > KEY_TRIES {
            return round_robin::get(lists, cur, now);
        }
    };
    list.peers[best].mark_checked(now);
    cur.tried.set(best);
    Some(best)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use portico_config::site::{Balancer, Upstream};

    use super::super::tests::{group, letter};
    use super::super::{Outcome, PeerAddr, PickInput, UpstreamGroup};
    use super::*;

    #[test]
    fn server_text_splits_as_nginx_splits_it() {
        let table: [(&str, &str, &str); 8] = [
            ("127.0.0.1:8080", "127.0.0.1", "8080"),
            ("unix:/run/a.sock", "/run/a.sock", ""),
            ("UNIX:/x", "/x", ""),
            ("app.internal", "app.internal", ""),
            ("[::1]:80", "[::1]", "80"),
            ("[::1]", "[::1]", ""),
            ("host:", "host", ""),
            ("a1b2", "a1b2", ""),
        ];
        for (text, host, port) in table {
            let got = split_server(text);
            assert_eq!(got, (host.as_bytes(), port.as_bytes()), "{text}");
        }
    }

    #[test]
    fn ring_has_160_points_per_weight_chained_from_the_base_crc() {
        let ring = build(&[("127.0.0.1:29081", 0, 1), ("127.0.0.1:29082", 1, 2)]);
        assert_eq!(ring.len(), 480);
        assert!(ring.windows(2).all(|w| w[0].hash < w[1].hash));
        // Point 0 of a server: crc32(host "\0" port, then 4 zero bytes).
        let first = crc32(b"127.0.0.1\x0029081\x00\x00\x00\x00");
        assert!(ring.iter().any(|p| p.hash == first && p.server == 0));
        let second = crc32(&[&b"127.0.0.1\x0029081"[..], &first.to_le_bytes()].concat());
        assert!(ring.iter().any(|p| p.hash == second && p.server == 0));
    }

    fn owner(g: &UpstreamGroup, key: &str) -> char {
        let now = g.epoch();
        let mut a = g.start(PickInput {
            hash_key: Some(key.as_bytes()),
            ..PickInput::default()
        });
        let Some(p) = a.pick(now) else { return '-' };
        let l = letter(&p);
        let _ = a.release(p, Outcome::Success, now);
        l
    }

    #[test]
    fn keys_of_live_peers_stay_put_when_a_peer_goes_down() {
        let keys: Vec<String> = (0..200).map(|i| format!("key{i}")).collect();
        let all = group(
            Balancer::Hash {
                key: "$k".into(),
                consistent: true,
            },
            &["A", "B", "C"],
        );
        let c_down = group(
            Balancer::Hash {
                key: "$k".into(),
                consistent: true,
            },
            &["A", "B", "C down"],
        );
        let mut moved = 0;
        for k in &keys {
            let (before, after) = (owner(&all, k), owner(&c_down, k));
            if before == 'C' {
                moved += 1;
                assert_ne!(after, 'C');
            } else {
                assert_eq!(before, after, "{k}");
            }
        }
        assert!(moved > 20, "C owned only {moved} of 200 keys");
    }

    #[test]
    fn addresses_of_one_name_share_its_points_by_round_robin() {
        // One server line, `app.internal:29081`, resolving to two addresses.
        let up = Upstream {
            name: "u".into(),
            servers: vec![portico_config::site::UpstreamServer {
                target: portico_config::site::UpstreamTarget::Tcp {
                    host: "app.internal".into(),
                    port: 29081,
                },
                name: "app.internal:29081".into(),
                ..Default::default()
            }],
            balancer: Balancer::Hash {
                key: "$k".into(),
                consistent: true,
            },
            origin: String::new(),
            ..Default::default()
        };
        let addr = |port| PeerAddr::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        let g = match UpstreamGroup::new(&up, &[vec![addr(29081), addr(29082)]]) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        };
        let picks: String = (0..4).map(|_| owner(&g, "same-key")).collect();
        assert_eq!(picks, "ABAB");
    }
}
