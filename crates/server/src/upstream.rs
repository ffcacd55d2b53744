//! The seam between the site engine and the reverse proxy: the engine
//! decides what to send (`proxy_pass`'s URI, `proxy_set_header`, the body)
//! and hands a [`ProxyCall`] to a [`ProxyUpstream`]; the proxy crate picks
//! peers, retries by `proxy_next_upstream`, pools connections and streams
//! the answer back as a [`ProxyOutcome`]. Defined here so the engine needs
//! no proxy crate, and the proxy crate implements it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::handler::{Request, Response};
use crate::reused_box::ReusedBox;

/// One request for an upstream, ready to send.
pub struct ProxyCall {
    /// `source` is `RequestSource::Http` with the head to send: method,
    /// the upstream target (URI and args), the header list as it must go
    /// out (the engine applied `proxy_set_header` and dropped hop-by-hop
    /// fields), version per `proxy_http_version`. `body` is the client's.
    pub request: Request,
    /// The client's address (`ip_hash`), `None` on a unix socket.
    pub client_ip: Option<IpAddr>,
    /// The evaluated key of a `hash KEY` balancer, when the group has one.
    pub hash_key: Option<Bytes>,
    /// When the engine took the request (`proxy_next_upstream_timeout`).
    pub started: Instant,
    /// For a `proxy_pass` with variables: the evaluated URL's `host[:port]`
    /// (the proxy picks the group or address from it per request).
    pub authority: Option<Bytes>,
    /// The head of `request` already encoded (request line, fields, blank
    /// line), for a request without a body: the engine writes it straight
    /// from the client's head and `proxy_set_header`, and the head in
    /// `request` then has no fields (its method, target, version, `host`
    /// and `keep_alive` are set). `None`: encode `request`'s head.
    pub encoded_head: Option<Vec<u8>>,
}

/// What came back, with the `$upstream_*` facts for logs and headers.
pub struct ProxyOutcome {
    /// The answer to relay (the upstream's, or nginx's 502/504 page).
    pub response: Response,
    /// Whether `response` came from an upstream (`false`: Portico made it,
    /// e.g. 502 after every peer failed); `proxy_intercept_errors` and
    /// `error_page` look at this.
    pub from_upstream: bool,
    /// Every try, for `$upstream_addr`, `$upstream_status` and
    /// `$upstream_response_time`.
    pub tries: UpstreamTries,
}

/// The `$upstream_*` record of a proxied request: each try's peer, status
/// and time. Kept as numbers and formatted only when a variable asks (most
/// requests log none of them): one string for the peers, no allocation for
/// the usual single try's status and time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTries {
    /// The first peer tried, shared with its group: `$upstream_addr` when
    /// it is the only one (no string made per request).
    first_addr: Option<Arc<str>>,
    /// `$upstream_addr` after a retry: every peer tried, `, `-separated
    /// (empty while there was one try).
    joined: String,
    /// The first try's status and time (`None`: no try).
    first: Option<(u16, Duration)>,
    /// The tries after the first (a retry).
    more: Vec<(u16, Duration)>,
}

impl UpstreamTries {
    /// Record one try of the peer named `addr`.
    pub fn push(&mut self, addr: &str, status: u16, took: Duration) {
        self.push_shared(&Arc::from(addr), status, took);
    }

    /// [`push`](Self::push) with the name as its group keeps it.
    pub fn push_shared(&mut self, addr: &Arc<str>, status: u16, took: Duration) {
        let Some(first) = &self.first_addr else {
            self.first_addr = Some(addr.clone());
            self.first = Some((status, took));
            return;
        };
        if self.joined.is_empty() {
            self.joined.push_str(first);
        }
        self.joined.push_str(", ");
        self.joined.push_str(addr);
        self.more.push((status, took));
    }

    /// `$upstream_addr`: every peer tried, `, `-separated.
    pub fn addr(&self) -> &str {
        match (&self.first_addr, self.more.is_empty()) {
            (Some(first), true) => first,
            (None, _) => "",
            (Some(_), false) => &self.joined,
        }
    }

    fn each(&self) -> impl Iterator<Item = &(u16, Duration)> {
        self.first.iter().chain(self.more.iter())
    }

    /// `$upstream_status` (`502, 200`) onto `out`.
    pub fn write_status(&self, out: &mut Vec<u8>) {
        for (i, (status, _)) in self.each().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(itoa::Buffer::new().format(*status).as_bytes());
        }
    }

    /// `$upstream_status` as a string (`502, 200`).
    pub fn status(&self) -> String {
        let mut out = Vec::new();
        self.write_status(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `$upstream_response_time` as a string (`0.012, 0.004`).
    pub fn response_time(&self) -> String {
        let mut out = Vec::new();
        self.write_response_time(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `$upstream_response_time` (`0.012, 0.004`: seconds, milliseconds)
    /// onto `out`.
    pub fn write_response_time(&self, out: &mut Vec<u8>) {
        for (i, (_, took)) in self.each().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(itoa::Buffer::new().format(took.as_secs()).as_bytes());
            let millis = took.subsec_millis();
            out.push(b'.');
            for digit in [millis / 100, millis / 10 % 10, millis % 10] {
                out.push(b'0' + digit as u8);
            }
        }
    }
}

/// The future a proxy returns: its block reused from request to request
/// (make one with `ProxyFuture::new(|| fut)`).
pub type ProxyFuture = ReusedBox<ProxyOutcome>;

/// Sends `proxy_pass` requests for one location (its group or address and
/// its `proxy_*` settings).
pub trait ProxyUpstream: Send + Sync + 'static {
    /// Send `call` to the upstream (picking peers, retrying as configured); the
    /// future resolves to what came back.
    fn forward(&self, call: ProxyCall) -> ProxyFuture;

    /// The `hash KEY` template's source when the group balances by a key,
    /// so the engine knows to evaluate it (`None`: no key needed).
    fn hash_key(&self) -> Option<&portico_config::site::Template> {
        None
    }
}
