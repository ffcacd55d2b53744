//! Writing responses: deciding the framing (Content-Length, chunked or
//! close-delimited), encoding the head, and sending body pieces within the
//! announced length. Files go out with sendfile(2) where the transport allows.

use std::fs::File;
use std::io;

use bytes::Bytes;
use portico_proto::http1::Version;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::date::append_http_date;
use crate::exchange::ResponseFraming;
use crate::handler::{Response, ResponseBody};
use crate::listener::Wire;

mod sendfile;
pub(crate) use sendfile::{ReadySocket, SendFile};

/// Value of the `Server` header the server adds when the app sets none.
pub(crate) const SERVER_HEADER: &[u8] = b"portico";

/// Bodies up to this size are copied next to the head and sent in one write.
pub(crate) const COALESCE_LIMIT: usize = 16 * 1024;

/// How the body of a response is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body bytes at all (HEAD, 1xx, 204, 304).
    NoBody,
    /// Exactly this many bytes (the app's Content-Length or the one we computed).
    Length(u64),
    Chunked,
    /// Until the connection closes (HTTP/1.0 stream without a length).
    Close,
}

/// The decisions made before the head is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub framing: Framing,
    pub keep_alive: bool,
}

/// Decide framing and persistence for a response.
pub(crate) fn plan(
    response: &Response,
    wire: Wire,
    version: Version,
    is_head: bool,
    keep_alive_wanted: bool,
) -> (Plan, Option<u64>) {
    let app_length = app_content_length(&response.headers);
    let status = response.status;
    let bodiless_status = status < 200 || status == 204 || status == 304;
    if wire == Wire::Uwsgi {
        // uwsgi: the response ends when the connection closes; nothing is added.
        let framing = if bodiless_status || is_head {
            Framing::NoBody
        } else {
            app_length.map_or(Framing::Close, Framing::Length)
        };
        return (
            Plan {
                framing,
                keep_alive: false,
            },
            None,
        );
    }
    let framing = if bodiless_status || is_head {
        Framing::NoBody
    } else if let Some(n) = app_length {
        Framing::Length(n)
    } else {
        match &response.body {
            ResponseBody::Empty => Framing::Length(0),
            ResponseBody::Full(b) => Framing::Length(b.len() as u64),
            ResponseBody::File { len, .. } => Framing::Length(*len),
            ResponseBody::Stream(_) if version != Version::Http10 => Framing::Chunked,
            ResponseBody::Stream(_) => Framing::Close,
        }
    };
    // A HEAD answer announces the length a GET would have had, when known.
    let computed_length = match (&framing, app_length, &response.body) {
        (Framing::Length(n), None, _) => Some(*n),
        (Framing::NoBody, None, ResponseBody::Full(b)) if is_head && !bodiless_status => {
            Some(b.len() as u64)
        }
        (Framing::NoBody, None, ResponseBody::Empty) if is_head && !bodiless_status => Some(0),
        (Framing::NoBody, None, ResponseBody::File { len, .. }) if is_head && !bodiless_status => {
            Some(*len)
        }
        _ => None,
    };
    let keep_alive = keep_alive_wanted && framing != Framing::Close;
    (
        Plan {
            framing,
            keep_alive,
        },
        computed_length,
    )
}

/// The hop-by-hop fields of a response (RFC 9110 §7.6.1): `Connection`,
/// `Keep-Alive`, `Transfer-Encoding`, `TE`, `Trailer`, `Upgrade`, `Proxy-*`,
/// and every name a `Connection` field lists. Whoever made the response (a
/// proxied upstream, a uwsgi peer, the site engine), they describe the
/// connection it came on, not this one: the writer, which every response
/// passes, leaves them out and adds its own framing and `Connection`, so a
/// response never carries two framings. (A WSGI app may not set them at all:
/// `start_response` refuses them, PEP 3333.) docs/compat.md has the decision.
pub(crate) struct HopByHop<'a> {
    /// Names listed in `Connection` (empty, and no allocation, without one).
    listed: Vec<&'a [u8]>,
}

impl<'a> HopByHop<'a> {
    pub(crate) fn of(headers: &'a [(Bytes, Bytes)]) -> HopByHop<'a> {
        let listed = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(b"connection"))
            .flat_map(|(_, value)| value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|token| !token.is_empty())
            .collect();
        HopByHop { listed }
    }

    /// Whether the field `name` stays out of the response.
    pub(crate) fn drops(&self, name: &[u8]) -> bool {
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        let fixed = match name.len() {
            2 => is(b"te"),
            7 => is(b"trailer") || is(b"upgrade"),
            10 => is(b"connection") || is(b"keep-alive"),
            17 => is(b"transfer-encoding"),
            _ => false,
        };
        fixed
            || name
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"proxy-"))
            || self.listed.iter().any(|l| is(l))
    }
}

impl Plan {
    /// The body length the head announces, when it announces one.
    pub(crate) fn body_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }
}

/// The fields of `response` that go out as the producer set them, on
/// HTTP/1.1 and HTTP/2 alike: not the hop-by-hop ones ([`HopByHop`]; HTTP/2
/// forbids them outright, RFC 9113 §8.2.2), and no Content-Length on 1xx
/// or 204 (RFC 9110 §8.6), whatever the producer said.
pub(crate) fn passed_fields(response: &Response) -> impl Iterator<Item = &(Bytes, Bytes)> {
    let drop_length = response.status < 200 || response.status == 204;
    let hop_by_hop = HopByHop::of(&response.headers);
    response.headers.iter().filter(move |(name, _)| {
        !(drop_length && name.eq_ignore_ascii_case(b"content-length") || hop_by_hop.drops(name))
    })
}

/// The app's Content-Length, if it sent exactly one valid one.
fn app_content_length(headers: &[(Bytes, Bytes)]) -> Option<u64> {
    let mut found = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(b"content-length") {
            if found.is_some() {
                return None;
            }
            found = std::str::from_utf8(value).ok()?.trim().parse().ok();
        }
    }
    found
}

/// Encode the status line and headers into `out`; returns the header count.
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    response: &Response,
    plan: &Plan,
    computed_length: Option<u64>,
    framing: &ResponseFraming,
) -> u32 {
    let version = framing.version;
    let uwsgi = framing.wire == Wire::Uwsgi;
    let mut count = 0;
    if uwsgi {
        out.extend_from_slice(&framing.protocol);
        out.push(b' ');
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
    }
    let mut itoa = itoa::Buffer::new();
    out.extend_from_slice(itoa.format(response.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(&response.reason);
    out.extend_from_slice(b"\r\n");
    let (mut has_server, mut has_date) = (false, false);
    for (name, value) in passed_fields(response) {
        count += 1;
        has_server |= name.eq_ignore_ascii_case(b"server");
        has_date |= name.eq_ignore_ascii_case(b"date");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if uwsgi {
        // The front server adds its own Date/Server and frames the body.
        out.extend_from_slice(b"\r\n");
        return count;
    }
    if !has_server {
        out.extend_from_slice(b"Server: ");
        out.extend_from_slice(SERVER_HEADER);
        out.extend_from_slice(b"\r\n");
        count += 1;
    }
    if !has_date {
        out.extend_from_slice(b"Date: ");
        append_http_date(out);
        out.extend_from_slice(b"\r\n");
        count += 1;
    }
    if let Some(n) = computed_length {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa.format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
        count += 1;
    }
    if plan.framing == Framing::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        count += 1;
    }
    match (plan.keep_alive, version) {
        (false, Version::Http11 | Version::Http2) => {
            out.extend_from_slice(b"Connection: close\r\n");
            count += 1;
        }
        (true, Version::Http10) => {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
            count += 1;
        }
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    count
}

/// A small response made by the server itself (errors before any handler ran).
pub(crate) fn encode_error(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(SERVER_HEADER);
    out.extend_from_slice(b"\r\nDate: ");
    append_http_date(out);
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(body);
}

/// Writes body pieces within the framing; tracks what was sent.
pub(crate) struct BodyWriter {
    framing: Framing,
    /// Bytes still allowed under a Content-Length.
    remaining: u64,
    /// Body bytes actually sent (for the log).
    pub sent: u64,
}

impl BodyWriter {
    pub(crate) fn new(framing: Framing) -> BodyWriter {
        let remaining = match framing {
            Framing::Length(n) => n,
            _ => u64::MAX,
        };
        BodyWriter {
            framing,
            remaining,
            sent: 0,
        }
    }

    /// True when a Content-Length was announced and not yet fully sent.
    pub(crate) fn short(&self) -> bool {
        matches!(self.framing, Framing::Length(_)) && self.remaining > 0
    }

    /// Append a data piece to `out` (framed, truncated to the length).
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        if self.framing == Framing::NoBody || data.is_empty() {
            return;
        }
        let n = (data.len() as u64).min(self.remaining) as usize;
        if n == 0 {
            return;
        }
        if self.framing == Framing::Chunked {
            push_chunk_size(out, n);
            out.extend_from_slice(&data[..n]);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&data[..n]);
            if matches!(self.framing, Framing::Length(_)) {
                self.remaining -= n as u64;
            }
        }
        self.sent += n as u64;
    }

    /// Write a data piece directly (large pieces skip the copy into `out`).
    pub(crate) async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        out: &mut Vec<u8>,
        data: &[u8],
    ) -> io::Result<()> {
        if data.len() <= COALESCE_LIMIT || self.framing == Framing::NoBody {
            self.push(out, data);
            return flush(writer, out).await;
        }
        let n = (data.len() as u64).min(self.remaining) as usize;
        if n == 0 {
            return flush(writer, out).await;
        }
        if self.framing == Framing::Chunked {
            push_chunk_size(out, n);
        }
        flush(writer, out).await?;
        writer.write_all(&data[..n]).await?;
        if self.framing == Framing::Chunked {
            writer.write_all(b"\r\n").await?;
        } else if matches!(self.framing, Framing::Length(_)) {
            self.remaining -= n as u64;
        }
        self.sent += n as u64;
        Ok(())
    }

    /// Send a file region, within the framing.
    pub(crate) async fn write_file<W: AsyncWrite + SendFile + Unpin>(
        &mut self,
        writer: &mut W,
        out: &mut Vec<u8>,
        file: &File,
        offset: u64,
        len: u64,
    ) -> io::Result<()> {
        let n = len.min(self.remaining);
        if self.framing == Framing::NoBody || n == 0 {
            return flush(writer, out).await;
        }
        if self.framing == Framing::Chunked {
            push_chunk_size(out, n as usize);
        }
        // The head goes out with the file's first bytes (MSG_MORE, like
        // nginx's tcp_nopush), not as a small segment of its own.
        if !out.is_empty() {
            writer.write_more(out).await?;
            out.clear();
        }
        let sent = writer.send_file(file, offset, n).await?;
        if sent < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            ));
        }
        if self.framing == Framing::Chunked {
            writer.write_all(b"\r\n").await?;
        } else if matches!(self.framing, Framing::Length(_)) {
            self.remaining -= n;
        }
        self.sent += n;
        Ok(())
    }

    /// Append the end of the body (the last chunk for chunked framing).
    pub(crate) fn finish(&self, out: &mut Vec<u8>) {
        if self.framing == Framing::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
}

fn push_chunk_size(out: &mut Vec<u8>, n: usize) {
    use std::io::Write;
    let _ = write!(out, "{n:x}\r\n");
}

/// Write and clear `out`, then flush the writer (a no-op on a socket; a
/// TLS stream may hold written records until flushed).
pub(crate) async fn flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if !out.is_empty() {
        writer.write_all(out).await?;
        out.clear();
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::ResponseMeta;

    fn response(headers: &[(&'static str, &'static str)], body: ResponseBody) -> Response {
        Response {
            status: 200,
            reason: Bytes::from_static(b"OK"),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        Bytes::from_static(n.as_bytes()),
                        Bytes::from_static(v.as_bytes()),
                    )
                })
                .collect(),
            body,
            meta: ResponseMeta::default(),
        }
    }

    fn stream() -> ResponseBody {
        ResponseBody::Stream(crate::BodyStream::channel(tokio::sync::mpsc::channel(1).1))
    }

    #[test]
    fn app_content_length_frames_the_body() {
        let r = response(&[("Content-Length", "5")], stream());
        let (p, computed) = plan(&r, Wire::Http, Version::Http11, false, true);
        assert_eq!(
            (p.framing, p.keep_alive, computed),
            (Framing::Length(5), true, None)
        );
    }

    #[test]
    fn stream_without_length_is_chunked_on_11_and_close_delimited_on_10() {
        let r = response(&[], stream());
        assert_eq!(
            plan(&r, Wire::Http, Version::Http11, false, true).0.framing,
            Framing::Chunked
        );
        let (p, _) = plan(&r, Wire::Http, Version::Http10, false, true);
        assert_eq!((p.framing, p.keep_alive), (Framing::Close, false));
    }

    #[test]
    fn head_and_204_have_no_body_but_head_keeps_the_length() {
        let r = response(&[], ResponseBody::Full(Bytes::from_static(b"hello")));
        let (p, computed) = plan(&r, Wire::Http, Version::Http11, true, true);
        assert_eq!(
            (p.framing, p.keep_alive, computed),
            (Framing::NoBody, true, Some(5))
        );
        let mut r204 = response(&[], ResponseBody::Empty);
        r204.status = 204;
        let (p, computed) = plan(&r204, Wire::Http, Version::Http11, false, true);
        assert_eq!((p.framing, computed), (Framing::NoBody, None));
    }

    #[test]
    fn body_writer_never_sends_more_than_the_length() {
        let mut w = BodyWriter::new(Framing::Length(5));
        let mut out = Vec::new();
        w.push(&mut out, b"hello world");
        w.push(&mut out, b"more");
        assert_eq!(out, b"hello");
        assert!(!w.short());
    }

    #[test]
    fn chunked_pieces_are_framed_and_terminated() {
        let mut w = BodyWriter::new(Framing::Chunked);
        let mut out = Vec::new();
        w.push(&mut out, b"hello");
        w.push(&mut out, b"");
        w.finish(&mut out);
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
    }

    #[test]
    fn connection_header_follows_version_and_persistence() {
        let r = response(&[("Content-Type", "text/plain")], ResponseBody::Empty);
        let mut out = Vec::new();
        let (p, c) = plan(&r, Wire::Http, Version::Http10, false, true);
        let framing = ResponseFraming {
            wire: Wire::Http,
            version: Version::Http10,
            protocol: Bytes::from_static(b"HTTP/1.0"),
            is_head: false,
            keep_alive_wanted: true,
            served_before: 0,
            closes_after: false,
        };
        encode_head(&mut out, &r, &p, c, &framing);
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: portico\r\nDate: "
        ));
        assert!(
            text.ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn hop_by_hop_fields_of_any_handler_are_left_out_and_one_framing_goes() {
        let r = response(
            &[
                ("Transfer-Encoding", "chunked"),
                ("Connection", "keep-alive, X-Hop"),
                ("Keep-Alive", "timeout=5"),
                ("X-Hop", "1"),
                ("TE", "trailers"),
                ("Trailer", "X-Sum"),
                ("Upgrade", "h2c"),
                ("Proxy-Connection", "keep-alive"),
                ("X-App", "yes"),
            ],
            stream(),
        );
        let framing = ResponseFraming {
            wire: Wire::Http,
            version: Version::Http11,
            protocol: Bytes::from_static(b"HTTP/1.1"),
            is_head: false,
            keep_alive_wanted: true,
            served_before: 0,
            closes_after: false,
        };
        let (p, c) = plan(&r, Wire::Http, Version::Http11, false, true);
        let mut out = Vec::new();
        let count = encode_head(&mut out, &r, &p, c, &framing);
        let text = String::from_utf8(out).expect("ascii");
        let names: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(n, _)| n))
            .collect();
        assert_eq!(
            names,
            ["X-App", "Server", "Date", "Transfer-Encoding"],
            "{text}"
        );
        assert_eq!(count, 4);
        assert_eq!(text.matches("chunked").count(), 1);
    }
}
