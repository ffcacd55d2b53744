//! The `upstream {}` block as the Site model keeps it: its servers, balancer,
//! keepalive cache settings, resolver and active health checks (nginx Plus
//! syntax, Portico's extension). The proxy crate builds its peer groups
//! from these; nothing here connects anywhere.

use std::net::SocketAddr;
use std::time::Duration;

use super::UpstreamTarget;

/// `upstream NAME { server ...; }` as parsed (used by the proxy issue).
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub servers: Vec<UpstreamServer>,
    pub balancer: Balancer,
    /// `keepalive N` (idle connections cached per worker). `None`: not
    /// set, and the proxy takes nginx 1.29.7+'s default for an explicit
    /// upstream (32); `Some(0)`: `keepalive 0`, no cache (nginx 1.22's
    /// behaviour).
    pub keepalive: Option<usize>,
    /// `keepalive_timeout` in the block: an idle cached connection is
    /// closed after it (nginx's default 60s).
    pub keepalive_timeout: Duration,
    /// `keepalive_requests`: a cached connection serves at most this many
    /// requests (1000).
    pub keepalive_requests: u64,
    /// `keepalive_time`: a cached connection is not reused past this age (1h).
    pub keepalive_time: Duration,
    /// `zone NAME [SIZE]`: accepted and kept for messages; balancer state is
    /// per worker in Portico, as in nginx without a zone.
    pub zone: Option<String>,
    /// The resolver for `server ... resolve`: the block's own `resolver`,
    /// else the `http {}` one; `None`: the system's (getaddrinfo).
    pub resolver: Option<Resolver>,
    /// `health_check` (nginx Plus syntax) of each location that proxies to
    /// this group, in configuration order: active checks (Portico's
    /// extension).
    pub health_checks: Vec<HealthCheck>,
    pub origin: String,
}

/// nginx's default upstream `keepalive_timeout` (60s).
pub const DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's default upstream `keepalive_requests` (1000).
pub const DEFAULT_UPSTREAM_KEEPALIVE_REQUESTS: u64 = 1000;
/// nginx's default upstream `keepalive_time` (1h).
pub const DEFAULT_UPSTREAM_KEEPALIVE_TIME: Duration = Duration::from_secs(3600);

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            name: String::new(),
            servers: Vec::new(),
            balancer: Balancer::RoundRobin,
            keepalive: None,
            keepalive_timeout: DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT,
            keepalive_requests: DEFAULT_UPSTREAM_KEEPALIVE_REQUESTS,
            keepalive_time: DEFAULT_UPSTREAM_KEEPALIVE_TIME,
            zone: None,
            resolver: None,
            health_checks: Vec::new(),
            origin: String::new(),
        }
    }
}

/// One `server` line of an upstream block.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamServer {
    pub target: UpstreamTarget,
    /// The address as written (`10.0.0.1:8080`, `app.internal`,
    /// `unix:/run/app.sock`): nginx's server name. `hash ... consistent`
    /// hashes this text (a missing port stays missing), and every address a
    /// host name resolves to shares it.
    pub name: String,
    pub weight: u32,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub max_conns: u32,
    pub backup: bool,
    pub down: bool,
    /// `resolve`: the name is re-resolved while running (with
    /// [`Upstream::resolver`]), not once at load; each address is a peer.
    pub resolve: bool,
}

impl Default for UpstreamServer {
    /// nginx's defaults: weight 1, max_fails 1, fail_timeout 10s.
    fn default() -> Self {
        UpstreamServer {
            target: UpstreamTarget::Tcp {
                host: String::new(),
                port: 80,
            },
            name: String::new(),
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            max_conns: 0,
            backup: false,
            down: false,
            resolve: false,
        }
    }
}

/// `resolver ADDRESS ... [valid=TIME] [ipv4=on|off] [ipv6=on|off]` with
/// `resolver_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    /// Name servers as `ip:port` (port 53 when not written; names given
    /// were resolved at load, as nginx does).
    pub servers: Vec<SocketAddr>,
    /// `valid=`: how long an answer is kept (`None`: its TTL).
    pub valid: Option<Duration>,
    pub ipv4: bool,
    pub ipv6: bool,
    /// `resolver_timeout` (30s).
    pub timeout: Duration,
}

/// `health_check [interval=T] [fails=N] [passes=N] [uri=URI] [match=NAME]`
/// (nginx Plus syntax; Portico's extension): a request to every peer each
/// `interval`; `fails` failures in a row take it out of the rotation,
/// `passes` successes bring it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Default 5s.
    pub interval: Duration,
    /// Default 1.
    pub fails: u32,
    /// Default 1.
    pub passes: u32,
    /// Default `/`.
    pub uri: String,
    /// `match=NAME`: what a passing answer is; `None`: status 2xx or 3xx.
    pub matcher: Option<HealthMatch>,
    /// Where the `health_check` directive is, for messages.
    pub origin: String,
}

/// `match NAME { status ...; }`: every condition must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthMatch {
    pub name: String,
    pub conditions: Vec<StatusCondition>,
}

/// `status [!] CODE|LOW-HIGH ...`: the status is (or with `!`, is not)
/// one of the codes or inside one of the ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCondition {
    pub negate: bool,
    /// Inclusive ranges (a single code is `(c, c)`).
    pub ranges: Vec<(u16, u16)>,
}

impl HealthMatch {
    /// Whether an answer with `status` passes.
    pub fn passes(&self, status: u16) -> bool {
        self.conditions.iter().all(|c| {
            let inside = c
                .ranges
                .iter()
                .any(|(lo, hi)| (*lo..=*hi).contains(&status));
            inside != c.negate
        })
    }
}

/// The balancing method of an upstream block.
#[derive(Debug, Clone, PartialEq)]
pub enum Balancer {
    RoundRobin,
    IpHash,
    Hash { key: String, consistent: bool },
    LeastConn,
    Random { two: bool, least_conn: bool },
}
