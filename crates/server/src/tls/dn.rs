//! A certificate's subject and issuer as nginx prints them in
//! `$ssl_client_s_dn`/`$ssl_client_i_dn` (RFC 2253 since nginx 1.11.6:
//! the last RDN first, `,` between them, `CN`/`O`/`OU`/... short names).
//! x509-cert's RFC 4514 rendering is that format, except that it upper-
//! cases every name; OpenSSL writes `emailAddress` as such. Also the
//! subject in OpenSSL's one-line form (`/O=Example/CN=alice`), which is
//! uWSGI's `HTTPS_DN` and nginx's `$ssl_client_s_dn_legacy`.

use rustls::pki_types::CertificateDer;
use x509_cert::der::Decode;

/// A certificate's names as nginx and uWSGI show them.
pub(crate) struct Names {
    /// The subject, RFC 2253.
    pub subject: String,
    /// The issuer, RFC 2253.
    pub issuer: String,
    /// The subject in OpenSSL's one-line form.
    pub subject_oneline: String,
}

/// The names of a DER certificate, `None` if it does not parse.
pub(crate) fn names(cert: &CertificateDer<'_>) -> Option<Names> {
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    let tbs = &cert.tbs_certificate;
    let mut oneline = String::new();
    for rdn in tbs.subject.0.iter() {
        for atv in rdn.0.iter() {
            oneline.push('/');
            oneline.push_str(&unescape(&openssl_names(atv.to_string())));
        }
    }
    Some(Names {
        subject: openssl_names(tbs.subject.to_string()),
        issuer: openssl_names(tbs.issuer.to_string()),
        subject_oneline: oneline,
    })
}

/// An RFC 4514 attribute (`O=A\, B`) as OpenSSL's one-line form writes
/// it (`O=A, B`: no escapes).
fn unescape(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    let mut chars = rendered.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// OpenSSL's spelling of the attribute names x509-cert upper-cases.
fn openssl_names(rendered: String) -> String {
    if !rendered.contains("EMAIL") {
        return rendered;
    }
    rendered
        .split_inclusive(',')
        .map(|part| {
            for long in ["EMAILADDRESS=", "EMAIL="] {
                if let Some(rest) = part.strip_prefix(long) {
                    return format!("emailAddress={rest}");
                }
            }
            part.to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneline_values_lose_their_rfc4514_escapes() {
        assert_eq!(unescape("O=A\\, B"), "O=A, B");
        assert_eq!(unescape("CN=x"), "CN=x");
    }

    #[test]
    fn email_keeps_openssl_spelling() {
        assert_eq!(
            openssl_names("EMAILADDRESS=a@b.c,CN=x,O=Org".into()),
            "emailAddress=a@b.c,CN=x,O=Org"
        );
        assert_eq!(openssl_names("CN=x".into()), "CN=x");
    }
}
