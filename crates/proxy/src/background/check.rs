//! Active health checks of one `upstream {}` block in one worker (nginx
//! Plus's `health_check`, Portico's extension): every `interval`, a `GET
//! uri` (default `/`) with `Host:` the upstream's name to every peer not
//! marked `down`, all peers at once, each on a new connection. A check
//! passes when the answer's status satisfies `match=` (default: 2xx or
//! 3xx, as nginx Plus); a refused or reset connection, a timeout or an
//! unreadable head fails it. The balancer counts them (`fails=` in a row:
//! unhealthy, `passes=` in a row: healthy again; `balance/health.rs`).
//!
//! Timeouts: connecting within `proxy_connect_timeout`, the whole check
//! within `proxy_read_timeout`, both at most `interval` (a check never
//! overlaps the next round). The first round starts at once.
//! Only the answer's head is read; the connection is then closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use portico_config::site::HealthCheck;
use portico_proto::http1::{ResponseLimits, parse_response_head};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::GroupSlot;
use crate::balance::{CheckRule, CheckTarget, HealthChange};
use crate::target::PeerAddr;

/// The checks of one block.
#[derive(Debug, Clone)]
pub struct HealthChecker {
    slot: Arc<GroupSlot>,
    /// `Host:` of the checks and the block's name in messages.
    upstream: String,
    check: HealthCheck,
    connect_timeout: Duration,
    timeout: Duration,
}

/// Largest answer head a check reads.
const MAX_HEAD: usize = 16 * 1024;

impl HealthChecker {
    /// Checks of the group in `slot`, named `upstream`, as `check` says;
    /// `connect_timeout` and `read_timeout` are the proxying location's.
    pub fn new(
        slot: Arc<GroupSlot>,
        upstream: &str,
        check: HealthCheck,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> HealthChecker {
        let interval = check.interval.max(Duration::from_millis(1));
        HealthChecker {
            slot,
            upstream: upstream.to_string(),
            connect_timeout: connect_timeout.min(interval),
            timeout: read_timeout.min(interval),
            check,
        }
    }

    /// Check every `interval`, for ever (the runtime ends it).
    pub async fn run(self) {
        let interval = self.check.interval.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.round().await;
        }
    }

    /// One check of every peer, recorded in the current group.
    pub async fn round(&self) {
        let group = self.slot.current();
        let targets = group.check_targets();
        let mut probes = Vec::with_capacity(targets.len());
        for target in targets {
            let addr = target.addr.clone();
            let (host, uri) = (self.upstream.clone(), self.check.uri.clone());
            let (connect, timeout) = (self.connect_timeout, self.timeout);
            let probe = tokio::spawn(async move {
                tokio::time::timeout(timeout, probe(&addr, &host, &uri, connect))
                    .await
                    .unwrap_or_else(|_| Err("timed out".to_string()))
            });
            probes.push((target, probe));
        }
        let rule = CheckRule {
            fails: self.check.fails,
            passes: self.check.passes,
        };
        for (target, probe) in probes {
            let result = probe
                .await
                .unwrap_or_else(|e| Err(format!("check task failed: {e}")));
            let verdict = self.judge(&result);
            if let Some(change) = group.record_check(&target, verdict.is_ok(), rule) {
                self.log_change(&target, change, verdict.err());
            }
        }
    }

    /// Whether an answer (or the failure to get one) passes.
    fn judge(&self, result: &Result<u16, String>) -> Result<(), String> {
        let status = *result.as_ref().map_err(Clone::clone)?;
        let passes = match &self.check.matcher {
            Some(m) => m.passes(status),
            None => (200..400).contains(&status),
        };
        if passes {
            Ok(())
        } else {
            Err(format!("status {status} does not match"))
        }
    }

    fn log_change(&self, target: &CheckTarget, change: HealthChange, why: Option<String>) {
        let (level, what) = match change {
            HealthChange::Unhealthy => ("warn", "unhealthy"),
            HealthChange::Healthy => ("notice", "healthy"),
        };
        let why = why.map(|w| format!(": {w}")).unwrap_or_default();
        portico_server::logln!(
            "[{level}] peer is {what} while checking, health check \"{}\" of peer {} in upstream \"{}\"{why}",
            self.check.uri,
            target.name,
            self.upstream
        );
    }
}

/// One check: the status of `GET uri` at `addr`, or why there is none.
pub async fn probe(
    addr: &PeerAddr,
    host: &str,
    uri: &str,
    connect_timeout: Duration,
) -> Result<u16, String> {
    let mut stream = addr
        .connect(connect_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let limits = ResponseLimits {
        max_head: MAX_HEAD,
        ..ResponseLimits::default()
    };
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("recv: {e}"))?
            == 0
        {
            return Err("closed before a complete answer head".to_string());
        }
        match parse_response_head(&mut buf, &limits, false) {
            Ok(Some(head)) if (100..200).contains(&head.status) => continue,
            Ok(Some(head)) => return Ok(head.status),
            Ok(None) => continue,
            Err(e) => return Err(format!("invalid answer: {e}")),
        }
    }
}
