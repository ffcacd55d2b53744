//! uWSGI's stats document (`uwsgi_master_generate_stats`), built from the
//! scoreboard: the same keys, in the same order, with the same JSON types,
//! so uwsgitop and the stats exporters read Portico as they read uWSGI.
//! One key of Portico's own at the end: `upstreams`, every worker's view of
//! every upstream peer (balancer state is per worker; see `peer_slot.rs`).

use std::sync::atomic::Ordering;

use super::json::Json;
use super::{AppInfo, SocketInfo};
use crate::scoreboard::{MAX_APPS, Scoreboard};

/// The `version` Portico reports: uWSGI's schema, Portico's own version.
pub(crate) const STATS_VERSION: &str = concat!("portico-", env!("CARGO_PKG_VERSION"));

/// uWSGI's lock names, always listed (no lock is ever held here).
const LOCKS: [&str; 8] = [
    "user 0", "signal", "filemon", "timer", "rbtimer", "cron", "rpc", "snmp",
];

/// What the document says about the instance besides the scoreboard.
pub(crate) struct Instance<'a> {
    pub pid: i32,
    pub cwd: &'a str,
    pub sockets: &'a [SocketInfo],
    /// Current accept-queue length per socket (same order as `sockets`).
    pub queues: &'a [u32],
    pub apps: &'a [AppInfo],
}

/// The whole document.
pub(crate) fn document(board: &Scoreboard, instance: &Instance<'_>) -> Json {
    let listen_queue = instance.queues.iter().copied().max().unwrap_or(0);
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let sockets = instance
        .sockets
        .iter()
        .zip(instance.queues.iter().chain(std::iter::repeat(&0)))
        .map(|(s, queue)| {
            Json::obj([
                ("name", Json::str(s.name.clone())),
                ("proto", Json::str(s.proto)),
                ("queue", Json::uint((*queue).into())),
                ("max_queue", Json::uint(s.max_queue.into())),
                ("shared", Json::Int(0)),
                ("can_offload", Json::Int(0)),
            ])
        })
        .collect();
    let workers = (1..=board.workers())
        .map(|wid| worker(board, wid, instance.apps))
        .collect();
    Json::obj([
        ("version", Json::str(STATS_VERSION)),
        ("listen_queue", Json::uint(listen_queue.into())),
        ("listen_queue_errors", Json::Int(0)),
        ("signal_queue", Json::Int(0)),
        ("load", Json::uint(listen_queue.into())),
        ("pid", Json::Int(instance.pid.into())),
        ("uid", Json::uint(uid.into())),
        ("gid", Json::uint(gid.into())),
        ("cwd", Json::str(instance.cwd)),
        (
            "locks",
            Json::Arr(
                LOCKS
                    .iter()
                    .map(|name| Json::obj([(*name, Json::Int(0))]))
                    .collect(),
            ),
        ),
        ("sockets", Json::Arr(sockets)),
        ("workers", Json::Arr(workers)),
        ("upstreams", Json::Arr(upstreams(board))),
    ])
}

/// `upstreams`: one entry per worker and peer.
fn upstreams(board: &Scoreboard) -> Vec<Json> {
    board
        .peers()
        .into_iter()
        .map(|(wid, p)| {
            Json::obj([
                ("worker", Json::uint(wid as u64)),
                ("upstream", Json::str(p.upstream)),
                ("peer", Json::str(p.peer)),
                ("state", Json::str(p.state)),
                ("requests", Json::uint(p.requests)),
                ("failures", Json::uint(p.failures)),
                ("active", Json::uint(p.active)),
                (
                    "health_checks",
                    Json::obj([
                        ("checks", Json::uint(p.checks)),
                        ("fails", Json::uint(p.check_fails)),
                    ]),
                ),
            ])
        })
        .collect()
}

fn worker(board: &Scoreboard, wid: usize, apps: &[AppInfo]) -> Json {
    let w = board.worker(wid);
    let load = |a: &std::sync::atomic::AtomicU64| Json::uint(a.load(Ordering::Relaxed));
    let busy =
        (0..board.cores()).any(|c| board.core(wid, c).started_us.load(Ordering::Relaxed) != 0);
    let apps = apps
        .iter()
        .take(MAX_APPS)
        .enumerate()
        .map(|(id, app)| {
            Json::obj([
                ("id", Json::uint(id as u64)),
                ("modifier1", Json::Int(0)),
                ("mountpoint", Json::str(app.mountpoint.clone())),
                ("startup_time", Json::uint(app.startup_time)),
                ("requests", load(&w.app_requests[id])),
                ("exceptions", load(&w.app_exceptions[id])),
                ("chdir", Json::str(app.chdir.clone())),
            ])
        })
        .collect();
    let cores = (0..board.cores()).map(|c| core(board, wid, c)).collect();
    Json::obj([
        ("id", Json::uint(wid as u64)),
        ("pid", Json::Int(w.pid.load(Ordering::Relaxed).into())),
        (
            "accepting",
            Json::uint(w.accepting.load(Ordering::Relaxed).into()),
        ),
        ("requests", load(&w.requests)),
        ("delta_requests", load(&w.delta_requests)),
        ("exceptions", load(&w.exceptions)),
        ("harakiri_count", load(&w.harakiri_count)),
        ("signals", Json::Int(0)),
        ("signal_queue", Json::Int(0)),
        ("status", Json::str(if busy { "busy" } else { "idle" })),
        ("rss", load(&w.rss)),
        ("vsz", load(&w.vsz)),
        ("running_time", load(&w.response_time_us)),
        ("last_spawn", load(&w.last_spawn)),
        (
            "respawn_count",
            Json::uint(w.respawns.load(Ordering::Relaxed) + 1),
        ),
        ("tx", load(&w.bytes_sent)),
        ("avg_rt", load(&w.avg_rt_us)),
        ("apps", Json::Arr(apps)),
        ("cores", Json::Arr(cores)),
    ])
}

fn core(board: &Scoreboard, wid: usize, id: usize) -> Json {
    let slot = board.core(wid, id);
    let started = slot.started_us.load(Ordering::Acquire);
    let (vars, req_info) = if started != 0 {
        let r = slot.request();
        let (path, query) = r.uri.split_once('?').unwrap_or((&r.uri, ""));
        let mut vars: Vec<Json> = [
            ("REQUEST_METHOD", r.method.as_str()),
            ("REQUEST_URI", r.uri.as_str()),
            ("PATH_INFO", path),
            ("QUERY_STRING", query),
            ("SERVER_PROTOCOL", r.protocol.as_str()),
            ("REMOTE_ADDR", r.remote_addr.as_str()),
            ("HTTP_HOST", r.host.as_str()),
        ]
        .iter()
        .map(|(k, v)| Json::str(format!("{k}={v}")))
        .collect();
        vars.push(Json::str(""));
        (
            vars,
            vec![("request_start".to_string(), Json::uint(started / 1_000_000))],
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Json::obj([
        ("id", Json::uint(id as u64)),
        (
            "requests",
            Json::uint(slot.requests.load(Ordering::Relaxed)),
        ),
        ("static_requests", Json::Int(0)),
        ("routed_requests", Json::Int(0)),
        ("offloaded_requests", Json::Int(0)),
        ("write_errors", Json::Int(0)),
        ("read_errors", Json::Int(0)),
        ("in_request", Json::Int(i64::from(started != 0))),
        ("vars", Json::Arr(vars)),
        ("req_info", Json::Obj(req_info)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_core_shows_its_request_and_the_worker_is_busy() {
        let board = Scoreboard::new(2, 1).expect("map");
        board.worker(1).requests.store(5, Ordering::Relaxed);
        let core = board.core(2, 0);
        core.set_request(&[b"GET", b"/sleep?3", b"127.0.0.1", b"HTTP/1.1", b"h"]);
        core.started_us
            .store(1_795_210_878_000_000, Ordering::Relaxed);
        let sockets = [SocketInfo {
            name: "127.0.0.1:9090".into(),
            proto: "http",
            max_queue: 100,
            fd: -1,
        }];
        let apps = [AppInfo::default()];
        let doc = document(
            &board,
            &Instance {
                pid: 1,
                cwd: "/srv",
                sockets: &sockets,
                queues: &[3],
                apps: &apps,
            },
        )
        .render(true);
        assert!(doc.contains(r#""listen_queue":3,"#), "{doc}");
        assert!(
            doc.contains(r#""id":1,"pid":0,"accepting":0,"requests":5,"#),
            "{doc}"
        );
        assert!(doc.contains(r#""status":"busy""#), "{doc}");
        assert!(doc.contains(r#""in_request":1,"vars":["REQUEST_METHOD=GET","REQUEST_URI=/sleep?3","PATH_INFO=/sleep","QUERY_STRING=3","#), "{doc}");
        assert!(
            doc.contains(r#""req_info":{"request_start":1795210878}"#),
            "{doc}"
        );
        assert!(
            doc.contains(r#""in_request":0,"vars":[],"req_info":{}"#),
            "{doc}"
        );
        assert!(doc.ends_with(r#""upstreams":[]}"#), "{doc}");
    }

    #[test]
    fn upstream_peers_are_listed_per_worker() {
        let board = Scoreboard::new(2, 1).expect("map");
        board.peer(2, 0).publish(&crate::PeerRecord {
            upstream: "backend".into(),
            peer: "127.0.0.1:8081".into(),
            state: "unhealthy".into(),
            requests: 3,
            failures: 1,
            active: 0,
            checks: 9,
            check_fails: 4,
        });
        let doc = upstreams(&board)
            .into_iter()
            .map(|j| j.render(true))
            .collect::<Vec<_>>();
        assert_eq!(
            doc,
            vec![
                r#"{"worker":2,"upstream":"backend","peer":"127.0.0.1:8081","state":"unhealthy","requests":3,"failures":1,"active":0,"health_checks":{"checks":9,"fails":4}}"#
            ]
        );
    }
}
