//! nginx's `ssl_*` directives of the `http` and `server` contexts, read
//! into a layer per block and merged as nginx merges them (a server's
//! value, else the `http` one, else nginx's default) into the server's
//! [`TlsSettings`]. The files are only named here; they are loaded (and a
//! bad one reported) by `portico-server`'s `tls` module, at `-t` and
//! start-up. `ssl_ciphers` is kept as written for the same reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::site::{
    CertKeyPair, DEFAULT_CIPHERS, DEFAULT_SESSION_TIMEOUT, SessionCache, TlsSettings, TlsVersions,
    VerifyClient, VerifyFailure,
};

use super::super::ast::{Directive, NginxError};
use super::values::{arg, flag, parse_size, parse_time};

/// nginx's `builtin` cache size when none is given (sessions).
const BUILTIN_SESSIONS: usize = 20480;

/// Bytes of a `shared` zone per stored session (nginx: "one megabyte can
/// store about 4000 sessions").
const SHARED_BYTES_PER_SESSION: u64 = 256;

/// The `ssl_*` directives one block sets.
#[derive(Debug, Clone, Default)]
pub(super) struct TlsLayer {
    certificates: Option<Vec<(PathBuf, Directive)>>,
    keys: Option<Vec<PathBuf>>,
    /// The versions, and the first one older than TLS 1.2 with its
    /// directive: refused once a server with TLS uses the list (Debian's
    /// stock `http {}` lists TLSv1 for servers that may have none).
    versions: Option<(TlsVersions, Option<(String, Directive)>)>,
    ciphers: Option<String>,
    prefer_server_ciphers: Option<bool>,
    session_cache: Option<SessionCache>,
    session_timeout: Option<Duration>,
    session_tickets: Option<bool>,
    client_ca: Option<PathBuf>,
    verify_client: Option<VerifyClient>,
}

fn full_path(prefix: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        prefix.join(p)
    }
}

fn duplicate(d: &Directive) -> NginxError {
    NginxError::at(d, format!("\"{}\" directive is duplicate", d.name))
}

/// Read `d` into `layer` if it is one of `lists::TLS`; false otherwise.
pub(super) fn apply(
    prefix: &Path,
    layer: &mut TlsLayer,
    d: &Directive,
) -> Result<bool, NginxError> {
    match d.name.as_str() {
        "ssl_certificate" => {
            let path = full_path(prefix, arg(d, 0)?);
            layer
                .certificates
                .get_or_insert_with(Vec::new)
                .push((path, d.clone()));
        }
        "ssl_certificate_key" => {
            let path = full_path(prefix, arg(d, 0)?);
            layer.keys.get_or_insert_with(Vec::new).push(path);
        }
        "ssl_protocols" => {
            if layer.versions.is_some() {
                return Err(duplicate(d));
            }
            layer.versions = Some(protocols(d)?);
        }
        "ssl_ciphers" => {
            if layer.ciphers.is_some() {
                return Err(duplicate(d));
            }
            layer.ciphers = Some(arg(d, 0)?.to_string());
        }
        "ssl_prefer_server_ciphers" => layer.prefer_server_ciphers = Some(flag(d)?),
        "ssl_session_cache" => layer.session_cache = Some(session_cache(d)?),
        "ssl_session_timeout" => {
            let t = parse_time(arg(d, 0)?, true).ok_or_else(|| {
                NginxError::at(d, "\"ssl_session_timeout\" directive invalid value")
            })?;
            layer.session_timeout = Some(t);
        }
        "ssl_session_tickets" => layer.session_tickets = Some(flag(d)?),
        "ssl_client_certificate" => layer.client_ca = Some(full_path(prefix, arg(d, 0)?)),
        "ssl_verify_client" => {
            layer.verify_client = Some(match arg(d, 0)? {
                "on" => VerifyClient::On,
                "off" => VerifyClient::Off,
                "optional" => VerifyClient::Optional,
                "optional_no_ca" => {
                    return Err(NginxError::at(
                        d,
                        "\"ssl_verify_client optional_no_ca\" is not supported by Portico yet \
                         (a client certificate is always verified against ssl_client_certificate)",
                    ));
                }
                v => {
                    return Err(NginxError::at(
                        d,
                        format!("invalid value \"{v}\" in \"ssl_verify_client\" directive"),
                    ));
                }
            });
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `ssl_protocols`: the versions, and the first one older than TLS 1.2.
fn protocols(d: &Directive) -> Result<(TlsVersions, Option<(String, Directive)>), NginxError> {
    let mut v = TlsVersions {
        tls12: false,
        tls13: false,
    };
    let mut old = None;
    for a in d.values() {
        match a {
            "TLSv1.2" => v.tls12 = true,
            "TLSv1.3" => v.tls13 = true,
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => {
                old.get_or_insert_with(|| (a.to_string(), d.clone()));
            }
            other => {
                return Err(NginxError::at(
                    d,
                    format!("invalid value \"{other}\" in \"ssl_protocols\" directive"),
                ));
            }
        }
    }
    Ok((v, old))
}

/// `ssl_session_cache off | none | [builtin[:size]] [shared:name:size]`.
fn session_cache(d: &Directive) -> Result<SessionCache, NginxError> {
    let invalid = |v: &str| {
        NginxError::at(
            d,
            format!("invalid session cache \"{v}\" in \"ssl_session_cache\" directive"),
        )
    };
    let mut sessions = 0usize;
    for v in d.values() {
        match v {
            "off" => return Ok(SessionCache::Off),
            "none" => return Ok(SessionCache::None),
            "builtin" => sessions += BUILTIN_SESSIONS,
            _ => {
                if let Some(n) = v.strip_prefix("builtin:") {
                    sessions += n.parse::<usize>().map_err(|_| invalid(v))?;
                } else if let Some(rest) = v.strip_prefix("shared:") {
                    let (name, size) = rest.rsplit_once(':').ok_or_else(|| invalid(v))?;
                    let bytes = parse_size(size)
                        .filter(|b| *b >= 8 * 4096 && !name.is_empty())
                        .ok_or_else(|| invalid(v))?;
                    sessions +=
                        usize::try_from(bytes / SHARED_BYTES_PER_SESSION).unwrap_or(usize::MAX);
                } else {
                    return Err(invalid(v));
                }
            }
        }
    }
    Ok(SessionCache::Sessions(sessions))
}

/// A server's settings: its layer over the `http` one. `None` when neither
/// names a certificate (the server has no TLS to offer).
pub(super) fn resolve(
    server: &TlsLayer,
    http: &TlsLayer,
    at: &Directive,
) -> Result<Option<TlsSettings>, NginxError> {
    let certificates = server.certificates.as_ref().or(http.certificates.as_ref());
    let keys = server.keys.as_ref().or(http.keys.as_ref());
    let Some(certificates) = certificates else {
        return Ok(None);
    };
    let keys = keys.map(Vec::as_slice).unwrap_or_default();
    let mut pairs = Vec::new();
    for (i, (cert, d)) in certificates.iter().enumerate() {
        let Some(key) = keys.get(i) else {
            return Err(NginxError::at(
                d,
                format!(
                    "no \"ssl_certificate_key\" is defined for certificate \"{}\"",
                    cert.display()
                ),
            ));
        };
        pairs.push(CertKeyPair {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let versions = server.versions.as_ref().or(http.versions.as_ref());
    if let Some((_, Some((old, d)))) = versions {
        return Err(NginxError::at(
            d,
            format!(
                "\"ssl_protocols {old}\" is refused: Portico offers only TLSv1.2 and TLSv1.3 \
                 (older versions are broken; remove {old} from the list)"
            ),
        ));
    }
    let versions = versions.map_or_else(TlsVersions::default, |(v, _)| *v);
    let verify_client = server
        .verify_client
        .or(http.verify_client)
        .unwrap_or_default();
    let client_ca = server.client_ca.clone().or_else(|| http.client_ca.clone());
    if verify_client != VerifyClient::Off && client_ca.is_none() {
        return Err(NginxError::at(
            at,
            "no ssl_client_certificate for ssl_verify_client",
        ));
    }
    Ok(Some(TlsSettings {
        certificates: pairs,
        versions,
        ciphers: server
            .ciphers
            .clone()
            .or_else(|| http.ciphers.clone())
            .unwrap_or_else(|| DEFAULT_CIPHERS.to_string()),
        prefer_server_ciphers: server
            .prefer_server_ciphers
            .or(http.prefer_server_ciphers)
            .unwrap_or(false),
        session_cache: server
            .session_cache
            .or(http.session_cache)
            .unwrap_or(SessionCache::None),
        session_timeout: server
            .session_timeout
            .or(http.session_timeout)
            .unwrap_or(DEFAULT_SESSION_TIMEOUT),
        session_tickets: server
            .session_tickets
            .or(http.session_tickets)
            .unwrap_or(true),
        client_ca,
        verify_client,
        verify_failure: VerifyFailure::BadRequestPage,
        origin: at.origin(),
    }))
}
