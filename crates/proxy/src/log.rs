//! nginx's error-log lines about upstream failures, shared by every upstream
//! protocol: `[error] connect() failed (111: Connection refused) while
//! connecting to upstream, client: ..., server: ..., request: "...",
//! upstream: "...", host: "..."`. Only the wording; the log writer adds the
//! timestamp, pid and connection number nginx puts in front.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use portico_server::{Request, RequestSource};

use crate::error::ProxyError;

/// What nginx appends to an error line about a request:
/// `, client: 1.2.3.4, server: example.com, request: "GET / HTTP/1.1",
/// upstream: "uwsgi://127.0.0.1:9000", host: "example.com"`.
#[derive(Clone)]
pub(crate) struct LogContext {
    client: Bytes,
    server: Bytes,
    request: Bytes,
    upstream: Arc<str>,
    host: Bytes,
}

impl LogContext {
    /// The context of `request`, its upstream named `upstream` (as nginx
    /// names it: `uwsgi://127.0.0.1:9000`, `http://127.0.0.1:8080/path`).
    pub(crate) fn new(request: &Request, upstream: &str) -> LogContext {
        let var = |name: &[u8]| match &request.source {
            RequestSource::Uwsgi(p) => p.var(name).cloned().unwrap_or_default(),
            RequestSource::Http(_) => Bytes::new(),
        };
        let mut client = Vec::new();
        request.remote_addr(&mut client);
        let mut line = Vec::new();
        if !request.method().is_empty() {
            line.extend_from_slice(request.method());
            line.push(b' ');
            line.extend_from_slice(request.uri());
            line.push(b' ');
            line.extend_from_slice(request.protocol());
        }
        LogContext {
            client: Bytes::from(client),
            server: var(b"SERVER_NAME"),
            request: Bytes::from(line),
            upstream: Arc::from(upstream),
            host: Bytes::copy_from_slice(request.host()),
        }
    }

    /// A context with nothing in it (unit tests).
    #[cfg(test)]
    pub(crate) fn blank() -> LogContext {
        LogContext {
            client: Bytes::new(),
            server: Bytes::new(),
            request: Bytes::new(),
            upstream: Arc::from(""),
            host: Bytes::new(),
        }
    }

    /// The same request about another upstream (the next try of a retry).
    pub(crate) fn with_upstream(&self, upstream: &str) -> LogContext {
        LogContext {
            upstream: Arc::from(upstream),
            ..self.clone()
        }
    }

    /// The line for `e`, without the log writer's prefix.
    pub(crate) fn line(&self, e: &dyn std::fmt::Display, level: &str) -> String {
        let s = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        let mut line = format!("[{level}] {e}");
        let _ = write!(
            line,
            ", client: {}, server: {}",
            s(&self.client),
            s(&self.server)
        );
        if !self.request.is_empty() {
            let _ = write!(line, ", request: \"{}\"", s(&self.request));
        }
        if !self.upstream.is_empty() {
            let _ = write!(line, ", upstream: \"{}\"", self.upstream);
        }
        if !self.host.is_empty() {
            let _ = write!(line, ", host: \"{}\"", s(&self.host));
        }
        line
    }

    /// One nginx-worded error-log line for `e`.
    pub(crate) fn log(&self, e: &ProxyError) {
        let line = self.line(e, e.level().as_str());
        portico_server::logln!("{line}");
    }
}
