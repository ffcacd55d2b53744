//! The request as it goes to an HTTP upstream: the head bytes (from the
//! engine's final [`RequestHead`]: method, target, version, header list) and
//! the body plan. Only the framing fields are ours to decide, as in nginx
//! (`Content-Length` / `Transfer-Encoding` are recomputed): a body read whole
//! goes with `Content-Length`; a body streamed unbuffered keeps its
//! `Content-Length`, or is re-chunked when the client sent it chunked and the
//! upstream speaks HTTP/1.1. A chunked body for an HTTP/1.0 upstream is
//! always read whole first (nginx does the same whatever
//! `proxy_request_buffering` says).

use bytes::Bytes;
use portico_proto::http1::{BodyFraming, RequestHead, Version};
use portico_server::RequestBody;

use crate::error::ProxyError;
use crate::io::client_body_error;

/// How the request body travels.
pub(crate) enum BodyPlan {
    /// No body, or one read whole before connecting: resendable to any peer.
    Buffered(Vec<Bytes>),
    /// Read from the client while sending (`proxy_request_buffering off`):
    /// one peer only, once the first piece was taken. `chunked`: re-chunk.
    Stream {
        body: Option<RequestBody>,
        chunked: bool,
        /// The body was taken to send: no other peer can get it.
        started: bool,
    },
}

/// Everything sent to an upstream, built once for all tries.
pub(crate) struct Outgoing {
    pub head: Vec<u8>,
    pub body: BodyPlan,
    /// HEAD: the answer has no body, whatever it says.
    pub head_request: bool,
    /// POST, LOCK or PATCH: not retried once sent, unless `non_idempotent`.
    pub non_idempotent: bool,
    /// The request lets the connection persist (HTTP/1.1, no `Connection: close`).
    pub keep_alive: bool,
}

impl Outgoing {
    /// Build the request; reads the body first when it must be buffered.
    pub(crate) async fn build(
        head: &RequestHead,
        mut body: RequestBody,
        buffer_body: bool,
    ) -> Result<Outgoing, ProxyError> {
        let chunked = head.framing == BodyFraming::Chunked;
        let must_buffer =
            buffer_body || body.is_complete() || (chunked && head.version == Version::Http10);
        let (plan, framing_field) = match head.framing {
            BodyFraming::None => (BodyPlan::Buffered(Vec::new()), None),
            _ if must_buffer => {
                let mut pieces = Vec::new();
                let mut total = 0u64;
                while let Some(piece) = body.next().await {
                    let piece = piece.map_err(client_body_error)?;
                    total += piece.len() as u64;
                    pieces.push(piece);
                }
                (
                    BodyPlan::Buffered(pieces),
                    Some(FramingField::Length(total)),
                )
            }
            BodyFraming::Length(n) => (stream_plan(body, false), Some(FramingField::Length(n))),
            BodyFraming::Chunked => (stream_plan(body, true), Some(FramingField::Chunked)),
        };
        Ok(Outgoing::with(head, plan, framing_field))
    }

    /// The request when it has no body to send: built without waiting
    /// (`None`: it has one; see [`Outgoing::build`]).
    pub(crate) fn bodiless(head: &RequestHead) -> Option<Outgoing> {
        (head.framing == BodyFraming::None)
            .then(|| Outgoing::with(head, BodyPlan::Buffered(Vec::new()), None))
    }

    /// The request of a head the engine encoded already (no body: see
    /// `ProxyCall::encoded_head`); `head` gives its method and whether it
    /// lets the connection persist.
    pub(crate) fn encoded(head: &RequestHead, bytes: Vec<u8>) -> Outgoing {
        let method = &head.method[..];
        Outgoing {
            head: bytes,
            body: BodyPlan::Buffered(Vec::new()),
            head_request: method == b"HEAD",
            non_idempotent: matches!(method, b"POST" | b"LOCK" | b"PATCH"),
            keep_alive: head.version != Version::Http10 && head.keep_alive,
        }
    }

    fn with(head: &RequestHead, plan: BodyPlan, framing_field: Option<FramingField>) -> Outgoing {
        let method = &head.method[..];
        Outgoing {
            head: encode_head(head, framing_field),
            body: plan,
            head_request: method == b"HEAD",
            non_idempotent: matches!(method, b"POST" | b"LOCK" | b"PATCH"),
            keep_alive: head.version != Version::Http10 && !asks_close(head),
        }
    }

    /// Whether the body was streamed to a peer already (no retry possible).
    pub(crate) fn body_streamed(&self) -> bool {
        matches!(self.body, BodyPlan::Stream { started: true, .. })
    }
}

fn stream_plan(body: RequestBody, chunked: bool) -> BodyPlan {
    BodyPlan::Stream {
        body: Some(body),
        chunked,
        started: false,
    }
}

/// The framing field we write.
#[derive(Clone, Copy)]
pub(crate) enum FramingField {
    Length(u64),
    Chunked,
}

fn asks_close(head: &RequestHead) -> bool {
    head.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case(b"connection")
            && h.value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

fn is_framing_field(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding")
}

/// `METHOD target VERSION`, the header list as given, and our framing field:
/// in place of the first `Content-Length`/`Transfer-Encoding` line the list
/// has, else where nginx's defaults put it (after `Connection`, else after
/// `Host`, else first).
pub(crate) fn encode_head(head: &RequestHead, framing: Option<FramingField>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&head.method);
    out.push(b' ');
    out.extend_from_slice(&head.target);
    out.push(b' ');
    // An upstream is spoken to in HTTP/1.x, whatever the client spoke.
    out.extend_from_slice(match head.version {
        Version::Http2 => b"HTTP/1.1",
        v => v.as_bytes(),
    });
    out.extend_from_slice(b"\r\n");
    let marked = head.headers.iter().position(|h| is_framing_field(h.name));
    let after = |name: &[u8]| {
        head.headers
            .iter()
            .rposition(|h| h.name.eq_ignore_ascii_case(name))
    };
    // Index before which the framing field goes.
    let at = marked.unwrap_or_else(|| {
        after(b"connection")
            .or_else(|| after(b"host"))
            .map_or(0, |i| i + 1)
    });
    let mut written = false;
    for (i, h) in head.headers.iter().enumerate() {
        if i == at && !written {
            write_framing(&mut out, framing);
            written = true;
        }
        if is_framing_field(h.name) {
            continue;
        }
        out.extend_from_slice(h.name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if !written {
        write_framing(&mut out, framing);
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn write_framing(out: &mut Vec<u8>, framing: Option<FramingField>) {
    match framing {
        None => {}
        Some(FramingField::Length(n)) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Some(FramingField::Chunked) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
}

/// One piece of a re-chunked body: `{len:x}\r\n{data}\r\n`.
pub(crate) fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 20);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The last chunk, with no trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use portico_proto::http1::{HeadLimits, parse_request_head};

    fn head(raw: &str) -> RequestHead {
        let mut buf = BytesMut::from(raw.as_bytes());
        match parse_request_head(&mut buf, &HeadLimits::default()) {
            Ok(Some(h)) => h,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn the_head_goes_as_given_with_our_framing_field_in_place() {
        let cases: &[(&str, Option<FramingField>, &str)] = &[
            (
                "GET /a?b HTTP/1.1\r\nHost: up\r\nConnection: close\r\nX: 1\r\n\r\n",
                None,
                "GET /a?b HTTP/1.1\r\nHost: up\r\nConnection: close\r\nX: 1\r\n\r\n",
            ),
            (
                "POST / HTTP/1.1\r\nHost: up\r\nConnection: close\r\nX: 1\r\n\r\n",
                Some(FramingField::Length(5)),
                "POST / HTTP/1.1\r\nHost: up\r\nConnection: close\r\nContent-Length: 5\r\nX: 1\r\n\r\n",
            ),
            (
                "POST / HTTP/1.1\r\nHost: up\r\nX: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Some(FramingField::Length(12)),
                "POST / HTTP/1.1\r\nHost: up\r\nX: 1\r\nContent-Length: 12\r\n\r\n",
            ),
            (
                "POST / HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n",
                Some(FramingField::Chunked),
                "POST / HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n",
            ),
            (
                "PUT / HTTP/1.0\r\nX: 1\r\n\r\n",
                Some(FramingField::Length(0)),
                "PUT / HTTP/1.0\r\nContent-Length: 0\r\nX: 1\r\n\r\n",
            ),
        ];
        for (raw, framing, want) in cases {
            let got = encode_head(&head(raw), *framing);
            assert_eq!(String::from_utf8_lossy(&got), *want, "{raw:?}");
        }
    }

    #[test]
    fn a_chunk_is_hex_length_data_crlf() {
        assert_eq!(chunk(b"hello world, hi!!"), b"11\r\nhello world, hi!!\r\n");
    }

    #[tokio::test]
    async fn a_chunked_body_for_http_1_0_is_buffered_and_sent_with_its_length() {
        let raw = "POST /u HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let request =
            portico_server::Request::from_http_bytes(raw.as_bytes(), None, None).expect("request");
        let portico_server::RequestSource::Http(mut h) = request.source else {
            panic!("http");
        };
        h.version = Version::Http10;
        let Ok(out) = Outgoing::build(&h, request.body, false).await else {
            panic!("built");
        };
        assert!(String::from_utf8_lossy(&out.head).contains("Content-Length: 5\r\n"));
        let BodyPlan::Buffered(pieces) = out.body else {
            panic!("buffered");
        };
        assert_eq!(pieces.concat(), b"abcde");
        assert!(out.non_idempotent && !out.keep_alive);
    }
}
