//! TLS termination with rustls (the `ring` provider): building a
//! listener's configurations from the Site's [`TlsSettings`] (`build.rs`,
//! `ciphers.rs`), the handshake of an accepted TCP connection with nginx's
//! answers for a plain-HTTP request and a refused client certificate
//! (`accept.rs`), and the write half's [`SendFile`](crate::write) (`io.rs`:
//! files are read and encrypted, never sent with sendfile(2)).
//!
//! Not here: HTTP itself. After the handshake the connection is served by
//! the same HTTP/1.1 code as a plain one, over the TLS stream's halves; the
//! facts of the handshake reach each request as [`TlsFacts`].

mod accept;
mod build;
mod ciphers;
mod dn;
mod io;
mod tickets;

use std::net::SocketAddr;
use std::sync::Arc;

use portico_config::site::{ListenAddr, VerifyClient, VerifyFailure};

pub(crate) use accept::handshake;
pub use build::{SiteTls, TlsError, tls_for_settings};
pub use ciphers::{CIPHER_NAMES, suites_for};

use crate::site::ServerTable;

/// How long an accepted connection may take to complete its TLS
/// handshake (nginx applies `client_header_timeout`, 60 s by default).
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The ALPN protocols offered on a TLS listener: `http/1.1`, and `h2`
/// first on a listener with HTTP/2.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// HTTP/2's ALPN name.
pub const ALPN_H2: &[u8] = b"h2";

/// What the handshake of one connection settled, for every request on it
/// (`$ssl_*` variables, `HTTPS` and the client's DN in the WSGI environ).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFacts {
    /// `TLSv1.2` or `TLSv1.3` (`$ssl_protocol`).
    pub protocol: &'static str,
    /// The suite's OpenSSL name (`$ssl_cipher`): `TLS_AES_128_GCM_SHA256`,
    /// `ECDHE-RSA-AES128-GCM-SHA256`.
    pub cipher: &'static str,
    /// The SNI name the client sent (`$ssl_server_name`).
    pub server_name: Option<String>,
    /// The client certificate's subject, RFC 2253 (`$ssl_client_s_dn`).
    pub client_s_dn: Option<String>,
    /// The client certificate's issuer, RFC 2253 (`$ssl_client_i_dn`).
    pub client_i_dn: Option<String>,
    /// The subject in OpenSSL's one-line form, `/O=Example/CN=alice`
    /// (`$ssl_client_s_dn_legacy`, uWSGI's `HTTPS_DN`).
    pub client_s_dn_legacy: Option<String>,
    /// `SUCCESS`, `NONE` or `FAILED:reason` (`$ssl_client_verify`).
    pub client_verify: String,
    /// The session was resumed (`$ssl_session_reused`: `r`, else `.`).
    pub session_reused: bool,
    /// The protocol ALPN chose (`http/1.1` or `h2`).
    pub alpn: Option<Vec<u8>>,
}

/// One server's TLS: its rustls configuration and how client
/// certificates are judged.
pub(crate) struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// The same, offering `h2` before `http/1.1` (listeners with HTTP/2).
    pub config_h2: Arc<rustls::ServerConfig>,
    pub verify: VerifyClient,
    pub failure: VerifyFailure,
    /// The strict verifier, run again after the handshake to say whether
    /// the certificate the client sent verifies (`$ssl_client_verify`).
    pub judge: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

/// What a TLS listener serves with: the configuration of each server
/// (chosen by the SNI name as nginx chooses a server by Host), or one
/// configuration for an option-style `--https` listener.
pub struct TlsListener {
    table: Option<Arc<ServerTable>>,
    /// By the site's server index; `None` for servers without TLS.
    servers: Arc<Vec<Option<Arc<ServerTls>>>>,
    /// The listen address's default server's (also when no SNI was sent).
    fallback: Arc<ServerTls>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field(
                "servers",
                &self.servers.iter().filter(|s| s.is_some()).count(),
            )
            .finish()
    }
}

impl TlsListener {
    /// The server whose certificate a connection to `local` asking for
    /// `sni` gets: the server with that name on the address, else the
    /// address's default server (nginx's `ngx_http_ssl_servername`).
    fn pick(&self, local: Option<SocketAddr>, sni: Option<&str>) -> &Arc<ServerTls> {
        let (Some(table), Some(local), Some(sni)) = (&self.table, local, sni) else {
            return self.default_for(local);
        };
        table
            .select(&ListenAddr::Tcp(local), sni.as_bytes())
            .and_then(|s| self.servers.get(s.index)?.as_ref())
            .unwrap_or_else(|| self.default_for(Some(local)))
    }

    fn default_for(&self, local: Option<SocketAddr>) -> &Arc<ServerTls> {
        let (Some(table), Some(local)) = (&self.table, local) else {
            return &self.fallback;
        };
        table
            .default_for(&ListenAddr::Tcp(local))
            .and_then(|i| self.servers.get(i)?.as_ref())
            .unwrap_or(&self.fallback)
    }
}
