//! A server's TLS settings, as nginx's `ssl_*` directives or uWSGI's
//! `--https ADDR,CERT,KEY[,CIPHERS,CA]` give them: which certificate and
//! key files, which protocol versions and cipher suites, session
//! resumption, and client certificates. Paths only: nothing here opens a
//! file; `portico-server`'s `tls` module loads them (at start-up and for
//! `-t`) and builds the rustls configuration.

use std::path::PathBuf;
use std::time::Duration;

/// nginx's default `ssl_session_timeout`.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// nginx's default `ssl_ciphers` (1.22: `HIGH:!aNULL:!MD5`).
pub const DEFAULT_CIPHERS: &str = "HIGH:!aNULL:!MD5";

/// One `ssl_certificate` with its `ssl_certificate_key` (several pairs per
/// server: an RSA and an ECDSA certificate, the client's algorithms pick).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKeyPair {
    /// PEM: the certificate, then its chain (intermediates).
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}

/// `ssl_protocols`: the versions offered (only TLS 1.2 and 1.3 exist in
/// Portico; older ones are refused when the configuration is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersions {
    pub tls12: bool,
    pub tls13: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        TlsVersions {
            tls12: true,
            tls13: true,
        }
    }
}

/// `ssl_session_cache`: the server-side store of sessions to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCache {
    /// `off`: sessions are never resumed from the server's store.
    Off,
    /// `none` (nginx's default): no server-side store.
    None,
    /// `builtin[:N]` / `shared:NAME:SIZE`: a store of this many sessions
    /// (per worker process in Portico).
    Sessions(usize),
}

/// `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    /// No client certificate is asked for.
    #[default]
    Off,
    /// A certificate signed by `ssl_client_certificate` is required.
    On,
    /// A certificate is asked for; when one is sent it must verify.
    Optional,
}

/// How a failed client verification is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyFailure {
    /// nginx: the handshake completes and the request gets a 400 page
    /// ("No required SSL certificate was sent", "The SSL certificate error").
    #[default]
    BadRequestPage,
    /// uWSGI (OpenSSL's verify callback): the handshake fails.
    Handshake,
}

/// The TLS settings of one server (or one `--https` listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl_certificate`/`ssl_certificate_key` pairs, in order.
    pub certificates: Vec<CertKeyPair>,
    /// `ssl_protocols`.
    pub versions: TlsVersions,
    /// `ssl_ciphers`, an OpenSSL cipher list as written (TLS 1.2 suites;
    /// TLS 1.3's are always all offered, as with nginx).
    pub ciphers: String,
    /// `ssl_prefer_server_ciphers on`: the server's order wins.
    pub prefer_server_ciphers: bool,
    /// `ssl_session_cache`.
    pub session_cache: SessionCache,
    /// `ssl_session_timeout`: how long a session may be resumed.
    pub session_timeout: Duration,
    /// `ssl_session_tickets` (on by default).
    pub session_tickets: bool,
    /// `ssl_client_certificate`: CA certificates (PEM) that sign client certificates.
    pub client_ca: Option<PathBuf>,
    /// `ssl_verify_client`.
    pub verify_client: VerifyClient,
    /// How a client that fails verification is answered.
    pub verify_failure: VerifyFailure,
    /// Where the settings come from, for messages (`site.conf:12`, `--https ...`).
    pub origin: String,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            certificates: Vec::new(),
            versions: TlsVersions::default(),
            ciphers: DEFAULT_CIPHERS.to_string(),
            prefer_server_ciphers: false,
            session_cache: SessionCache::None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            session_tickets: true,
            client_ca: None,
            verify_client: VerifyClient::Off,
            verify_failure: VerifyFailure::BadRequestPage,
            origin: String::new(),
        }
    }
}
