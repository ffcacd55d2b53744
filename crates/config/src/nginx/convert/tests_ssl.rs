//! `listen ... ssl` and the `ssl_*` directives: what reaches a server's
//! `TlsSettings`, nginx's inheritance from `http {}`, and the refusals.

use std::path::PathBuf;
use std::time::Duration;

use crate::site::*;

use super::testparse::error_of;
use super::tests::first_server;

fn tls_of(s: &Server) -> TlsSettings {
    match &s.tls {
        Some(t) => (**t).clone(),
        None => panic!("no TLS settings"),
    }
}

#[test]
fn listen_ssl_with_two_certificate_pairs_reaches_the_server() {
    let s = first_server(
        "server { listen 443 ssl; ssl_certificate rsa.pem; ssl_certificate_key rsa.key;\n\
         ssl_certificate /e/ec.pem; ssl_certificate_key /e/ec.key; }",
    );
    assert!(s.listens[0].ssl);
    let tls = tls_of(&s);
    assert_eq!(
        tls.certificates,
        vec![
            CertKeyPair {
                cert: PathBuf::from("/p/rsa.pem"),
                key: PathBuf::from("/p/rsa.key"),
            },
            CertKeyPair {
                cert: PathBuf::from("/e/ec.pem"),
                key: PathBuf::from("/e/ec.key"),
            },
        ]
    );
    assert_eq!(tls.versions, TlsVersions::default());
    assert_eq!(tls.ciphers, DEFAULT_CIPHERS);
    assert_eq!(tls.session_cache, SessionCache::None);
    assert!(tls.session_tickets && !tls.prefer_server_ciphers);
    assert_eq!(tls.verify_client, VerifyClient::Off);
}

#[test]
fn http_level_settings_are_inherited_and_a_server_overrides_them() {
    let s = first_server(
        "ssl_protocols TLSv1.3; ssl_ciphers ECDHE+AESGCM; ssl_session_cache shared:SSL:10m;\n\
         ssl_session_timeout 1h; ssl_certificate /c.pem; ssl_certificate_key /c.key;\n\
         server { listen 443 ssl; ssl_prefer_server_ciphers on; ssl_session_tickets off;\n\
         ssl_client_certificate /ca.pem; ssl_verify_client optional; }",
    );
    let tls = tls_of(&s);
    assert_eq!(
        tls.versions,
        TlsVersions {
            tls12: false,
            tls13: true
        }
    );
    assert_eq!(tls.ciphers, "ECDHE+AESGCM");
    assert_eq!(tls.session_cache, SessionCache::Sessions(40960));
    assert_eq!(tls.session_timeout, Duration::from_secs(3600));
    assert!(tls.prefer_server_ciphers && !tls.session_tickets);
    assert_eq!(tls.client_ca, Some(PathBuf::from("/ca.pem")));
    assert_eq!(tls.verify_client, VerifyClient::Optional);
}

#[test]
fn protocols_older_than_tls12_are_refused_naming_file_and_line() {
    let e = error_of(
        "server { listen 443 ssl; ssl_certificate /c; ssl_certificate_key /k;\n\
         ssl_protocols TLSv1 TLSv1.1 TLSv1.2; }",
    );
    assert!(e.contains("\"ssl_protocols TLSv1\" is refused"), "{e}");
    assert!(e.ends_with("in /t/nginx.conf:4"), "{e}");
    let e = error_of(
        "ssl_protocols SSLv3 TLSv1.2;\nserver { ssl_certificate /c; ssl_certificate_key /k; }",
    );
    assert!(e.contains("\"ssl_protocols SSLv3\" is refused"), "{e}");
    // Without a server that uses it, the list does nothing (Debian's stock
    // nginx.conf lists TLSv1 in `http {}`).
    let s = first_server("ssl_protocols TLSv1 TLSv1.1 TLSv1.2; server { listen 80; }");
    assert!(s.tls.is_none());
}

#[test]
fn listen_ssl_without_a_certificate_is_refused() {
    let e = error_of("server { listen 443 ssl; }");
    assert!(
        e.contains("no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive"),
        "{e}"
    );
    let e = error_of("server { listen 443 ssl; ssl_certificate /c.pem; }");
    assert!(
        e.contains("no \"ssl_certificate_key\" is defined for certificate \"/c.pem\""),
        "{e}"
    );
}

#[test]
fn verify_client_needs_a_client_certificate_file() {
    let e = error_of(
        "server { listen 443 ssl; ssl_certificate /c; ssl_certificate_key /k; ssl_verify_client on; }",
    );
    assert!(
        e.contains("no ssl_client_certificate for ssl_verify_client"),
        "{e}"
    );
    let e = error_of("ssl_verify_client optional_no_ca;");
    assert!(e.contains("not supported"), "{e}");
}

#[test]
fn session_cache_forms_are_read_as_nginx_sizes_them() {
    for (value, want) in [
        ("off", SessionCache::Off),
        ("none", SessionCache::None),
        ("builtin", SessionCache::Sessions(20480)),
        (
            "builtin:1000 shared:A:1m",
            SessionCache::Sessions(1000 + 4096),
        ),
    ] {
        let s = first_server(&format!(
            "ssl_session_cache {value}; server {{ ssl_certificate /c; ssl_certificate_key /k; }}"
        ));
        assert_eq!(tls_of(&s).session_cache, want, "{value}");
    }
    let e = error_of("ssl_session_cache shared:x;");
    assert!(e.contains("invalid session cache"), "{e}");
}

#[test]
fn a_server_without_certificates_has_no_tls() {
    let s = first_server("ssl_protocols TLSv1.2; server { listen 80; }");
    assert!(s.tls.is_none() && !s.listens[0].ssl);
}
