//! One uwsgi connection, as nginx's `uwsgi_pass` uses it: read one packet
//! (vars, then a body of CONTENT_LENGTH bytes), answer with a raw HTTP
//! response whose end is the close of the connection.
//!
//! A packet over `--buffer-size`, a truncated one, a null key or a var that
//! overruns the block: one log line, the connection dropped, nothing handed
//! to the app. modifier1 100 (ping) is answered with a pong; modifiers other
//! than 0 and 30 are logged and the connection closed, as uWSGI does.
//!
//! The body is received in full before the app is called unless
//! `--post-buffering 0` (see conn.rs); the packet must arrive within the
//! listener's head timeout (uWSGI's `--socket-timeout`, 4 s), each body read
//! within its body timeout.
//!
//! The response's status line says `HTTP/1.0` when the packet's
//! SERVER_PROTOCOL is exactly that (or missing), else `HTTP/1.1`: the var is
//! never copied there, so CR/LF in it cannot split the response.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{BodyFraming, Version};
use portico_proto::uwsgi::{
    MODIFIER_PING, MODIFIER_WSGI, MODIFIER_WSGI_PATH_FIXUP, PONG, UwsgiPacket, content_length_of,
    parse_packet,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::conn::{ConnContext, peer_text, read_some};
use crate::exchange::{Logged, ResponseFraming, exchange, finish};
use crate::handler::{Request, RequestSource};
use crate::listener::Wire;
use crate::receive::take_body;

/// Serve the one request of a uwsgi connection, then close it. `initial`:
/// what was read from it already (as it was accepted). (Boxed: the
/// connection's task stays as small as an idle HTTP connection's.)
pub(crate) async fn serve_uwsgi_connection<R, W>(
    reader: &mut R,
    writer: &mut W,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    ctx: &ConnContext,
    initial: BytesMut,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + crate::write::SendFile + Unpin,
{
    let mut writer = crate::timeouts::SendTimeout::new(writer, ctx.timeouts.send);
    Box::pin(serve_uwsgi(reader, &mut writer, peer, local, ctx, initial)).await;
}

async fn serve_uwsgi<R, W>(
    reader: &mut R,
    writer: &mut W,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    ctx: &ConnContext,
    initial: BytesMut,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + crate::write::SendFile + Unpin,
{
    let mut rbuf = initial;
    let mut out = Vec::with_capacity(crate::conn::RESPONSE_BUFFER);
    // The peer as text, made only for a log line (behind nginx the
    // address logged is REMOTE_ADDR's).
    let from = Peer(peer);
    let Some(mut packet) = read_packet(
        reader,
        &mut rbuf,
        ctx.listener.buffer_size,
        from,
        ctx.timeouts.header,
    )
    .await
    else {
        return;
    };
    match packet.modifier1 {
        MODIFIER_WSGI => {}
        MODIFIER_WSGI_PATH_FIXUP => strip_script_name(&mut packet),
        MODIFIER_PING => {
            crate::logln!("PING");
            let _ = writer.write_all(&PONG).await;
            let _ = writer.shutdown().await;
            return;
        }
        other => {
            crate::logln!("-- unavailable modifier requested: {other} --");
            return;
        }
    }
    if packet.var_count() == 0 {
        crate::logln!("portico: empty uwsgi request from {from}, skipped");
        return;
    }
    // The vars the connection reads itself, found in one pass, borrowed
    // from a copy of the packet (one reference count) that outlives the
    // request handed to the app.
    let kept = packet.clone();
    let [
        server_protocol,
        content_length,
        remote_addr,
        method,
        uri,
        user,
    ] = conn_vars(&kept);
    // As sent, for the log (which escapes it); the status line gets `status_protocol`.
    let logged_protocol = server_protocol
        .filter(|p| !p.is_empty())
        .unwrap_or(b"HTTP/1.0");
    let protocol = status_protocol(server_protocol);
    let remote = remote_addr.map(|a| String::from_utf8_lossy(a).into_owned());
    let method = method.unwrap_or_default();
    let uri = uri.unwrap_or_default();
    let user = user.unwrap_or_default();
    let Some(length) = content_length_of(content_length) else {
        crate::logln!(
            "portico: invalid CONTENT_LENGTH {:?} in a uwsgi request from {from}",
            String::from_utf8_lossy(content_length.unwrap_or_default())
        );
        out.extend_from_slice(&protocol);
        out.extend_from_slice(
            b" 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n400 Bad Request\n",
        );
        let _ = writer.write_all(&out).await;
        let _ = writer.shutdown().await;
        return;
    };
    let started = crate::clock::wall();
    let clock = crate::clock::now();
    let taken = take_body(
        reader,
        writer,
        &mut rbuf,
        BodyFraming::Length(length),
        false,
        ctx,
        Wire::Uwsgi,
    )
    .await;
    let (body, pump) = match taken {
        Ok(taken) => taken,
        Err(refused) => {
            crate::logln!(
                "portico: refused uwsgi request from {from}: {} {}",
                refused.status.map_or_else(String::new, |s| s.to_string()),
                refused.why
            );
            if let Some(status) = refused.status {
                let reason = crate::conn::reason_phrase(status);
                let text = format!("{status} {reason}\n");
                out.extend_from_slice(&protocol);
                out.extend_from_slice(
                    format!(
                        " {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    )
                    .as_bytes(),
                );
                let _ = writer.write_all(&out).await;
            }
            let _ = writer.shutdown().await;
            if refused.status == Some(413) {
                // The sender may still be sending the body it announced.
                crate::exchange::linger(reader).await;
            }
            return;
        }
    };
    let remote = remote.unwrap_or_else(|| peer_text(peer));
    let log_fields = ctx.log.fields_of(|| RequestSource::Uwsgi(kept.clone()));
    let framing = ResponseFraming {
        wire: Wire::Uwsgi,
        version: Version::Http11,
        protocol,
        is_head: method == b"HEAD",
        keep_alive_wanted: false,
        served_before: 0,
        closes_after: true,
    };
    let request = Request {
        source: RequestSource::Uwsgi(packet),
        peer,
        local,
        listener: ctx.listener.clone(),
        body,
        handoff: ctx.handoff.clone(),
        tls: None,
    };
    let pending = ctx.handler.handle(request);
    if let Some(done) = exchange(
        reader, writer, &mut rbuf, &mut out, pump, pending, &framing, &remote, ctx,
    )
    .await
    {
        finish(
            ctx,
            &done,
            Logged {
                peer: &remote,
                user,
                started,
                method,
                uri,
                protocol: logged_protocol,
                fields: &log_fields,
            },
            clock,
        );
    }
    // A plain socket's close sends the FIN itself (write.rs, `needs_shutdown`).
    if writer.needs_shutdown() {
        let _ = writer.shutdown().await;
    }
}

/// The last value of SERVER_PROTOCOL, CONTENT_LENGTH, REMOTE_ADDR,
/// REQUEST_METHOD, REQUEST_URI and REMOTE_USER: a parsed packet located
/// them as it was checked (`UwsgiPacket::var` reads them without a walk
/// over the vars, where a `match` on every var's name cost ~40
/// instructions a var).
fn conn_vars(packet: &UwsgiPacket) -> [Option<&[u8]>; 6] {
    [
        &b"SERVER_PROTOCOL"[..],
        b"CONTENT_LENGTH",
        b"REMOTE_ADDR",
        b"REQUEST_METHOD",
        b"REQUEST_URI",
        b"REMOTE_USER",
    ]
    .map(|key| packet.var(key))
}

/// The protocol of the response's status line: `HTTP/1.0` for a request that
/// says exactly that (or says nothing, as uWSGI assumes), `HTTP/1.1` for any
/// other value (`HTTP/1.1`, nginx's `HTTP/2.0` for an h2 client, garbage).
fn status_protocol(server_protocol: Option<&[u8]>) -> Bytes {
    match server_protocol {
        None | Some(b"" | b"HTTP/1.0") => Bytes::from_static(b"HTTP/1.0"),
        Some(_) => Bytes::from_static(b"HTTP/1.1"),
    }
}

/// Read one packet; `None` (after one log line) if it is refused or never completes.
async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    limit: usize,
    from: Peer,
    timeout: Duration,
) -> Option<UwsgiPacket> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match parse_packet(rbuf, limit) {
            Ok(Some(packet)) => return Some(packet),
            Ok(None) => {}
            Err(e) => {
                crate::logln!("portico: {e} from {from}...skip");
                return None;
            }
        }
        let read = tokio::select! {
            read = read_some(reader, rbuf) => read,
            _ = tokio::time::sleep_until(deadline) => {
                if !rbuf.is_empty() {
                    crate::logln!("portico: truncated uwsgi packet from {from}: {} {}", rbuf.len(), announced(rbuf));
                }
                return None;
            }
        };
        match read {
            Ok(0) | Err(_) => {
                if !rbuf.is_empty() {
                    crate::logln!(
                        "portico: truncated uwsgi packet from {from}: {} {}",
                        rbuf.len(),
                        announced(rbuf)
                    );
                }
                return None;
            }
            Ok(_) => {}
        }
    }
}

/// A connection's peer, written as [`peer_text`] writes it when a log line
/// needs it.
#[derive(Clone, Copy)]
struct Peer(Option<SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&peer_text(self.0))
    }
}

/// "bytes of N announced" for a partial packet.
fn announced(rbuf: &BytesMut) -> String {
    if rbuf.len() >= 3 {
        let size = u16::from_le_bytes([rbuf[1], rbuf[2]]);
        format!("bytes received of a {}-byte packet", usize::from(size) + 4)
    } else {
        "bytes received of a 4-byte header".to_string()
    }
}

/// modifier1 30: cut SCRIPT_NAME off the front of PATH_INFO, only when it
/// is really a prefix ending at a `/` boundary (uWSGI cuts blindly).
fn strip_script_name(packet: &mut UwsgiPacket) {
    let Some(script) = packet.var(b"SCRIPT_NAME") else {
        return;
    };
    let script = script.strip_suffix(b"/").unwrap_or(script).to_vec();
    if script.is_empty() {
        return;
    }
    for (key, value) in packet.vars_mut().iter_mut().rev() {
        if key.as_ref() == b"PATH_INFO" {
            if value.starts_with(&script) && matches!(value.get(script.len()), None | Some(b'/')) {
                *value = value.slice(script.len()..);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_proto::uwsgi::encode_packet;

    fn packet(vars: &[(&[u8], &[u8])]) -> UwsgiPacket {
        let mut buf = BytesMut::from(&encode_packet(30, 0, vars)[..]);
        parse_packet(&mut buf, 65535)
            .expect("valid")
            .expect("complete")
    }

    fn path(p: &UwsgiPacket) -> &[u8] {
        p.var(b"PATH_INFO").unwrap_or(b"?")
    }

    #[test]
    fn the_connections_vars_are_the_last_of_each_as_vars_of_finds_them() {
        let p = packet(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"REMOTE_ADDR", b"10.0.0.1"),
            (b"REQUEST_URIX", b"no"),
            (b"CONTENT_LENGTH", b""),
            (b"REQUEST_METHOD", b"POST"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        ]);
        let keys: [&[u8]; 6] = [
            b"SERVER_PROTOCOL",
            b"CONTENT_LENGTH",
            b"REMOTE_ADDR",
            b"REQUEST_METHOD",
            b"REQUEST_URI",
            b"REMOTE_USER",
        ];
        assert_eq!(conn_vars(&p), p.vars_of(keys));
        assert_eq!(conn_vars(&p)[3], Some(&b"POST"[..]));
        assert_eq!(conn_vars(&p)[4], None);
    }

    #[test]
    fn the_status_line_protocol_is_never_copied_from_the_packet() {
        let cases: &[(Option<&[u8]>, &[u8])] = &[
            (None, b"HTTP/1.0"),
            (Some(b""), b"HTTP/1.0"),
            (Some(b"HTTP/1.0"), b"HTTP/1.0"),
            (Some(b"HTTP/1.1"), b"HTTP/1.1"),
            (Some(b"HTTP/2.0"), b"HTTP/1.1"),
            (Some(b"HTTP/1.1\r\nSet-Cookie: evil=1"), b"HTTP/1.1"),
            (Some(b"HTTP/1.0 "), b"HTTP/1.1"),
        ];
        for (given, want) in cases {
            assert_eq!(&status_protocol(*given)[..], *want, "{given:?}");
        }
    }

    #[test]
    fn modifier_30_strips_script_name_only_at_a_boundary() {
        let mut p = packet(&[(b"SCRIPT_NAME", b"/myapp"), (b"PATH_INFO", b"/myapp/foo")]);
        strip_script_name(&mut p);
        assert_eq!(path(&p), b"/foo");
        let mut p = packet(&[(b"SCRIPT_NAME", b"/myapp"), (b"PATH_INFO", b"/myapp")]);
        strip_script_name(&mut p);
        assert_eq!(path(&p), b"");
        let mut p = packet(&[(b"SCRIPT_NAME", b"/myapp"), (b"PATH_INFO", b"/myappX/foo")]);
        strip_script_name(&mut p);
        assert_eq!(path(&p), b"/myappX/foo");
        let mut p = packet(&[(b"SCRIPT_NAME", b"/other"), (b"PATH_INFO", b"/myapp/foo")]);
        strip_script_name(&mut p);
        assert_eq!(path(&p), b"/myapp/foo");
    }
}
