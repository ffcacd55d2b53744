//! The balancers against nginx: pick sequences observed on the real nginx
//! 1.22.1 (`scripts/nginx_balancer_sequences.py`, one worker, backends
//! A, B, C... on 127.0.0.1:29081, :29082...) replayed through a simulated
//! retry loop (the API rules are in api_tests.rs).
//! Shared helpers for the method files' tests live here too.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use portico_config::site::{Balancer, Upstream, UpstreamServer, UpstreamTarget};

use super::*;

/// The script's first backend port (A); B is +1, and so on.
pub(super) const BASE_PORT: u16 = 29081;

/// `"A weight=2 down"` → a server line on A's port; `dead` is the
/// simulation's business and ignored here.
pub(super) fn server(spec: &str) -> UpstreamServer {
    let mut words = spec.split_whitespace();
    let letter = words.next().and_then(|w| w.bytes().next()).unwrap_or(b'A');
    let port = BASE_PORT + u16::from(letter - b'A');
    // `host=NAME`: the server written by name (resolving to 127.0.0.1).
    let host = spec
        .split_whitespace()
        .find_map(|w| w.strip_prefix("host="))
        .unwrap_or("127.0.0.1");
    let mut s = UpstreamServer {
        target: UpstreamTarget::Tcp {
            host: host.into(),
            port,
        },
        name: format!("{host}:{port}"),
        ..UpstreamServer::default()
    };
    for w in words {
        let num = |v: &str| v.parse::<u32>().unwrap_or_default();
        match w.split_once('=') {
            Some(("weight", v)) => s.weight = num(v),
            Some(("max_fails", v)) => s.max_fails = num(v),
            Some(("max_conns", v)) => s.max_conns = num(v),
            Some(("fail_timeout", v)) => s.fail_timeout = Duration::from_secs(num(v).into()),
            _ if w == "backup" => s.backup = true,
            _ if w == "down" => s.down = true,
            _ => {}
        }
    }
    s
}

/// `upstream u { ... }` from specs like `["A weight=2", "B dead"]`.
pub(super) fn group(balancer: Balancer, specs: &[&str]) -> UpstreamGroup {
    let up = Upstream {
        name: "u".into(),
        servers: specs.iter().map(|s| server(s)).collect(),
        balancer,
        origin: "test.conf:1".into(),
        ..Default::default()
    };
    let resolved: Vec<Vec<PeerAddr>> = up
        .servers
        .iter()
        .map(|s| resolve_target(&s.target).unwrap_or_default())
        .collect();
    match UpstreamGroup::new(&up, &resolved) {
        Ok(g) => g,
        Err(e) => panic!("test upstream: {e}"),
    }
}

/// The letter of a picked peer (from its port).
pub(super) fn letter(p: &Picked<'_>) -> char {
    match p.addr {
        PeerAddr::Tcp(a) => char::from(b'A' + (a.port() - BASE_PORT) as u8),
        PeerAddr::Unix(_) => '?',
    }
}

/// One request of a scenario.
#[derive(Debug, Clone, Copy)]
pub(super) enum Req {
    Plain,
    From(&'static str),
    Key(&'static str),
    Sleep(f64),
}

/// nginx's default retry loop (`proxy_next_upstream error timeout`) over
/// peers of which `dead` refuse connections; each request as the script
/// prints it: `B>C`, `A=502`, `sleep 3.2`.
pub(super) fn simulate(group: &UpstreamGroup, dead: &str, reqs: &[Req]) -> Vec<String> {
    let dead: HashSet<char> = dead.chars().collect();
    // Mid-second, as the observed runs are (any offset inside a second).
    let mut now = group.epoch() + Duration::from_millis(300);
    let mut out = Vec::new();
    for req in reqs {
        let (client_ip, key): (Option<IpAddr>, Option<&[u8]>) = match req {
            Req::Sleep(s) => {
                now += Duration::from_secs_f64(*s);
                out.push(format!("sleep{s}"));
                continue;
            }
            Req::Plain => (Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), None),
            Req::From(ip) => (ip.parse().ok(), None),
            Req::Key(k) => (None, Some(k.as_bytes())),
        };
        let mut attempt = group.start(PickInput {
            client_ip,
            hash_key: key,
            next_upstream_tries: 0,
        });
        let mut tried = Vec::new();
        let mut ok = false;
        loop {
            let Some(p) = attempt.pick(now) else {
                tried.push("u".to_string());
                break;
            };
            let l = letter(&p);
            tried.push(l.to_string());
            if !dead.contains(&l) {
                let _ = attempt.release(p, Outcome::Success, now);
                ok = true;
                break;
            }
            let _ = attempt.release(p, Outcome::Failure, now);
            if attempt.tries_left() == 0 {
                break;
            }
        }
        let picks = tried.join(">");
        out.push(if ok { picks } else { format!("{picks}=502") });
    }
    out
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

const KEYS: [&str; 12] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "user42", "x",
];
const V4_CLIENTS: [&str; 10] = [
    "127.0.0.1",
    "127.0.1.1",
    "127.0.2.1",
    "127.0.3.1",
    "127.0.4.1",
    "127.0.5.1",
    "127.0.6.1",
    "127.0.7.1",
    "127.3.9.1",
    "127.1.0.1",
];
const V4_MAPPED_CLIENTS: [&str; 10] = [
    "::ffff:127.0.0.1",
    "::ffff:127.0.0.2",
    "::ffff:127.0.0.3",
    "::ffff:127.0.0.4",
    "::ffff:127.0.0.5",
    "::ffff:127.0.0.6",
    "::ffff:127.0.0.7",
    "::ffff:127.0.0.8",
    "::ffff:127.0.0.9",
    "::ffff:127.0.0.10",
];
const V6_CLIENTS: [&str; 10] = [
    "fd00::1",
    "fd00::2",
    "fd00::3",
    "fd00::4",
    "fd00::5",
    "fd00:1::1",
    "fd00:2::1",
    "fd00:3::1",
    "2001:db8::1",
    "2001:db8::2",
];

fn plain(n: usize) -> Vec<Req> {
    vec![Req::Plain; n]
}
fn from(clients: &[&'static str]) -> Vec<Req> {
    clients.iter().map(|c| Req::From(c)).collect()
}
fn keys() -> Vec<Req> {
    KEYS.iter().map(|k| Req::Key(k)).collect()
}
fn hash(consistent: bool) -> Balancer {
    Balancer::Hash {
        key: "$arg_k".into(),
        consistent,
    }
}

/// (scenario, method, servers, dead peers, requests, nginx's output).
type Scenario = (
    &'static str,
    Balancer,
    Vec<&'static str>,
    &'static str,
    Vec<Req>,
    &'static str,
);

#[test]
fn sequences_match_nginx_observed_output() {
    use Balancer::*;
    let rr = || RoundRobin;
    let mut dead_then_sleep = plain(6);
    dead_then_sleep.push(Req::Sleep(3.2));
    dead_then_sleep.extend(plain(4));
    // (scenario, method, servers, dead peers, requests, nginx's observed
    // output). Every expected value below is nginx 1.22.1's observed
    // output, pasted from `python3 scripts/nginx_balancer_sequences.py`.
    let table: Vec<Scenario> = vec![
        (
            "rr_2_1",
            rr(),
            vec!["A weight=2", "B"],
            "",
            plain(8),
            "A B A A B A A B",
        ),
        (
            "rr_5_1_1",
            rr(),
            vec!["A weight=5", "B", "C"],
            "",
            plain(14),
            "A A B A C A A A A B A C A A",
        ),
        (
            "rr_equal",
            rr(),
            vec!["A", "B", "C"],
            "",
            plain(6),
            "A B C A B C",
        ),
        (
            "rr_down",
            rr(),
            vec!["A", "B down", "C weight=2"],
            "",
            plain(6),
            "C A C C A C",
        ),
        (
            "rr_dead_fail_timeout",
            rr(),
            vec!["A", "B fail_timeout=2", "C"],
            "B",
            dead_then_sleep,
            "A B>C C A C A sleep3.2 C A C B>A",
        ),
        (
            "rr_dead_max_fails_0",
            rr(),
            vec!["A", "B max_fails=0", "C"],
            "B",
            plain(6),
            "A B>C C A B>C A",
        ),
        (
            "rr_dead_max_fails_3_weight_4",
            rr(),
            vec!["A", "B weight=4 max_fails=3 fail_timeout=30", "C"],
            "B",
            plain(10),
            "B>A C B>A A B>C C A C A C",
        ),
        (
            "backup_when_primaries_dead",
            rr(),
            vec!["A", "B", "C backup", "D backup weight=2"],
            "AB",
            plain(6),
            "A>B>D C D D C D",
        ),
        (
            "backup_unused_while_primaries_live",
            rr(),
            vec!["A", "B", "C backup"],
            "",
            plain(4),
            "A B A B",
        ),
        (
            "rr_all_dead",
            rr(),
            vec!["A", "B", "C"],
            "ABC",
            plain(3),
            "A>B>C=502 u=502 u=502",
        ),
        (
            "least_conn_backup",
            LeastConn,
            vec!["A", "B", "C backup", "D backup weight=2"],
            "AB",
            plain(6),
            "A>B>D C D D C D",
        ),
        (
            "single_dead_never_disabled",
            rr(),
            vec!["A"],
            "A",
            plain(3),
            "A=502 A=502 A=502",
        ),
        (
            "ip_hash_v4",
            IpHash,
            vec!["A", "B", "C"],
            "",
            from(&V4_CLIENTS),
            "C A B C A B C A C B",
        ),
        (
            "ip_hash_v4_weights_down",
            IpHash,
            vec!["A weight=2", "B", "C down"],
            "",
            from(&V4_CLIENTS),
            "A A B B A A B A A A",
        ),
        (
            "ip_hash_v4_dead_peer",
            IpHash,
            vec!["A", "B", "C"],
            "B",
            from(&V4_CLIENTS),
            "C A B>A C A A C A C C",
        ),
        (
            "ip_hash_v4_mapped_v6",
            IpHash,
            vec!["A", "B", "C"],
            "",
            from(&V4_MAPPED_CLIENTS),
            "C A B C A B C A B C",
        ),
        (
            "ip_hash_v6",
            IpHash,
            vec!["A", "B", "C"],
            "",
            from(&V6_CLIENTS),
            "B C A B C B B C C A",
        ),
        (
            "hash_key",
            hash(false),
            vec!["A", "B", "C"],
            "",
            keys(),
            "C A C C C C A B A A A B",
        ),
        (
            "hash_key_weights_down",
            hash(false),
            vec!["A weight=2", "B", "C down"],
            "",
            keys(),
            "A B A A B A A A A A A A",
        ),
        (
            "hash_key_dead_peer",
            hash(false),
            vec!["A", "B", "C"],
            "B",
            keys(),
            "C A C C C C A B>A A A A A",
        ),
        (
            "hash_empty_key_round_robin",
            hash(false),
            vec!["A weight=2", "B"],
            "",
            plain(6),
            "A B A A B A",
        ),
        (
            "chash_key",
            hash(true),
            vec!["A", "B", "C"],
            "",
            keys(),
            "C A C A C C C C B B A B",
        ),
        (
            "chash_key_weights_down",
            hash(true),
            vec!["A weight=2", "B", "C down"],
            "",
            keys(),
            "A A A A A A B B B B A B",
        ),
        (
            "chash_key_dead_peer",
            hash(true),
            vec!["A", "B", "C"],
            "B",
            keys(),
            "C A C A C C C C B>C C A A",
        ),
        (
            "ip_hash_rehash_fallback",
            IpHash,
            vec!["A", "B weight=50 down", "C"],
            "",
            from(&V4_CLIENTS),
            "A A C A A C C A A C",
        ),
        (
            "hash_rehash_fallback",
            hash(false),
            vec!["A", "B weight=50 down", "C"],
            "",
            keys(),
            "A A C C A C A A C A A A",
        ),
        (
            "chash_rehash_fallback",
            hash(true),
            vec!["A", "B weight=50 down", "C"],
            "",
            keys(),
            "C A C A C C C A C A C A",
        ),
        (
            "chash_hostname",
            hash(true),
            vec!["A host=localhost", "B", "C weight=2"],
            "",
            keys(),
            "C A C C C C C C B A A B",
        ),
        (
            "least_conn_sequential",
            LeastConn,
            vec!["A weight=2", "B"],
            "",
            plain(8),
            "A B A A B A A B",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, balancer, specs, dead, reqs, want) in table {
        let g = group(balancer, &specs);
        let got = simulate(&g, dead, &reqs);
        if got != words(want) {
            wrong.push(format!(
                "{name}:\n  nginx: {want}\n  ours:  {}",
                got.join(" ")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn next_upstream_tries_caps_the_retries_as_nginx_does() {
    // nginx's observed output with `proxy_next_upstream_tries 2`, A and B
    // dead: "A>B=502 C C".
    let g = group(Balancer::RoundRobin, &["A", "B", "C"]);
    let now = g.epoch();
    let mut out = Vec::new();
    for _ in 0..3 {
        let mut a = g.start(PickInput {
            next_upstream_tries: 2,
            ..PickInput::default()
        });
        let mut tried = Vec::new();
        let mut ok = false;
        while let Some(p) = a.pick(now) {
            let l = letter(&p);
            tried.push(l.to_string());
            ok = l == 'C';
            let outcome = if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            let _ = a.release(p, outcome, now);
            if ok || a.tries_left() == 0 {
                break;
            }
        }
        let picks = tried.join(">");
        out.push(if ok { picks } else { format!("{picks}=502") });
    }
    assert_eq!(out, words("A>B=502 C C"));
}

#[test]
fn least_conn_overlapping_requests_match_nginx() {
    // nginx's observed output: six requests 0.2 s apart, each held 1.2 s
    // (so every pick sees the earlier ones' connections).
    let g = group(Balancer::LeastConn, &["A", "B weight=2", "C"]);
    let now = g.epoch();
    let mut attempts: Vec<Attempt<'_>> = (0..6).map(|_| g.start(PickInput::default())).collect();
    let picks: Vec<String> = attempts
        .iter_mut()
        .filter_map(|a| a.pick(now).map(|p| letter(&p).to_string()))
        .collect();
    assert_eq!(picks, words("B A C B C A"));
}
