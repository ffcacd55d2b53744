//! Building rustls server configurations from [`TlsSettings`]: the PEM
//! certificate chains and keys (RSA, ECDSA, Ed25519; several pairs per
//! server, picked by what the client can verify), protocol versions,
//! cipher suites, session resumption (a server-side cache, tickets) and
//! client certificates. Every file is read here, at start-up and by `-t`,
//! so a bad one fails there, named.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use portico_config::site::{
    ListenAddr, SessionCache, Site, TlsSettings, VerifyClient, VerifyFailure,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerSessionMemoryCache,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;

use super::{ALPN_H2, ALPN_HTTP11, ServerTls, TlsListener};
use crate::site::ServerTable;

/// A TLS configuration that cannot be built, with the file at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// What failed, nginx's words first: `cannot load certificate "/x.pem": ...`.
    pub message: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {}

fn error(message: String) -> TlsError {
    TlsError { message }
}

/// The `ring` provider with the suites `settings` allow.
fn provider(settings: &TlsSettings) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let tls12 = super::ciphers::suites_for(&settings.ciphers)
        .map_err(|e| error(format!("ssl_ciphers {e} ({})", settings.origin)))?;
    let mut suites: Vec<rustls::SupportedCipherSuite> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    suites.extend(tls12);
    provider.cipher_suites = suites;
    Ok(provider)
}

/// Read a PEM certificate chain (the leaf first).
fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |why: String| {
        error(format!(
            "cannot load certificate \"{}\": {why}",
            path.display()
        ))
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_text(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_text(&e)))?;
    if chain.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(chain)
}

fn pem_text(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("{other:?}"),
    }
}

/// Read a certificate and its key into a pair rustls signs with.
fn load_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_chain(cert)?;
    let fail = |why: String| {
        error(format!(
            "cannot load certificate key \"{}\": {why}",
            key.display()
        ))
    };
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            fail("no PEM private key in the file".into())
        }
        other => fail(pem_text(&other)),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| fail(format!("unsupported or broken key ({e})")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(error(format!(
                "certificate \"{}\" and key \"{}\" do not match (key values mismatch)",
                cert.display(),
                key.display()
            )));
        }
    }
    Ok(Arc::new(certified))
}

/// A server's certificates, picked as OpenSSL picks among nginx's pairs:
/// the first of the client's signature schemes (its order of preference)
/// that one of the keys can sign with; with TLS 1.2 rustls has already
/// narrowed the schemes to those of the suites the client offers.
#[derive(Debug)]
struct Pairs(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for Pairs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        schemes
            .iter()
            .find_map(|scheme| {
                self.0
                    .iter()
                    .find(|k| k.key.choose_scheme(std::slice::from_ref(scheme)).is_some())
            })
            .or_else(|| self.0.first())
            .cloned()
    }
}

/// Read the CA certificates of `ssl_client_certificate`.
fn client_roots(path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let fail = |why: String| {
        error(format!(
            "cannot load client CA \"{}\": {why}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_text(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_text(&e)))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| fail(format!("not a usable CA certificate ({e})")))?;
    }
    if roots.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(Arc::new(roots))
}

/// Build one server's configuration from its settings.
pub(crate) fn server_tls(settings: &TlsSettings) -> Result<Arc<ServerTls>, TlsError> {
    if settings.certificates.is_empty() {
        return Err(error(format!(
            "no \"ssl_certificate\" is defined for the TLS listener ({})",
            settings.origin
        )));
    }
    let provider = provider(settings)?;
    let pairs = settings
        .certificates
        .iter()
        .map(|p| load_pair(&p.cert, &p.key, &provider))
        .collect::<Result<Vec<_>, _>>()?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if settings.versions.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if settings.versions.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| error(format!("TLS settings of {}: {e}", settings.origin)))?;
    let (builder, judge) = match (&settings.client_ca, settings.verify_client) {
        (Some(ca), verify) if verify != VerifyClient::Off => {
            let roots = client_roots(ca)?;
            let strict = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let strict = if verify == VerifyClient::On {
                strict
            } else {
                strict.allow_unauthenticated()
            };
            let strict = strict
                .build()
                .map_err(|e| error(format!("client CA \"{}\": {e}", ca.display())))?;
            let offered: Arc<dyn ClientCertVerifier> = match settings.verify_failure {
                VerifyFailure::Handshake => strict.clone(),
                VerifyFailure::BadRequestPage => Arc::new(super::accept::Lenient(strict.clone())),
            };
            (builder.with_client_cert_verifier(offered), Some(strict))
        }
        (None, VerifyClient::On | VerifyClient::Optional) => {
            return Err(error(format!(
                "no ssl_client_certificate for ssl_verify_client ({})",
                settings.origin
            )));
        }
        _ => (builder.with_no_client_auth(), None),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Pairs(pairs)));
    config.ignore_client_order = settings.prefer_server_ciphers;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.session_storage = match settings.session_cache {
        SessionCache::Off | SessionCache::None => Arc::new(NoServerSessionStorage {}),
        SessionCache::Sessions(n) => ServerSessionMemoryCache::new(n.max(1)),
    };
    if settings.session_tickets {
        let lifetime = u32::try_from(settings.session_timeout.as_secs()).unwrap_or(u32::MAX);
        let keys = super::tickets::SharedTickets::new(lifetime)
            .ok_or_else(|| error("cannot make session ticket keys: no randomness".into()))?;
        config.ticketer = Arc::new(keys);
    }
    // The HTTP/2 variant shares the session cache and the ticket keys.
    let mut config_h2 = config.clone();
    config_h2.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Ok(Arc::new(ServerTls {
        config: Arc::new(config),
        config_h2: Arc::new(config_h2),
        verify: settings.verify_client,
        failure: settings.verify_failure,
        judge,
    }))
}

/// The TLS of one option-style listener (`--https`).
pub fn tls_for_settings(settings: &TlsSettings) -> Result<Arc<TlsListener>, TlsError> {
    Ok(Arc::new(TlsListener {
        table: None,
        servers: Arc::new(Vec::new()),
        fallback: server_tls(settings)?,
    }))
}

/// Every TLS server of a site, built once and shared by its TLS listeners.
pub struct SiteTls {
    table: Arc<ServerTable>,
    servers: Arc<Vec<Option<Arc<ServerTls>>>>,
}

impl SiteTls {
    /// Load the certificates of every server with TLS settings. The first
    /// failure is returned (nginx stops at the first too).
    pub fn build(site: &Site) -> Result<SiteTls, TlsError> {
        let servers = site
            .servers
            .iter()
            .map(|s| s.tls.as_deref().map(server_tls).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SiteTls {
            table: Arc::new(ServerTable::new(site)),
            servers: Arc::new(servers),
        })
    }

    /// The TLS of the listener bound at `addr`: SNI picks among the
    /// servers of the address a connection arrives on. `None` when no
    /// server on `addr` has TLS settings.
    pub fn listener(&self, addr: &ListenAddr) -> Option<Arc<TlsListener>> {
        let fallback = self
            .table
            .default_for(addr)
            .and_then(|i| self.servers.get(i)?.clone())
            .or_else(|| self.servers.iter().flatten().next().cloned())?;
        Some(Arc::new(TlsListener {
            table: Some(self.table.clone()),
            servers: self.servers.clone(),
            fallback,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_config::site::CertKeyPair;

    fn settings(cert: &Path, key: &Path) -> TlsSettings {
        TlsSettings {
            certificates: vec![CertKeyPair {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            }],
            origin: "test".into(),
            ..TlsSettings::default()
        }
    }

    fn message(settings: &TlsSettings) -> String {
        match tls_for_settings(settings) {
            Ok(_) => panic!("built from bad files"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn a_missing_or_empty_certificate_file_is_named() {
        let dir = std::env::temp_dir().join(format!("portico-tls-build-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let missing = dir.join("missing.pem");
        let got = message(&settings(&missing, &dir.join("k.pem")));
        assert!(
            got.starts_with(&format!(
                "cannot load certificate \"{}\": ",
                missing.display()
            )),
            "{got}"
        );
        let empty = dir.join("empty.pem");
        let _ = std::fs::write(&empty, "no PEM here\n");
        let got = message(&settings(&empty, &dir.join("k.pem")));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            got,
            format!(
                "cannot load certificate \"{}\": no PEM certificate in the file",
                empty.display()
            )
        );
    }

    #[test]
    fn a_server_without_certificates_or_with_no_usable_cipher_is_refused() {
        let none = TlsSettings {
            origin: "site.conf:3".into(),
            ..TlsSettings::default()
        };
        assert!(message(&none).contains("no \"ssl_certificate\""));
        let weak = TlsSettings {
            ciphers: "RC4:3DES".into(),
            ..settings(Path::new("/c"), Path::new("/k"))
        };
        assert!(message(&weak).starts_with("ssl_ciphers \"RC4:3DES\" selects none"));
    }
}
