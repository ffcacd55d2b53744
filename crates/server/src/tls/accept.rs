//! The TLS handshake of an accepted TCP connection. The first byte tells a
//! TLS client (a handshake record, 0x16) from a plain-HTTP one, which gets
//! nginx's 400 "The plain HTTP request was sent to HTTPS port" and a close
//! instead of a hang. The ClientHello's SNI name picks the server whose
//! configuration finishes the handshake (`LazyConfigAcceptor`), as nginx
//! switches to the server of that name. A client certificate that nginx
//! would refuse at the HTTP level gets its 400 page ("No required SSL
//! certificate was sent", "The SSL certificate error").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_config::site::{VerifyClient, VerifyFailure};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::{HANDSHAKE_TIMEOUT, ServerTls, TlsFacts, TlsListener};
use crate::conn::FIRST_REQUEST_GRACE;

/// The first byte of a TLS record carrying a handshake message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// How long a refused connection's unread request is read and discarded
/// after the answer, so the close does not reset the answer away.
const REFUSED_LINGER: Duration = Duration::from_secs(2);

/// Accepts any client certificate during the handshake (its signature
/// over the handshake is still checked), so that nginx's behaviour can
/// follow: the handshake completes and the request gets a 400 page. The
/// certificate is judged after the handshake by the strict verifier.
#[derive(Debug)]
pub(crate) struct Lenient(pub Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Lenient {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Wait for the connection's first byte without reading it. `None`: it
/// left or the deadline passed.
async fn first_byte(stream: &TcpStream, deadline: Instant) -> Option<u8> {
    let mut byte = [0u8; 1];
    match timeout_at(deadline, stream.peek(&mut byte)).await {
        Ok(Ok(1)) => Some(byte[0]),
        _ => None,
    }
}

/// Write nginx's page for `status` (497, 496 or 495: all sent as 400),
/// close the write side, and read what the client still sends for a
/// moment so the close does not destroy the answer.
async fn refuse<S>(stream: &mut S, status: u16, why: &str, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    crate::logln!("portico: refused request from {}: 400 {why}", peer.ip());
    let (reason, page) = crate::site::refusal_page(status);
    let mut out = Vec::with_capacity(512);
    crate::write::encode_error(&mut out, 400, reason, "text/html", &page);
    if stream.write_all(&out).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let deadline = Instant::now() + REFUSED_LINGER;
    let mut scratch = [0u8; 4096];
    while let Ok(Ok(n)) = timeout_at(deadline, stream.read(&mut scratch)).await {
        if n == 0 {
            break;
        }
    }
}

/// Complete the TLS handshake of `stream` (accepted on `local` from
/// `peer`) within [`HANDSHAKE_TIMEOUT`]. `None` when the connection is
/// done: the client left, failed the handshake, sent plain HTTP, or its
/// certificate was refused (those two are answered first). Once `stop`
/// turns true (a graceful stop), the handshake gets
/// [`FIRST_REQUEST_GRACE`] more, as a plain connection's first request does.
pub(crate) async fn handshake(
    tls: &TlsListener,
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    mut stop: watch::Receiver<bool>,
    h2: bool,
) -> Option<(TlsStream<TcpStream>, Arc<TlsFacts>)> {
    let work = handshake_until_done(tls, stream, peer, local, h2);
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => done,
        () = stopping(&mut stop) => {
            tokio::time::timeout(FIRST_REQUEST_GRACE, work).await.ok().flatten()
        }
    }
}

/// Resolves once a graceful stop has begun (never if it cannot).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn handshake_until_done(
    tls: &TlsListener,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    h2: bool,
) -> Option<(TlsStream<TcpStream>, Arc<TlsFacts>)> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    if first_byte(&stream, deadline).await? != HANDSHAKE_RECORD {
        refuse(
            &mut stream,
            497,
            "The plain HTTP request was sent to HTTPS port",
            peer,
        )
        .await;
        return None;
    }
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = timeout_at(deadline, acceptor).await.ok()?.ok()?;
    let sni = start.client_hello().server_name().map(str::to_owned);
    let server = tls.pick(local, sni.as_deref()).clone();
    let config = if h2 {
        server.config_h2.clone()
    } else {
        server.config.clone()
    };
    let mut stream = timeout_at(deadline, start.into_stream(config))
        .await
        .ok()?
        .ok()?;
    let facts = facts_of(stream.get_ref().1, sni, &server);
    if server.failure == VerifyFailure::BadRequestPage {
        let refused = match facts.client_verify.as_str() {
            "NONE" if server.verify == VerifyClient::On => {
                Some((496, "No required SSL certificate was sent"))
            }
            v if v.starts_with("FAILED") => Some((495, "The SSL certificate error")),
            _ => None,
        };
        if let Some((status, why)) = refused {
            refuse(&mut stream, status, why, peer).await;
            return None;
        }
    }
    Some((stream, Arc::new(facts)))
}

/// The facts of a finished handshake.
fn facts_of(conn: &rustls::ServerConnection, sni: Option<String>, server: &ServerTls) -> TlsFacts {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map_or("", |s| super::ciphers::openssl_name(s.suite()));
    let chain = conn.peer_certificates().filter(|c| !c.is_empty());
    let (names, client_verify) = match (chain, &server.judge) {
        (Some(chain), judge) => {
            let verdict = match (judge, chain.split_first()) {
                (Some(judge), Some((leaf, rest))) => {
                    match judge.verify_client_cert(leaf, rest, UnixTime::now()) {
                        Ok(_) => "SUCCESS".to_string(),
                        Err(e) => format!("FAILED:{}", verify_reason(&e)),
                    }
                }
                _ => "NONE".to_string(),
            };
            (
                chain.first().and_then(|leaf| super::dn::names(leaf)),
                verdict,
            )
        }
        (None, _) => (None, "NONE".to_string()),
    };
    let (client_s_dn, client_i_dn, client_s_dn_legacy) = match names {
        Some(n) => (Some(n.subject), Some(n.issuer), Some(n.subject_oneline)),
        None => (None, None, None),
    };
    TlsFacts {
        protocol,
        cipher,
        server_name: sni,
        client_s_dn,
        client_i_dn,
        client_s_dn_legacy,
        client_verify,
        session_reused: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
    }
}

/// OpenSSL's words for why a certificate does not verify (what nginx
/// puts after `FAILED:` in `$ssl_client_verify`).
fn verify_reason(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "unable to get local issuer certificate",
            C::Expired | C::ExpiredContext { .. } => "certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate is not yet valid",
            C::Revoked => "certificate revoked",
            C::BadSignature => "certificate signature failure",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "unsupported certificate purpose"
            }
            _ => "certificate verify failed",
        },
        _ => "certificate verify failed",
    }
}
