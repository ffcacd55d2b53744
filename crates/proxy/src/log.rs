//! nginx's error-log lines about upstream failures, shared by every upstream
//! protocol: `[error] connect() failed (111: Connection refused) while
//! connecting to upstream, client: ..., server: ..., request: "...",
//! upstream: "...", host: "..."`. Only the wording; the log writer adds the
//! timestamp, pid and connection number nginx puts in front.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use portico_proto::http1::Version;
use portico_server::{Request, RequestSource};

use crate::error::ProxyError;
use crate::target::PeerAddr;

/// What nginx appends to an error line about a request:
/// `, client: 1.2.3.4, server: example.com, request: "GET / HTTP/1.1",
/// upstream: "uwsgi://127.0.0.1:9000", host: "example.com"`.
///
/// Used only when something fails, so it holds the pieces (shared byte
/// strings, the peer's address) and formats them when a line is written.
/// The tries of a request log through its [`RequestFacts`] (no `Arc`, no
/// clone per try); a `LogContext` is made only for what outlives them (a
/// body read after the answer's head, the uwsgi client's).
#[derive(Clone)]
pub(crate) struct LogContext {
    request: Arc<RequestFacts>,
    upstream: Option<UpstreamName>,
}

/// The request's part of an error line: client, server, request line, host.
pub(crate) struct RequestFacts {
    client: Client,
    server: Bytes,
    method: Bytes,
    uri: Bytes,
    protocol: Bytes,
    host: Bytes,
}

enum Client {
    Ip(IpAddr),
    Text(Bytes),
    None,
}

/// nginx's `upstream:` in an error line, formatted when it is written.
#[derive(Clone)]
pub(crate) struct UpstreamName {
    pub scheme: Scheme,
    pub peer: Peer,
    /// The request target sent (HTTP only).
    pub target: Bytes,
}

/// The protocol part of [`UpstreamName`].
#[derive(Clone, Copy)]
pub(crate) enum Scheme {
    /// `http://127.0.0.1:8080/path?a`.
    Http,
    /// `uwsgi://127.0.0.1:9000`, and for a unix socket
    /// `uwsgi://unix:/run/app.sock:` (trailing colon included, observed).
    Uwsgi,
}

/// The peer part of [`UpstreamName`]: a peer's address, or a group's name.
#[derive(Clone)]
pub(crate) enum Peer {
    Addr(PeerAddr),
    Name(Arc<str>),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Addr(addr) => addr.fmt(f),
            Peer::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for UpstreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Http => write!(
                f,
                "http://{}{}",
                self.peer,
                String::from_utf8_lossy(&self.target)
            ),
            Scheme::Uwsgi => {
                let unix = match &self.peer {
                    Peer::Addr(addr) => matches!(addr, PeerAddr::Unix(_)),
                    Peer::Name(name) => name.starts_with("unix:"),
                };
                write!(f, "uwsgi://{}{}", self.peer, if unix { ":" } else { "" })
            }
        }
    }
}

impl RequestFacts {
    /// The facts of an HTTP request, its pieces moved in: `uri` is the
    /// request target as sent.
    pub(crate) fn http(
        client: Option<IpAddr>,
        method: Bytes,
        uri: Bytes,
        version: Version,
        host: Option<Bytes>,
    ) -> RequestFacts {
        RequestFacts {
            client: client.map_or(Client::None, Client::Ip),
            server: Bytes::new(),
            method,
            uri,
            protocol: Bytes::from_static(version.as_bytes()),
            host: host.unwrap_or_default(),
        }
    }

    /// The facts of `request`.
    pub(crate) fn of(request: &Request) -> RequestFacts {
        RequestFacts::of_source(&request.source, request.peer)
    }

    /// The facts of a request from its source and the client's address.
    pub(crate) fn of_source(source: &RequestSource, peer: Option<SocketAddr>) -> RequestFacts {
        match source {
            RequestSource::Http(head) => RequestFacts {
                client: peer.map_or(Client::None, |p| Client::Ip(p.ip())),
                server: Bytes::new(),
                method: head.method.clone(),
                uri: head.target.clone(),
                protocol: Bytes::from_static(head.version.as_bytes()),
                host: head.host.clone().unwrap_or_default(),
            },
            RequestSource::Uwsgi(p) => {
                let var = |name: &[u8]| p.var_bytes(name).unwrap_or_default();
                RequestFacts {
                    client: Client::Text(var(b"REMOTE_ADDR")),
                    server: var(b"SERVER_NAME"),
                    method: var(b"REQUEST_METHOD"),
                    uri: var(b"REQUEST_URI"),
                    protocol: var(b"SERVER_PROTOCOL"),
                    host: var(b"HTTP_HOST"),
                }
            }
        }
    }

    /// The request target (HTTP: as sent upstream).
    pub(crate) fn uri(&self) -> &Bytes {
        &self.uri
    }

    /// One nginx-worded error-log line for `e`, about `upstream` if named.
    pub(crate) fn log(&self, upstream: Option<&UpstreamName>, e: &ProxyError) {
        let line = self.line(upstream, e, e.level().as_str());
        portico_server::logln!("{line}");
    }

    /// The line for `e`, without the log writer's prefix.
    fn line(
        &self,
        upstream: Option<&UpstreamName>,
        e: &dyn std::fmt::Display,
        level: &str,
    ) -> String {
        let s = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        let r = self;
        let mut line = format!("[{level}] {e}, client: ");
        match &r.client {
            Client::Ip(ip) => {
                let _ = write!(line, "{ip}");
            }
            Client::Text(text) => line.push_str(&s(text)),
            Client::None => {}
        }
        let _ = write!(line, ", server: {}", s(&r.server));
        if !r.method.is_empty() {
            let _ = write!(
                line,
                ", request: \"{} {} {}\"",
                s(&r.method),
                s(&r.uri),
                s(&r.protocol)
            );
        }
        if let Some(upstream) = upstream {
            let _ = write!(line, ", upstream: \"{upstream}\"");
        }
        if !r.host.is_empty() {
            let _ = write!(line, ", host: \"{}\"", s(&r.host));
        }
        line
    }
}

impl LogContext {
    /// The context of `request` (no upstream named yet).
    pub(crate) fn new(request: &Request) -> LogContext {
        LogContext::of(RequestFacts::of(request), None)
    }

    /// The context of `facts`, about `upstream` if named.
    pub(crate) fn of(facts: RequestFacts, upstream: Option<UpstreamName>) -> LogContext {
        LogContext {
            request: Arc::new(facts),
            upstream,
        }
    }

    /// The request's facts (what the tries log through).
    pub(crate) fn facts(&self) -> &RequestFacts {
        &self.request
    }

    /// The same request about another upstream (the next try of a retry).
    pub(crate) fn with_upstream(&self, upstream: UpstreamName) -> LogContext {
        LogContext {
            request: self.request.clone(),
            upstream: Some(upstream),
        }
    }

    /// One nginx-worded error-log line for `e`.
    pub(crate) fn log(&self, e: &ProxyError) {
        self.request.log(self.upstream.as_ref(), e);
    }

    /// A context with nothing in it (unit tests).
    #[cfg(test)]
    pub(crate) fn blank() -> LogContext {
        LogContext {
            request: Arc::new(RequestFacts {
                client: Client::None,
                server: Bytes::new(),
                method: Bytes::new(),
                uri: Bytes::new(),
                protocol: Bytes::new(),
                host: Bytes::new(),
            }),
            upstream: None,
        }
    }
}
