//! A [`Response`] as HTTP/2 sends it: the head with lower-case field names,
//! the fields and the length HTTP/1.1 would have sent (`write::plan` and
//! `write::passed_fields`: no connection-specific field, which HTTP/2
//! forbids, RFC 9113 §8.2.2), `Server` and `Date` added when absent; the body in DATA frames of at most the chunk
//! size, each sent only when the peer's flow-control window has room, so
//! a slow reader holds at most one chunk per stream in memory.

use std::fs::File;
use std::future::poll_fn;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;
use portico_proto::http1::Version;

use crate::handler::Response;
use crate::listener::Wire;
use crate::write::{self, Framing, SERVER_HEADER};

/// How long the peer may keep a stream's window closed before it is
/// reset (nginx's `send_timeout`).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// The head to send, and what the access log needs of it.
pub(super) struct Head {
    pub head: http::Response<()>,
    /// The response has no body on the wire (HEAD, 1xx, 204, 304).
    pub no_body: bool,
    /// The body length announced, if any.
    pub length: Option<u64>,
    pub header_count: u32,
    /// Field bytes as HTTP/1.1 would count them (HPACK makes them smaller).
    pub header_bytes: u64,
}

/// The HTTP/2 head of `response` (to a HEAD request when `is_head`).
pub(super) fn head(response: &Response, is_head: bool) -> Head {
    let (plan, computed) = write::plan(response, Wire::Http, Version::Http2, is_head, true);
    let status = http::StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| !s.is_informational())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut head = http::Response::new(());
    *head.status_mut() = status;
    let fields = head.headers_mut();
    // Room for every field at once (growing the map rehashes it).
    fields.reserve(response.headers.len() + 3);
    // Which fields pass, and the length, are HTTP/1.1's decisions (write.rs).
    let (mut has_server, mut has_date) = (false, false);
    let mut header_bytes = 0u64;
    for (name, value) in write::passed_fields(response) {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_maybe_shared(value.clone()),
        ) else {
            crate::logln!(
                "portico: a response field not valid in HTTP/2 was left out: {}",
                String::from_utf8_lossy(name)
            );
            continue;
        };
        has_server |= n == http::header::SERVER;
        has_date |= n == http::header::DATE;
        header_bytes += (name.len() + value.len() + 4) as u64;
        fields.append(n, v);
    }
    if let Some(n) = computed {
        fields.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
        header_bytes += 20;
    }
    if !has_server {
        fields.insert(
            http::header::SERVER,
            http::HeaderValue::from_static(std::str::from_utf8(SERVER_HEADER).unwrap_or("portico")),
        );
        header_bytes += 8 + SERVER_HEADER.len() as u64;
    }
    if !has_date {
        let mut date = Vec::with_capacity(29);
        crate::date::append_http_date(&mut date);
        if let Ok(v) = http::HeaderValue::from_bytes(&date) {
            header_bytes += 6 + date.len() as u64;
            fields.insert(http::header::DATE, v);
        }
    }
    let header_count = fields.len() as u32;
    Head {
        head,
        no_body: plan.framing == Framing::NoBody,
        length: plan.body_length(),
        header_count,
        header_bytes: header_bytes + 13,
    }
}

/// Why a body could not be sent to its end.
#[derive(Debug)]
pub(super) enum SendError {
    /// The stream or connection is gone (reset by the peer, closed).
    Gone,
    /// The peer kept its window closed past [`SEND_TIMEOUT`].
    Stalled,
    /// Reading the file failed.
    File,
    /// The body is shorter than the length announced for it.
    Short,
}

/// Sends one stream's body within its flow-control window.
pub(super) struct BodySender {
    stream: SendStream<Bytes>,
    chunk: usize,
    /// Body bytes sent.
    pub sent: u64,
    /// The announced length: nothing beyond it is sent.
    limit: Option<u64>,
    /// END_STREAM went out with the last DATA frame.
    ended: bool,
}

impl BodySender {
    pub(super) fn new(stream: SendStream<Bytes>, chunk: usize, limit: Option<u64>) -> BodySender {
        BodySender {
            stream,
            chunk,
            sent: 0,
            limit,
            ended: false,
        }
    }

    /// A whole body of at most one chunk, sent at once with END_STREAM in
    /// the same frame, without waiting for window first (`h2` holds it
    /// until the window opens: one chunk per stream, as the bound says).
    /// Most responses are this small; it saves a wake-up of the
    /// connection task and a frame per response.
    pub(super) fn whole(&mut self, mut data: Bytes) -> Result<(), SendError> {
        let allowed = self.allowed(data.len() as u64) as usize;
        data.truncate(allowed);
        if self.limit.is_some_and(|n| (data.len() as u64) < n) {
            return Err(SendError::Short);
        }
        let n = data.len() as u64;
        self.stream
            .send_data(data, true)
            .map_err(|_| SendError::Gone)?;
        self.sent = n;
        self.ended = true;
        Ok(())
    }

    /// Whether a body of `len` bytes can go out whole ([`BodySender::whole`]).
    pub(super) fn fits_one_chunk(&self, len: u64) -> bool {
        len <= self.chunk as u64
    }

    /// Room in the window for up to `want` bytes: the bytes allowed now.
    async fn capacity(&mut self, want: usize) -> Result<usize, SendError> {
        let want = want.min(self.chunk);
        self.stream.reserve_capacity(want);
        loop {
            let cap = self.stream.capacity();
            if cap > 0 {
                return Ok(cap.min(want));
            }
            let polled =
                tokio::time::timeout(SEND_TIMEOUT, poll_fn(|cx| self.stream.poll_capacity(cx)))
                    .await;
            match polled {
                Err(_) => return Err(SendError::Stalled),
                Ok(None) | Ok(Some(Err(_))) => return Err(SendError::Gone),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// How much of `n` more bytes the announced length allows.
    fn allowed(&self, n: u64) -> u64 {
        self.limit
            .map_or(n, |limit| n.min(limit.saturating_sub(self.sent)))
    }

    /// Send `data` (cut at the announced length).
    pub(super) async fn data(&mut self, mut data: Bytes) -> Result<(), SendError> {
        let allowed = self.allowed(data.len() as u64) as usize;
        data.truncate(allowed);
        while !data.is_empty() {
            let n = self.capacity(data.len()).await?;
            let piece = data.split_to(n);
            self.stream
                .send_data(piece, false)
                .map_err(|_| SendError::Gone)?;
            self.sent += n as u64;
        }
        Ok(())
    }

    /// Send `len` bytes of `file` from `offset`, a chunk at a time.
    pub(super) async fn file(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
    ) -> Result<(), SendError> {
        let mut left = self.allowed(len);
        let mut at = offset;
        while left > 0 {
            let n = self.capacity(left.min(usize::MAX as u64) as usize).await?;
            let mut buf = vec![0u8; n];
            let got = file.read_at(&mut buf, at).map_err(|_| SendError::File)?;
            if got == 0 {
                return Err(SendError::File);
            }
            buf.truncate(got);
            self.stream
                .send_data(Bytes::from(buf), false)
                .map_err(|_| SendError::Gone)?;
            self.sent += got as u64;
            at += got as u64;
            left -= got as u64;
        }
        Ok(())
    }

    /// End the stream cleanly, or reset it when the body fell short of
    /// its announced length (the client must not take it as complete).
    pub(super) fn finish(&mut self) -> bool {
        if self.ended {
            return true;
        }
        if self.limit.is_some_and(|n| self.sent < n) {
            self.stream.send_reset(h2::Reason::INTERNAL_ERROR);
            return false;
        }
        self.stream.send_data(Bytes::new(), true).is_ok()
    }

    /// Cut the stream: the producer failed mid-body.
    pub(super) fn abort(&mut self) {
        self.stream.send_reset(h2::Reason::INTERNAL_ERROR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::{ResponseBody, ResponseMeta};

    fn response(
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &'static str,
    ) -> Response {
        Response {
            status,
            reason: Bytes::from_static(b"X"),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        Bytes::from_static(n.as_bytes()),
                        Bytes::from_static(v.as_bytes()),
                    )
                })
                .collect(),
            body: ResponseBody::Full(Bytes::from_static(body.as_bytes())),
            meta: ResponseMeta::default(),
        }
    }

    #[test]
    fn connection_fields_are_dropped_and_names_lower_cased() {
        let r = response(
            200,
            &[
                ("Connection", "close"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Proxy-Connection", "x"),
                ("TE", "trailers"),
                ("X-App", "yes"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
            ],
            "hello",
        );
        let h = head(&r, false);
        let fields = h.head.headers();
        for f in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "proxy-connection",
            "te",
        ] {
            assert!(!fields.contains_key(f), "{f}");
        }
        assert_eq!(fields.get("x-app").map(|v| v.as_bytes()), Some(&b"yes"[..]));
        assert_eq!(fields.get_all("set-cookie").iter().count(), 2);
        assert_eq!(
            fields.get("content-length").map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
        assert!(fields.contains_key("date") && fields.contains_key("server"));
        assert_eq!(h.length, Some(5));
        assert!(!h.no_body);
    }

    #[test]
    fn fields_a_connection_header_lists_and_trailer_stay_out_as_on_http11() {
        let r = response(
            200,
            &[
                ("Connection", "x-hop"),
                ("X-Hop", "1"),
                ("Trailer", "x-t"),
                ("X-Kept", "2"),
            ],
            "",
        );
        let fields = head(&r, false).head.headers().clone();
        assert!(!fields.contains_key("x-hop") && !fields.contains_key("trailer"));
        assert!(fields.contains_key("x-kept"));
        assert_eq!(
            fields.get("content-length").map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
    }

    #[test]
    fn a_head_answer_keeps_the_length_but_has_no_body() {
        let h = head(&response(200, &[], "hello"), true);
        assert!(h.no_body);
        assert_eq!(
            h.head.headers().get("content-length").map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
    }

    #[test]
    fn a_204_has_no_length_and_no_body() {
        let h = head(&response(204, &[("Content-Length", "3")], ""), false);
        assert!(h.no_body);
        assert!(!h.head.headers().contains_key("content-length"));
        assert_eq!(h.head.status(), 204);
    }
}
