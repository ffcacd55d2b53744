//! The uwsgi upstream client: nginx's `uwsgi_pass` to one peer over TCP or
//! a unix socket, or to an `upstream {}` group. [`UwsgiUpstream`] is a
//! [`Handler`]: it encodes the request's vars (already built by the engine
//! from `uwsgi_param` and the client's headers) as a uwsgi packet, sends it
//! and the request body, reads the response head (`response.rs`) and streams
//! the body back (pulled by the client's writer: `pump.rs`).
//!
//! One connection per request, closed after the response, as nginx's uwsgi
//! module does (the response ends at the close). A group is balanced and
//! retried by the loop `proxy_pass` uses (`retry.rs`: the group's balancer
//! and passive health, `uwsgi_next_upstream`, `_tries`, `_timeout`); its
//! request body is read whole first so that any peer can get it (nginx's
//! `uwsgi_request_buffering on`, in memory). To one peer an unfinished body
//! is streamed. Not here: spooling the response to disk (`uwsgi_buffering`).
//! Through the site engine it is a [`ProxyUpstream`], so a `hash KEY`
//! group gets its key and `$upstream_addr`/`_status`/`_response_time` are
//! known; as a plain [`Handler`] (no engine) it balances without a key.
//! The body reader, the log wording and the send step are shared with the
//! HTTP client (`pump.rs`, `log.rs`, `io.rs`).

mod response;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use portico_config::site::{
    DEFAULT_UPSTREAM_TIMEOUT, LocationConfig, NextUpstream, Template, UpstreamTarget,
};
use portico_proto::http1::ChunkedDecoder;
use portico_proto::uwsgi::UwsgiPacket;
use portico_server::{
    BodyStream, Handler, HandlerFuture, ProxyCall, ProxyFuture, ProxyUpstream, Request,
    RequestBody, RequestSource, Response, ResponseBody, ResponseMeta,
};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

pub use response::{HeadError, ResponseHead, parse_head};

use crate::background::GroupSlot;
use crate::balance::{PickInput, UpstreamGroup};
use crate::error::{ErrorKind, Phase, ProxyError};
use crate::error_page::error_response;
use crate::io::{client_body_error, send};
use crate::log::{LogContext, Peer, Scheme, UpstreamName};
use crate::pump::{self, BUFFERED_PIECES, BodyReader, Buffered, Framing, READ_CHUNK, Unbuffered};
use crate::retry::{self, Exchange, Finished, Rules, Tries};
use crate::spool::Spool;
use crate::target::{PeerAddr, PeerStream, TargetError};

/// Largest vars block a uwsgi packet can carry (its size field is 16 bits).
pub const MAX_VARS_SIZE: usize = 65535;

/// nginx's `uwsgi_buffer_size` default (one memory page): the response head
/// must fit, else `upstream sent too big header` and 502.
pub const DEFAULT_BUFFER_SIZE: usize = 4096;

/// The `uwsgi_*` settings of a location.
#[derive(Debug, Clone)]
pub struct UwsgiSettings {
    /// `uwsgi_connect_timeout`.
    pub connect_timeout: Duration,
    /// `uwsgi_send_timeout`: between two successive writes.
    pub send_timeout: Duration,
    /// `uwsgi_read_timeout`: between two successive reads.
    pub read_timeout: Duration,
    /// `uwsgi_buffering` (only the channel depth for now: nothing spills to disk).
    pub buffering: bool,
    /// `uwsgi_modifier1` / `uwsgi_modifier2`, written in the packet header.
    pub modifier1: u8,
    pub modifier2: u8,
    /// `uwsgi_buffer_size`: the largest response head accepted.
    pub buffer_size: usize,
    /// What error pages say where nginx says `nginx` (e.g. `portico`).
    pub server_token: String,
    /// `uwsgi_next_upstream` (to a group; one peer is never retried).
    pub next_upstream: NextUpstream,
    /// `uwsgi_next_upstream_tries` (0: no limit).
    pub next_upstream_tries: u32,
    /// `uwsgi_next_upstream_timeout` (zero: no limit).
    pub next_upstream_timeout: Duration,
}

impl Default for UwsgiSettings {
    fn default() -> Self {
        UwsgiSettings {
            connect_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            send_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            read_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            buffering: true,
            modifier1: 0,
            modifier2: 0,
            buffer_size: DEFAULT_BUFFER_SIZE,
            server_token: "portico".to_string(),
            next_upstream: NextUpstream::default(),
            next_upstream_tries: 0,
            next_upstream_timeout: Duration::ZERO,
        }
    }
}

impl UwsgiSettings {
    /// The settings a location's config gives (modifiers stay 0: the
    /// config does not carry `uwsgi_modifier1/2` yet).
    pub fn from_location(config: &LocationConfig) -> UwsgiSettings {
        UwsgiSettings {
            connect_timeout: config.uwsgi_connect_timeout,
            send_timeout: config.uwsgi_send_timeout,
            read_timeout: config.uwsgi_read_timeout,
            buffering: config.uwsgi_buffering,
            next_upstream: config.uwsgi_next_upstream,
            next_upstream_tries: config.uwsgi_next_upstream_tries,
            next_upstream_timeout: config.uwsgi_next_upstream_timeout,
            ..UwsgiSettings::default()
        }
    }
}

/// `uwsgi_pass` to one peer or to an `upstream {}` group.
#[derive(Clone)]
pub struct UwsgiUpstream {
    inner: Arc<Inner>,
}

struct Inner {
    /// The block's current group (re-resolution may replace it).
    group: Arc<GroupSlot>,
    settings: UwsgiSettings,
    /// Read the whole body before the first try (a group: any peer may get it).
    buffer_body: bool,
    /// The group's `hash KEY` (evaluated by the engine per request).
    hash_key: Option<Template>,
}

impl UwsgiUpstream {
    /// A client for one address. Refuses an `upstream {}` group (see
    /// [`UwsgiUpstream::group`]) and a host name that does not resolve.
    pub fn new(
        target: UpstreamTarget,
        settings: UwsgiSettings,
    ) -> Result<UwsgiUpstream, TargetError> {
        let peer = PeerAddr::resolve(&target)?;
        Ok(UwsgiUpstream {
            inner: Arc::new(Inner {
                group: Arc::new(GroupSlot::new(Arc::new(UpstreamGroup::single(peer)))),
                settings,
                buffer_body: false,
                hash_key: None,
            }),
        })
    }

    /// `uwsgi_pass` to an `upstream {}` group: balanced by the group (share
    /// one per block and worker, as `HttpProxy` does) and retried as
    /// `settings.next_upstream*` say.
    pub fn group(group: Arc<UpstreamGroup>, settings: UwsgiSettings) -> UwsgiUpstream {
        UwsgiUpstream::in_slot(Arc::new(GroupSlot::new(group)), settings)
    }

    /// Through whatever group `slot` holds when a request starts (the
    /// block's slot, shared with its `proxy_pass` locations).
    pub fn in_slot(slot: Arc<GroupSlot>, settings: UwsgiSettings) -> UwsgiUpstream {
        UwsgiUpstream {
            inner: Arc::new(Inner {
                group: slot,
                settings,
                buffer_body: true,
                hash_key: None,
            }),
        }
    }

    /// The group balances by `hash KEY`: the engine evaluates it per request.
    pub fn with_hash_key(mut self, key: Template) -> UwsgiUpstream {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.hash_key = Some(key);
        }
        self
    }

    /// The group this client balances over now (one peer for an address).
    pub fn upstream_group(&self) -> Arc<UpstreamGroup> {
        self.inner.group.current()
    }
}

impl Handler for UwsgiUpstream {
    fn handle(&self, request: Request) -> HandlerFuture {
        let inner = self.inner.clone();
        HandlerFuture::new(move || async move {
            let client_ip = remote_addr(&request);
            let (response, _, _) = inner.serve(request, client_ip, None, Instant::now()).await;
            response
        })
    }
}

/// Through the site engine's proxy seam: the group's `hash` key and the
/// client's address come from the engine, and the `$upstream_*` record of
/// every try goes back with the answer (logs, `add_header`).
impl ProxyUpstream for UwsgiUpstream {
    fn forward(&self, call: ProxyCall) -> ProxyFuture {
        let inner = self.inner.clone();
        ProxyFuture::new(move || async move {
            let ProxyCall {
                request,
                client_ip,
                hash_key,
                started,
                ..
            } = call;
            let client_ip = client_ip.or_else(|| remote_addr(&request));
            let (response, tries, from_upstream) =
                inner.serve(request, client_ip, hash_key, started).await;
            tries.outcome(response, from_upstream)
        })
    }

    fn hash_key(&self) -> Option<&Template> {
        self.inner.hash_key.as_ref()
    }
}

/// The client's address as the packet's `REMOTE_ADDR` says (`ip_hash`).
fn remote_addr(request: &Request) -> Option<IpAddr> {
    let RequestSource::Uwsgi(packet) = &request.source else {
        return None;
    };
    packet
        .var(b"REMOTE_ADDR")
        .and_then(|a| std::str::from_utf8(a).ok()?.parse::<IpAddr>().ok())
}

/// One uwsgi try for the shared retry loop: connect, send the packet (and
/// the body), read the response head.
struct UwsgiExchange<'a> {
    /// The packet, with the body when it was read whole.
    out: Vec<u8>,
    /// A body still to come from the client, streamed after the packet.
    body: Option<RequestBody>,
    streamed: bool,
    non_idempotent: bool,
    settings: &'a UwsgiSettings,
    /// The answer the tries ended with ([`Exchange::keep`]).
    answer: Option<(ResponseHead, BytesMut, PeerStream)>,
}

impl Exchange for UwsgiExchange<'_> {
    type Answer = (ResponseHead, BytesMut, PeerStream);

    async fn attempt(
        &mut self,
        peer: &PeerAddr,
        _now: Instant,
    ) -> Result<Self::Answer, ProxyError> {
        let s = self.settings;
        // The packet goes in the connect's wake when it is all there is.
        let first = match self.body {
            None => &self.out[..],
            Some(_) => &[],
        };
        let (mut stream, sent) = peer.connect_sending(s.connect_timeout, first).await?;
        if let Some(rest) = self.out.get(sent..).filter(|rest| !rest.is_empty()) {
            send(&mut stream, rest, s.send_timeout).await?;
        }
        if let Some(mut body) = self.body.take() {
            // Pieces after the packet: not held for the peer's ACK.
            stream.set_nodelay();
            self.streamed = true;
            while let Some(piece) = body.next().await {
                send(
                    &mut stream,
                    &piece.map_err(client_body_error)?,
                    s.send_timeout,
                )
                .await?;
            }
        }
        let (head, buf) = read_head(&mut stream, s.buffer_size, s.read_timeout).await?;
        Ok((head, buf, stream))
    }

    fn status(answer: &Self::Answer) -> u16 {
        answer.0.status
    }

    fn keep(&mut self, answer: Self::Answer) {
        self.answer = Some(answer);
    }

    fn body_streamed(&self) -> bool {
        self.streamed
    }

    fn non_idempotent(&self) -> bool {
        self.non_idempotent
    }

    fn upstream(&self, peer: Peer) -> UpstreamName {
        uwsgi_upstream(peer)
    }
}

impl Inner {
    /// One request: the answer, the `$upstream_*` record, and whether the
    /// answer came from a peer (`false`: nginx's own error page).
    async fn serve(
        &self,
        request: Request,
        client_ip: Option<IpAddr>,
        hash_key: Option<bytes::Bytes>,
        started: Instant,
    ) -> (Response, Tries, bool) {
        let group = self.group.current();
        let log = LogContext::new(&request);
        let group_log = log.with_upstream(uwsgi_upstream(Peer::Name(Arc::from(group.name()))));
        let Request { source, body, .. } = request;
        let packet = match source {
            RequestSource::Uwsgi(packet) => packet,
            RequestSource::Http(_) => {
                let e = ProxyError::new(
                    ErrorKind::Unsupported,
                    Phase::Preparing,
                    "uwsgi upstream given an HTTP request (the engine must build the vars)",
                );
                return (self.fail(&group_log, &e), Tries::default(), false);
            }
        };
        let meta = ResponseMeta {
            app_id: -1,
            vars: packet.var_count() as u32,
            vars_bytes: packet.datasize as u32,
            core: 0,
            ..ResponseMeta::default()
        };
        let mut x = match self.prepare(&packet, body).await {
            Ok(x) => x,
            Err(e) => return (self.fail(&group_log, &e), Tries::default(), false),
        };
        let s = &self.settings;
        let rules = Rules {
            next: s.next_upstream,
            tries: s.next_upstream_tries,
            timeout: s.next_upstream_timeout,
        };
        let input = PickInput {
            client_ip,
            hash_key: hash_key.as_deref(),
            next_upstream_tries: 0,
        };
        let mut tries = Tries::default();
        let finished = retry::run(
            &group,
            input,
            rules,
            started,
            log.facts(),
            &mut x,
            &mut tries,
        );
        let (mut response, from_upstream) = match finished.await {
            // (`run` keeps an answer whenever it finishes with one.)
            Finished::Answer { addr, .. } => match x.answer.take() {
                Some((head, buf, stream)) => {
                    let log = log.with_upstream(uwsgi_upstream(Peer::Addr(addr.clone())));
                    (self.respond(head, buf, stream, &packet, log), true)
                }
                None => (error_response(502, &s.server_token), false),
            },
            Finished::Failed(status) => (error_response(status, &s.server_token), false),
        };
        response.meta = meta;
        (response, tries, from_upstream)
    }

    /// Log `e` as nginx would and answer with nginx's error page.
    fn fail(&self, log: &LogContext, e: &ProxyError) -> Response {
        log.log(e);
        error_response(e.status(), &self.settings.server_token)
    }

    /// The packet bytes and the body plan: a body that is already complete
    /// (or, to a group, all of it) goes out with the packet, in one write.
    async fn prepare<'a>(
        &'a self,
        packet: &UwsgiPacket,
        mut body: RequestBody,
    ) -> Result<UwsgiExchange<'a>, ProxyError> {
        let s = &self.settings;
        let mut out = encode_request(packet, s.modifier1, s.modifier2)?;
        let whole_body = self.buffer_body || body.is_complete();
        if whole_body {
            while let Some(piece) = body.next().await {
                out.extend_from_slice(&piece.map_err(client_body_error)?);
            }
        }
        let method = packet.var(b"REQUEST_METHOD");
        Ok(UwsgiExchange {
            out,
            body: (!whole_body).then_some(body),
            streamed: false,
            non_idempotent: matches!(method, Some(b"POST" | b"LOCK" | b"PATCH")),
            settings: s,
            answer: None,
        })
    }

    /// Turn the head into the client's response, with the body to come.
    fn respond(
        &self,
        head: ResponseHead,
        mut buf: BytesMut,
        stream: PeerStream,
        packet: &UwsgiPacket,
        log: LogContext,
    ) -> Response {
        let no_body = head.status == 204
            || head.status == 304
            || packet.var(b"REQUEST_METHOD").is_some_and(|m| m == b"HEAD");
        let framing = if head.chunked {
            Framing::Chunked(Box::new(ChunkedDecoder::new()))
        } else {
            head.content_length.map_or(Framing::Close, Framing::Length)
        };
        let body = match framing {
            // A HEAD answer whose length the upstream did not say: a body of
            // unknown length (an empty stream), so that no `Content-Length: 0`
            // is made up for it (nginx sends none either).
            Framing::Close | Framing::Chunked(_)
                if no_body && head.status != 204 && head.status != 304 =>
            {
                ResponseBody::Stream(BodyStream::channel(mpsc::channel(1).1))
            }
            _ if no_body => ResponseBody::Empty,
            // The whole body came with the head: no task, no channel.
            Framing::Length(n) if buf.len() as u64 >= n => {
                let n = n as usize;
                if buf.len() > n {
                    log.log(&pump::excess_data());
                }
                ResponseBody::Full(buf.split_to(n).freeze())
            }
            framing => {
                let reader =
                    BodyReader::new(stream, buf, framing, self.settings.read_timeout, log, None);
                ResponseBody::Stream(if self.settings.buffering {
                    let memory = BUFFERED_PIECES * READ_CHUNK;
                    Buffered::stream(reader, Spool::new(memory, 0, std::env::temp_dir()))
                } else {
                    Unbuffered::stream(reader)
                })
            }
        };
        Response {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body,
            meta: ResponseMeta::default(),
        }
    }
}

/// The packet bytes: nginx refuses a vars block over 64 KiB with an alert.
fn encode_request(
    packet: &UwsgiPacket,
    modifier1: u8,
    modifier2: u8,
) -> Result<Vec<u8>, ProxyError> {
    let size: usize = packet.vars().map(|(k, v)| 4 + k.len() + v.len()).sum();
    if size > MAX_VARS_SIZE {
        return Err(ProxyError::new(
            ErrorKind::RequestTooBig,
            Phase::Preparing,
            format!("uwsgi request is too big: {size}"),
        ));
    }
    let vars: Vec<(&[u8], &[u8])> = packet.vars().collect();
    Ok(portico_proto::uwsgi::encode_packet(
        modifier1, modifier2, &vars,
    ))
}

/// Read until a whole head has arrived; return it and the body bytes after it.
async fn read_head(
    stream: &mut PeerStream,
    limit: usize,
    timeout: Duration,
) -> Result<(ResponseHead, BytesMut), ProxyError> {
    let phase = Phase::ReadingHeader;
    let mut buf = BytesMut::with_capacity(limit.min(READ_CHUNK));
    loop {
        if buf.len() >= limit {
            return Err(ProxyError::new(
                ErrorKind::HeaderTooBig,
                phase,
                "upstream sent too big header",
            ));
        }
        // Reading at most up to the limit, as nginx's fixed buffer does.
        let room = limit - buf.len();
        buf.reserve(room);
        let n = tokio::time::timeout(timeout, (&mut *stream).take(room as u64).read_buf(&mut buf))
            .await
            .map_err(|_| ProxyError::timeout(phase))?
            .map_err(|e| ProxyError::io(ErrorKind::Read, phase, "recv()", e))?;
        if n == 0 {
            return Err(ProxyError::new(
                ErrorKind::ClosedEarly,
                phase,
                "upstream prematurely closed connection",
            ));
        }
        match parse_head(&buf) {
            Ok(Some((head, used))) => {
                let _ = buf.split_to(used);
                return Ok((head, buf));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(ProxyError::new(
                    ErrorKind::InvalidHeader,
                    phase,
                    e.to_string(),
                ));
            }
        }
    }
}

/// The `upstream:` nginx logs for a peer (or group) name:
/// `uwsgi://127.0.0.1:9000`, and for a unix socket
/// `uwsgi://unix:/run/app.sock:` (trailing colon included, observed).
fn uwsgi_upstream(peer: Peer) -> UpstreamName {
    UpstreamName {
        scheme: Scheme::Uwsgi,
        peer,
        target: bytes::Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn upstream_names_are_logged_as_nginx_logs_them() {
        let tcp = PeerAddr::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 9000)));
        let url = |peer| uwsgi_upstream(peer).to_string();
        assert_eq!(url(Peer::Addr(tcp)), "uwsgi://127.0.0.1:9000");
        let unix = PeerAddr::Unix("/run/app.sock".into());
        assert_eq!(url(Peer::Addr(unix)), "uwsgi://unix:/run/app.sock:");
        assert_eq!(url(Peer::Name(Arc::from("app"))), "uwsgi://app");
    }

    #[test]
    fn vars_over_64k_are_refused_with_nginx_alert() {
        let big = Bytes::from(vec![b'a'; 65_532]);
        let packet =
            |value: Bytes| UwsgiPacket::from_vars(0, 0, vec![(Bytes::from_static(b"X"), value)], 0);
        // 4 length bytes + 1 key byte + 65530 value bytes = 65535: fits.
        assert!(encode_request(&packet(big.slice(..65_530)), 0, 0).is_ok());
        let e = encode_request(&packet(big.slice(..65_531)), 0, 0).err();
        assert_eq!(
            e.map(|e| e.to_string()),
            Some("uwsgi request is too big: 65536".to_string())
        );
    }
}
