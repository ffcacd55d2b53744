//! What a connection hands to the code that answers requests, and what it
//! gets back. General on purpose: the WSGI bridge, static files and the
//! reverse proxy all implement [`Handler`].

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use portico_proto::http1::RequestHead;
use portico_proto::uwsgi::UwsgiPacket;

use crate::body::RequestBody;
use crate::body_stream::BodyStream;
use crate::handoff::Handoff;
use crate::listener::ListenerInfo;

/// What the request arrived as.
#[derive(Debug, Clone)]
pub enum RequestSource {
    /// An HTTP/1.x request head.
    Http(RequestHead),
    /// A uwsgi packet: its vars are the CGI environment, as the front server sent it.
    Uwsgi(UwsgiPacket),
}

/// One parsed request, with its body still arriving.
pub struct Request {
    /// The parsed head (HTTP) or packet (uwsgi).
    pub source: RequestSource,
    /// The client's address (`None` on a unix socket).
    pub peer: Option<SocketAddr>,
    /// The local address the connection was accepted on (`None` on a unix socket).
    pub local: Option<SocketAddr>,
    /// The listener the connection came in on.
    pub listener: Arc<ListenerInfo>,
    /// The request body, read from the connection as the handler asks for it.
    pub body: RequestBody,
    /// Where a handler that answers from another thread gets its reply slot.
    pub handoff: Arc<Handoff>,
    /// What the connection's TLS handshake settled (`None`: plain).
    pub tls: Option<Arc<crate::tls::TlsFacts>>,
}

impl Request {
    /// The request method (REQUEST_METHOD for uwsgi).
    pub fn method(&self) -> &[u8] {
        match &self.source {
            RequestSource::Http(head) => &head.method,
            RequestSource::Uwsgi(p) => p.var(b"REQUEST_METHOD").unwrap_or_default(),
        }
    }

    /// The request target as sent (REQUEST_URI for uwsgi).
    pub fn uri(&self) -> &[u8] {
        match &self.source {
            RequestSource::Http(head) => &head.target,
            RequestSource::Uwsgi(p) => p.var(b"REQUEST_URI").unwrap_or_default(),
        }
    }

    /// The request protocol (SERVER_PROTOCOL for uwsgi).
    pub fn protocol(&self) -> &[u8] {
        match &self.source {
            RequestSource::Http(head) => head.version.as_bytes(),
            RequestSource::Uwsgi(p) => p.var(b"SERVER_PROTOCOL").unwrap_or_default(),
        }
    }

    /// The Host header (HTTP_HOST for uwsgi), empty when absent.
    pub fn host(&self) -> &[u8] {
        match &self.source {
            RequestSource::Http(head) => head.host.as_deref().unwrap_or_default(),
            RequestSource::Uwsgi(p) => p.var(b"HTTP_HOST").unwrap_or_default(),
        }
    }

    /// A request parsed from the raw bytes of an HTTP/1.x head and its
    /// body (Content-Length or chunked, decoded), as if it arrived on an HTTP listener at
    /// `local` from `peer`: for tests and in-process callers that have no
    /// socket. `None` when the head does not parse or is incomplete.
    pub fn from_http_bytes(
        raw: &[u8],
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Option<Request> {
        let mut buf = bytes::BytesMut::from(raw);
        let head = portico_proto::http1::parse_request_head(
            &mut buf,
            &portico_proto::http1::HeadLimits::default(),
        )
        .ok()??;
        // A body not all there ends where the bytes end (the pump that
        // would read the rest is dropped).
        let (body, _pump) = crate::body::BodyPump::start(head.framing, false, &mut buf).ok()?;
        let addr = match local {
            Some(addr) => crate::listener::ListenAddress::Tcp(addr),
            None => crate::listener::ListenAddress::Unix("portico.sock".into()),
        };
        Some(Request {
            source: RequestSource::Http(head),
            peer,
            local,
            listener: Arc::new(ListenerInfo {
                addr,
                wire: crate::listener::Wire::Http,
                scheme: "http",
                spec: "in-process".to_string(),
                buffer_size: 4096,
                http2: None,
                tls: None,
            }),
            body,
            handoff: Handoff::new(),
            tls: None,
        })
    }

    /// Write the client's address (REMOTE_ADDR for uwsgi) into `out`.
    pub fn remote_addr(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        match &self.source {
            RequestSource::Http(_) => match self.peer.map(|p| p.ip()) {
                // Per request (the scoreboard's running request): the
                // octets through itoa, not `Ipv4Addr`'s `Display` (about a
                // tenth of its instructions, as `conn::peer_text`).
                Some(std::net::IpAddr::V4(ip)) => {
                    let mut digits = itoa::Buffer::new();
                    for (i, octet) in ip.octets().into_iter().enumerate() {
                        if i > 0 {
                            out.push(b'.');
                        }
                        out.extend_from_slice(digits.format(octet).as_bytes());
                    }
                }
                Some(ip) => {
                    let _ = write!(out, "{ip}");
                }
                None => {}
            },
            RequestSource::Uwsgi(p) => {
                out.extend_from_slice(p.var(b"REMOTE_ADDR").unwrap_or_default())
            }
        }
    }
}

/// A piece of a streamed response body.
#[derive(Debug)]
pub enum StreamItem {
    /// Bytes to send as they are.
    Data(Bytes),
    /// A file region sent without copying through user space where possible.
    File {
        /// The open file.
        file: File,
        /// Where the region starts in the file.
        offset: u64,
        /// How many bytes to send from `offset`.
        len: u64,
    },
    /// The body is complete.
    End,
    /// The producer failed mid-body: the connection must be cut so the
    /// client sees the truncation. A channel closed without `End` means the same.
    Abort,
}

/// The response body.
#[derive(Debug)]
pub enum ResponseBody {
    /// No body.
    Empty,
    /// The whole body, in memory.
    Full(Bytes),
    /// Pieces arrive as the producer makes them (a channel from another
    /// thread, or a body polled in place).
    Stream(BodyStream),
    /// A file region, sent with sendfile(2) where the transport allows.
    File {
        /// The open file.
        file: File,
        /// Where the region starts in the file.
        offset: u64,
        /// How many bytes to send from `offset`.
        len: u64,
    },
}

/// Facts about how the response was produced, for the access log.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseMeta {
    /// The app id (uWSGI's `app: N`), -1 when no app answered.
    pub app_id: i32,
    /// Number of request variables and their total size (uWSGI's `{N vars in M bytes}`).
    pub vars: u32,
    /// Their total size in bytes, as the uwsgi packet encodes them.
    pub vars_bytes: u32,
    /// The worker thread ("core") that ran the app; 0 when none did.
    pub core: u32,
    /// A handler's own mark for [`Handler::done`] (0: none): the site
    /// engine's access_log record waiting for the final sizes.
    pub log_tag: u64,
    /// nginx's `keepalive_timeout`/`keepalive_requests` for the connection
    /// after this response (`None`: the server's defaults).
    pub keepalive: Option<KeepAlive>,
}

/// How long, and for how many requests, a connection may persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Idle time allowed before the next request; zero: close after this one.
    pub timeout: std::time::Duration,
    /// Requests a connection may carry in all; after the last, close.
    pub requests: u64,
}

/// A response: status, headers exactly as the producer gave them, and a body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase, as given (`OK`, `Not Found`, or the app's own).
    pub reason: Bytes,
    /// Header fields (name, value), in order.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The body.
    pub body: ResponseBody,
    /// How the response was produced, for the access log.
    pub meta: ResponseMeta,
}

impl Response {
    /// A small plain-text response made by the server itself.
    pub fn plain(status: u16, reason: &'static str, text: &'static str) -> Response {
        Response {
            status,
            reason: Bytes::from_static(reason.as_bytes()),
            headers: vec![(
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(b"text/plain; charset=utf-8"),
            )],
            body: ResponseBody::Full(Bytes::from_static(text.as_bytes())),
            meta: ResponseMeta {
                app_id: -1,
                ..ResponseMeta::default()
            },
        }
    }

    /// The answer when the producer failed before starting the response.
    pub fn internal_error() -> Response {
        Response::plain(500, "Internal Server Error", "Internal Server Error\n")
    }
}

/// The future a handler returns: resolves when the status and headers are known.
pub type HandlerFuture = crate::reused_box::ReusedBox<Response>;

/// What was sent for one request, once the response is written.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub status: u16,
    /// Body bytes written (`$body_bytes_sent`).
    pub body_bytes: u64,
    /// Status line and header bytes written.
    pub header_bytes: u64,
}

/// Answers requests. Called on the connection's I/O thread: it must not block.
pub trait Handler: Send + Sync + 'static {
    /// Start answering `request`; the future resolves to the response, whose
    /// body may still be streaming.
    fn handle(&self, request: Request) -> HandlerFuture;

    /// The response whose `meta.log_tag` is `tag` (non-zero) has been
    /// written (`sent`) or abandoned (`None`: the client went away). For
    /// logs that need the final status and sizes. Must not block.
    fn done(&self, _tag: u64, _sent: Option<&Sent>) {}
}

/// Answers every request with 404 (behind static files when no app is loaded).
pub struct NotFound;

impl Handler for NotFound {
    fn handle(&self, _request: Request) -> HandlerFuture {
        HandlerFuture::new(move || {
            std::future::ready(Response::plain(404, "Not Found", "404 Not Found\n"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    fn remote_addr_of(peer: &str) -> String {
        let Ok(peer) = peer.parse() else {
            panic!("not an address: {peer}");
        };
        let Some(request) =
            Request::from_http_bytes(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", Some(peer), None)
        else {
            panic!("the request did not parse");
        };
        let mut out = Vec::new();
        request.remote_addr(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn the_remote_address_is_written_as_display_writes_it() {
        for (peer, text) in [
            ("127.0.0.1:80", "127.0.0.1"),
            ("0.0.0.0:1", "0.0.0.0"),
            ("255.10.200.9:2", "255.10.200.9"),
            ("[::1]:3", "::1"),
            ("[2001:db8::7]:4", "2001:db8::7"),
        ] {
            assert_eq!(remote_addr_of(peer), text);
        }
    }
}
