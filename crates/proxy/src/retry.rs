//! The peer-by-peer loop that `proxy_pass` and `uwsgi_pass` share: nginx's
//! `ngx_http_upstream_next`. It asks the group for a peer, makes one try
//! through an [`Exchange`] (the protocol's part), and goes to the next peer
//! only while tries are left, only for a failure the `*_next_upstream` set
//! lists, never for POST/LOCK/PATCH once sent (unless `non_idempotent`),
//! never after a body streamed unbuffered, never past
//! `*_next_upstream_timeout`. Every try is released to the balancer with
//! its outcome (passive health) and recorded for the `$upstream_*` strings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_config::site::NextUpstream;
use portico_server::{ProxyOutcome, Response, UpstreamTries};

use crate::balance::{Outcome, PickInput, TEMPORARILY_DISABLED, UpstreamGroup};
use crate::error::{ErrorKind, Level, Phase, ProxyError, Side};
use crate::log::{Peer, RequestFacts, UpstreamName};
use crate::target::PeerAddr;

/// `*_next_upstream`, `*_next_upstream_tries`, `*_next_upstream_timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub next: NextUpstream,
    /// 0: no limit.
    pub tries: u32,
    /// Zero: no limit.
    pub timeout: Duration,
}

/// One protocol's try at one peer.
pub(crate) trait Exchange {
    /// A response head read from a peer, its connection still open.
    type Answer;

    /// Send the request to `peer` and read the response head; `now`: the
    /// clock as the try starts.
    async fn attempt(&mut self, peer: &PeerAddr, now: Instant) -> Result<Self::Answer, ProxyError>;

    fn status(answer: &Self::Answer) -> u16;

    /// Keep the answer the tries end with, for the caller to take once
    /// [`run`] returns [`Finished::Answer`]: held here, not returned
    /// through the loop's `Result`, `Finished` and futures (some 240
    /// bytes, copied at each layer).
    fn keep(&mut self, answer: Self::Answer);

    /// The body went out streamed: no other peer can get it.
    fn body_streamed(&self) -> bool;

    /// POST, LOCK or PATCH.
    fn non_idempotent(&self) -> bool;

    /// nginx's `upstream:` in a log line for `peer`.
    fn upstream(&self, peer: Peer) -> UpstreamName;
}

/// How the loop ended.
pub(crate) enum Finished<'g> {
    /// A peer answered (the answer is the exchange's, [`Exchange::keep`]),
    /// from `addr`; `at`: the clock when its head was read.
    Answer { addr: &'g PeerAddr, at: Instant },
    /// Give up with nginx's own page for this status.
    Failed(u16),
}

/// Try peers of `group` until one answers for good or the rules say stop.
pub(crate) async fn run<'g, X: Exchange>(
    group: &'g UpstreamGroup,
    input: PickInput<'_>,
    rules: Rules,
    started: Instant,
    log: &RequestFacts,
    x: &mut X,
    tries: &mut Tries,
) -> Finished<'g> {
    let mut attempt = group.start(PickInput {
        next_upstream_tries: rules.tries as usize,
        ..input
    });
    loop {
        let now = portico_server::clock::now();
        let Some(picked) = attempt.pick(now) else {
            let e = ProxyError::new(ErrorKind::Connect, Phase::Connecting, "no live upstreams");
            let name = Peer::Name(Arc::from(group.name()));
            log.log(Some(&x.upstream(name)), &e);
            tries.0.push(group.name(), 502, Duration::ZERO);
            return Finished::Failed(502);
        };
        // The peer named in a line only when one is written.
        let addr = picked.addr;
        let peer_log =
            |x: &X, e: &ProxyError| log.log(Some(&x.upstream(Peer::Addr(addr.clone()))), e);
        let result = x.attempt(addr, now).await;
        // One clock read for the try's time and the balancer's release.
        let end = portico_server::clock::now();
        let took = end.saturating_duration_since(now);
        // nginx's `ngx_http_upstream_next` conditions, but the kind.
        let may_retry = |x: &X, sent: bool, tries_left: usize| {
            tries_left > 1
                && !x.body_streamed()
                && !(x.non_idempotent() && sent && !rules.next.non_idempotent)
                && (rules.timeout.is_zero()
                    || portico_server::clock::since(started) < rules.timeout)
        };
        match result {
            Ok(answer) => {
                let status = X::status(&answer);
                tries.push(picked.name, status, took);
                let retry =
                    rules.next.retries_status(status) && may_retry(x, true, attempt.tries_left());
                let outcome = match status {
                    _ if !retry => Outcome::Success,
                    403 | 404 => Outcome::NextNotCounted,
                    _ => Outcome::Failure,
                };
                let released = attempt.release(picked, outcome, end);
                if released.disabled {
                    peer_log(x, &disabled(Phase::ReadingHeader));
                }
                if retry {
                    continue; // the answer and its connection are dropped
                }
                x.keep(answer);
                return Finished::Answer { addr, at: end };
            }
            Err(e) => {
                tries.push(picked.name, e.status(), took);
                if e.side() == Side::Client {
                    // The client failed us; the peer is not to blame.
                    let _ = attempt.release(picked, Outcome::NextNotCounted, end);
                    log.log(None, &e);
                    return Finished::Failed(e.status());
                }
                peer_log(x, &e);
                let retry =
                    listed(&rules.next, &e) && may_retry(x, e.request_sent(), attempt.tries_left());
                // Errors, timeouts and invalid heads always count (nginx).
                let released = attempt.release(picked, Outcome::Failure, end);
                if released.disabled {
                    peer_log(x, &disabled(e.phase()));
                }
                if !retry {
                    return Finished::Failed(e.status());
                }
            }
        }
    }
}

/// Whether the `*_next_upstream` set lists the kind of a failed try.
fn listed(next: &NextUpstream, e: &ProxyError) -> bool {
    match e.kind() {
        _ if e.is_timeout() => next.timeout,
        ErrorKind::InvalidHeader | ErrorKind::HeaderTooBig => next.invalid_header,
        _ => next.error,
    }
}

/// `[warn] upstream server temporarily disabled while ...` (the phase of
/// the failure that reached `max_fails`).
fn disabled(phase: Phase) -> ProxyError {
    ProxyError::new(ErrorKind::Connect, phase, TEMPORARILY_DISABLED).with_level(Level::Warn)
}

/// The `$upstream_*` record of every try (formatted only when a variable
/// asks for it).
#[derive(Default)]
pub(crate) struct Tries(UpstreamTries);

impl Tries {
    fn push(&mut self, addr: &Arc<str>, status: u16, took: Duration) {
        self.0.push_shared(addr, status, took);
    }

    pub(crate) fn outcome(self, response: Response, from_upstream: bool) -> ProxyOutcome {
        ProxyOutcome {
            response,
            from_upstream,
            tries: self.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tries_are_listed_as_nginx_formats_them() {
        let mut tries = Tries::default();
        tries.push(&Arc::from("127.0.0.1:8001"), 502, Duration::from_millis(3));
        tries.push(
            &Arc::from("unix:/run/a.sock"),
            200,
            Duration::from_micros(1_234_567),
        );
        assert_eq!(tries.0.addr(), "127.0.0.1:8001, unix:/run/a.sock");
        let (mut status, mut time) = (Vec::new(), Vec::new());
        tries.0.write_status(&mut status);
        tries.0.write_response_time(&mut time);
        assert_eq!(status, b"502, 200");
        assert_eq!(time, b"0.003, 1.234");
    }

    #[test]
    fn upstream_addr_is_the_lone_peer_or_every_peer_tried() {
        let mut tries = Tries::default();
        assert_eq!(tries.0.addr(), "");
        let a: Arc<str> = Arc::from("10.0.0.1:80");
        tries.push(&a, 200, Duration::ZERO);
        assert_eq!(tries.0.addr(), "10.0.0.1:80");
        tries.push(&Arc::from("10.0.0.2:80"), 502, Duration::ZERO);
        tries.push(&a, 200, Duration::ZERO);
        assert_eq!(tries.0.addr(), "10.0.0.1:80, 10.0.0.2:80, 10.0.0.1:80");
    }

    #[test]
    fn only_listed_failure_kinds_are_retried() {
        let next = NextUpstream::default();
        let refused = ProxyError::new(ErrorKind::Connect, Phase::Connecting, "refused");
        let timeout = ProxyError::timeout(Phase::ReadingHeader);
        let bad = ProxyError::new(ErrorKind::InvalidHeader, Phase::ReadingHeader, "bad");
        assert!(listed(&next, &refused) && listed(&next, &timeout));
        assert!(!listed(&next, &bad));
        assert!(!listed(&NextUpstream::OFF, &refused));
    }
}
