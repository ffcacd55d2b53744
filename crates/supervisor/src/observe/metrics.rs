//! The Prometheus text exposition (format 0.0.4) of the scoreboard. Metric
//! names are listed in docs/observability.md; every family is written even
//! when all its values are zero, so dashboards never see gaps.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::SocketInfo;
use crate::peer_slot::{PEER_STATES, PeerRecord};
use crate::scoreboard::{LATENCY_BUCKETS_US, Scoreboard, WorkerSlot};

/// The Content-Type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, escaped as the exposition format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The whole exposition. `queues` are the sockets' current accept queues.
pub(crate) fn exposition(board: &Scoreboard, sockets: &[SocketInfo], queues: &[u32]) -> String {
    let mut out = String::with_capacity(4096);
    let workers: Vec<(usize, &WorkerSlot)> = (1..=board.workers())
        .map(|w| (w, board.worker(w)))
        .collect();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let per_worker = |out: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      f: &dyn Fn(usize, &WorkerSlot) -> String| {
        family(out, name, kind, help);
        for (wid, w) in &workers {
            let _ = writeln!(out, "{name}{{worker=\"{wid}\"}} {}", f(*wid, w));
        }
    };

    family(
        &mut out,
        "portico_requests_total",
        "counter",
        "Requests answered, by worker and status class.",
    );
    for (wid, w) in &workers {
        for (class, counter) in STATUS_CLASSES.iter().zip(&w.status_classes) {
            let _ = writeln!(
                out,
                "portico_requests_total{{worker=\"{wid}\",status=\"{class}\"}} {}",
                get(counter)
            );
        }
    }

    family(
        &mut out,
        "portico_request_duration_seconds",
        "histogram",
        "Time from a request's head to its last response byte, all workers.",
    );
    let mut cumulative = 0;
    for (i, le) in LATENCY_BUCKETS_US
        .iter()
        .map(|&us| seconds(us))
        .chain(std::iter::once("+Inf".to_string()))
        .enumerate()
    {
        cumulative += workers
            .iter()
            .map(|(_, w)| get(&w.latency_buckets[i]))
            .sum::<u64>();
        let le = le.trim_end_matches('0').trim_end_matches('.');
        let _ = writeln!(
            out,
            "portico_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let sum: u64 = workers.iter().map(|(_, w)| get(&w.response_time_us)).sum();
    let _ = writeln!(out, "portico_request_duration_seconds_sum {}", seconds(sum));
    let _ = writeln!(out, "portico_request_duration_seconds_count {cumulative}");

    per_worker(
        &mut out,
        "portico_requests_in_flight",
        "gauge",
        "Requests running in the app now.",
        &|wid, _| {
            (0..board.cores())
                .filter(|&c| board.core(wid, c).started_us.load(Ordering::Relaxed) != 0)
                .count()
                .to_string()
        },
    );
    per_worker(
        &mut out,
        "portico_exceptions_total",
        "counter",
        "Requests whose app raised an exception.",
        &|_, w| get(&w.exceptions).to_string(),
    );
    per_worker(
        &mut out,
        "portico_worker_respawns_total",
        "counter",
        "Times the worker was respawned (crash, harakiri, recycling).",
        &|_, w| get(&w.respawns).to_string(),
    );
    per_worker(
        &mut out,
        "portico_harakiri_total",
        "counter",
        "Workers killed by harakiri.",
        &|_, w| get(&w.harakiri_count).to_string(),
    );
    per_worker(
        &mut out,
        "portico_gil_wait_seconds_total",
        "counter",
        "Time Python threads waited for the GIL before running a request.",
        &|_, w| seconds(get(&w.gil_wait_us)),
    );
    per_worker(
        &mut out,
        "portico_app_seconds_total",
        "counter",
        "Time spent running the app (call and response iteration).",
        &|_, w| seconds(get(&w.app_time_us)),
    );
    per_worker(
        &mut out,
        "portico_sent_bytes_total",
        "counter",
        "Response bytes sent (headers and body).",
        &|_, w| get(&w.bytes_sent).to_string(),
    );
    per_worker(
        &mut out,
        "portico_worker_rss_bytes",
        "gauge",
        "Resident set size of the worker (sampled every second).",
        &|_, w| get(&w.rss).to_string(),
    );
    per_worker(
        &mut out,
        "portico_worker_vsz_bytes",
        "gauge",
        "Address space size of the worker (sampled every second).",
        &|_, w| get(&w.vsz).to_string(),
    );

    family(
        &mut out,
        "portico_listen_queue",
        "gauge",
        "Connections waiting in a socket's accept queue.",
    );
    for (s, q) in sockets.iter().zip(queues) {
        let _ = writeln!(
            out,
            "portico_listen_queue{{socket=\"{}\"}} {q}",
            label(&s.name)
        );
    }
    family(
        &mut out,
        "portico_listen_queue_max",
        "gauge",
        "A socket's accept-queue size (--listen).",
    );
    for s in sockets {
        let _ = writeln!(
            out,
            "portico_listen_queue_max{{socket=\"{}\"}} {}",
            label(&s.name),
            s.max_queue
        );
    }
    upstream_metrics(&mut out, &board.peers());
    out
}

/// A per-peer family: name, kind, help, value.
type PeerFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PeerRecord) -> u64,
);

/// `portico_upstream_*`: every worker's view of every upstream peer.
fn upstream_metrics(out: &mut String, peers: &[(usize, PeerRecord)]) {
    let labels = |wid: &usize, p: &PeerRecord| {
        format!(
            "worker=\"{wid}\",upstream=\"{}\",peer=\"{}\"",
            label(&p.upstream),
            label(&p.peer)
        )
    };
    let counters: [PeerFamily; 5] = [
        (
            "portico_upstream_requests_total",
            "counter",
            "Tries sent to an upstream peer, by worker (balancer state is per worker).",
            |p| p.requests,
        ),
        (
            "portico_upstream_failures_total",
            "counter",
            "Tries to an upstream peer that failed (passive health counts them).",
            |p| p.failures,
        ),
        (
            "portico_upstream_active",
            "gauge",
            "Tries to an upstream peer under way.",
            |p| p.active,
        ),
        (
            "portico_upstream_health_checks_total",
            "counter",
            "Active health checks (health_check) sent to an upstream peer.",
            |p| p.checks,
        ),
        (
            "portico_upstream_health_check_failures_total",
            "counter",
            "Active health checks of an upstream peer that failed.",
            |p| p.check_fails,
        ),
    ];
    for (name, kind, help, value) in counters {
        family(out, name, kind, help);
        for (wid, p) in peers {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(wid, p), value(p));
        }
    }
    family(
        out,
        "portico_upstream_peer_state",
        "gauge",
        "1 for an upstream peer's current state (up, down, unavail, unhealthy, backup).",
    );
    for (wid, p) in peers {
        for state in PEER_STATES {
            let _ = writeln!(
                out,
                "portico_upstream_peer_state{{{},state=\"{state}\"}} {}",
                labels(wid, p),
                u8::from(p.state == state)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counts_agree() {
        let board = Scoreboard::new(2, 1).expect("map");
        board.worker(1).count_response(200, 1_000);
        board.worker(2).count_response(404, 30_000);
        board.worker(2).count_response(500, 60_000_000);
        let text = exposition(&board, &[], &[]);
        assert!(text.contains("portico_requests_total{worker=\"2\",status=\"4xx\"} 1\n"));
        assert!(text.contains("portico_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("portico_request_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("portico_request_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("portico_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("portico_request_duration_seconds_count 3\n"));
    }

    #[test]
    fn upstream_peers_get_counters_and_one_state_set() {
        let board = Scoreboard::new(1, 1).expect("map");
        board.peer(1, 0).publish(&PeerRecord {
            upstream: "backend".into(),
            peer: "127.0.0.1:8081".into(),
            state: "unavail".into(),
            requests: 7,
            failures: 2,
            ..PeerRecord::default()
        });
        let text = exposition(&board, &[], &[]);
        let l = "worker=\"1\",upstream=\"backend\",peer=\"127.0.0.1:8081\"";
        assert!(text.contains(&format!("portico_upstream_requests_total{{{l}}} 7\n")));
        assert!(text.contains(&format!("portico_upstream_failures_total{{{l}}} 2\n")));
        assert!(text.contains(&format!(
            "portico_upstream_peer_state{{{l},state=\"unavail\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "portico_upstream_peer_state{{{l},state=\"up\"}} 0\n"
        )));
        assert!(text.contains("# TYPE portico_upstream_health_checks_total counter\n"));
    }
}
