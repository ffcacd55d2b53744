//! The facts of one request the phases read, taken once from an HTTP head
//! or from a uwsgi packet (Portico behind a front server): method, target,
//! headers in order, Host, client and local addresses, body length.
//! Nothing here changes as the request moves through the phases.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use portico_config::site::ListenAddr;
use portico_proto::http1::{BodyFraming, Headers};

use super::lookup::first_header;
use super::pages::wants_padding;
use super::select::ConnAddr;
use crate::handler::RequestSource;
use crate::listener::{ListenAddress, ListenerInfo};
use crate::request_view::header_name_of_var;

/// What the phases need to know about the request as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub method: Bytes,
    /// `$request_uri`: the target as sent.
    pub request_uri: Bytes,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub protocol: Bytes,
    /// Every header, in order, names as sent (lower-case from a uwsgi packet).
    pub headers: Headers,
    /// The host of an absolute-form target, else the Host header, as sent.
    pub host_raw: Bytes,
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    /// The client's address from a uwsgi packet's REMOTE_ADDR.
    pub remote_addr: Option<IpAddr>,
    pub scheme: &'static str,
    /// The announced body length (Content-Length); `None` when chunked or absent.
    pub content_length: Option<u64>,
    /// The body is chunked: its length is known only once read.
    pub chunked: bool,
    /// What the connection's TLS handshake settled (`$ssl_*`).
    pub tls: Option<std::sync::Arc<crate::tls::TlsFacts>>,
}

impl Facts {
    /// The facts of `source`; an HTTP head's field list moves here (see
    /// [`Facts::give_back`]).
    pub(crate) fn new(
        source: &mut RequestSource,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
        listener: &ListenerInfo,
        tls: Option<std::sync::Arc<crate::tls::TlsFacts>>,
    ) -> Facts {
        let chunked = matches!(
            source,
            RequestSource::Http(head) if head.framing == BodyFraming::Chunked
        );
        let (method, request_uri, protocol, headers, content_length, remote_addr) = match source {
            RequestSource::Http(head) => (
                head.method.clone(),
                head.target.clone(),
                Bytes::from_static(head.version.as_bytes()),
                // Moved, not copied: only a request handed on unchanged
                // (the option-style app) needs them back.
                std::mem::take(&mut head.headers),
                match head.framing {
                    BodyFraming::Length(n) => Some(n),
                    BodyFraming::None | BodyFraming::Chunked => None,
                },
                None,
            ),
            RequestSource::Uwsgi(packet) => {
                let var = |k: &[u8]| packet.var_bytes(k).unwrap_or_default();
                let mut headers = Headers::new();
                let mut header = Vec::new();
                for (key, value) in packet.shared_vars() {
                    let name = match key.strip_prefix(b"HTTP_") {
                        Some(rest) => rest,
                        None if key.as_ref() == b"CONTENT_TYPE"
                            || key.as_ref() == b"CONTENT_LENGTH" =>
                        {
                            key.as_ref()
                        }
                        None => continue,
                    };
                    if value.is_empty() && !key.starts_with(b"HTTP_") {
                        continue;
                    }
                    header.clear();
                    header_name_of_var(name, &mut header);
                    headers.push(&header, &value);
                }
                (
                    var(b"REQUEST_METHOD"),
                    var(b"REQUEST_URI"),
                    var(b"SERVER_PROTOCOL"),
                    headers,
                    packet.content_length().filter(|&n| n > 0),
                    std::str::from_utf8(&var(b"REMOTE_ADDR"))
                        .ok()
                        .and_then(|a| a.parse().ok()),
                )
            }
        };
        let host_raw = match source {
            // The parser kept the Host field's value.
            RequestSource::Http(head) => head.host.clone().unwrap_or_default(),
            RequestSource::Uwsgi(_) => first_header(&headers, "host")
                .map(Bytes::copy_from_slice)
                .unwrap_or_default(),
        };
        Facts {
            method,
            request_uri,
            protocol,
            headers,
            host_raw,
            peer,
            local,
            remote_addr,
            scheme: listener.scheme,
            content_length,
            chunked,
            tls,
        }
    }

    /// Put the field list [`Facts::new`] took back into `source` (a copy:
    /// the phases still read these).
    pub(crate) fn give_back(&self, source: &mut RequestSource) {
        if let RequestSource::Http(head) = source {
            head.headers = self.headers.clone();
        }
    }

    /// Take `host` (a Host header or an absolute-form target's host) as
    /// the request's host.
    pub(crate) fn set_host(&mut self, host: Bytes) {
        self.host_raw = host;
    }

    /// `$host` without the server fallback: lower-case, without the port
    /// and one trailing dot.
    pub(crate) fn host(&self) -> Vec<u8> {
        super::select::host_key(&self.host_raw).to_ascii_lowercase()
    }

    /// The client is a browser that hides short error pages (read from
    /// its User-Agent when a built-in page is made).
    pub(crate) fn padding(&self) -> bool {
        self.header("user-agent").is_some_and(wants_padding)
    }

    /// The first header named `name` (case-insensitive), as nginx keeps
    /// headers (see [`first_header`]).
    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        first_header(&self.headers, name)
    }

    /// The local address for server selection.
    pub(crate) fn conn_addr(&self, listener: &ListenerInfo) -> ConnAddr {
        match (self.local, &listener.addr) {
            (Some(local), _) => ListenAddr::Tcp(local),
            (None, addr) => addr.clone(),
        }
    }

    /// The client's IP (`None` on a unix socket).
    pub(crate) fn client_ip(&self) -> Option<IpAddr> {
        self.remote_addr.or(self.peer.map(|p| p.ip()))
    }

    /// The client as error-log lines show it.
    pub(crate) fn client_text(&self) -> String {
        self.client_ip()
            .map_or_else(|| "unix:".to_string(), |ip| ip.to_string())
    }

    /// The request line, as error-log lines quote it (`GET /x HTTP/1.1`).
    pub(crate) fn request_line(&self) -> String {
        format!(
            "{} {} {}",
            String::from_utf8_lossy(&self.method),
            String::from_utf8_lossy(&self.request_uri),
            String::from_utf8_lossy(&self.protocol)
        )
    }

    /// HTTP/1.1 (gzip_static's `gzip_http_version 1.1`).
    pub(crate) fn is_http11(&self) -> bool {
        self.protocol.as_ref() == b"HTTP/1.1"
    }
}

/// nginx's `ngx_http_validate_host`: no `..`, no `/` or NUL, no
/// control bytes or spaces, and something left once the port and one
/// trailing dot are taken off.
pub(crate) fn valid_host(host: &[u8]) -> bool {
    let mut host_len = host.len();
    let mut dot_pos: Option<usize> = None;
    let mut in_literal = false;
    let mut in_rest = false;
    for (i, &ch) in host.iter().enumerate() {
        match ch {
            b'.' => {
                if i > 0 && dot_pos == Some(i - 1) {
                    return false;
                }
                dot_pos = Some(i);
            }
            b':' if !in_rest && !in_literal => {
                host_len = i;
                in_rest = true;
            }
            b'[' if i == 0 => in_literal = true,
            b']' if in_literal => {
                host_len = i + 1;
                in_literal = false;
                in_rest = true;
            }
            b'/' | 0 => return false,
            c if c <= 0x20 || c == 0x7f => return false,
            _ => {}
        }
    }
    if host_len > 0 && dot_pos == Some(host_len - 1) {
        host_len -= 1;
    }
    host_len > 0
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts_are_validated_as_nginx_does() {
        for good in [
            &b"example.com"[..],
            b"example.com.",
            b"EX.com:8080",
            b"[::1]:80",
            b"a",
        ] {
            assert!(valid_host(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b"bad..host",
            b"a/b",
            b"a\0b",
            b"a b",
            b".",
            b":80",
        ] {
            assert!(!valid_host(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
