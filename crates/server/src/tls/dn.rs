//! A certificate's subject and issuer as nginx prints them in
//! `$ssl_client_s_dn`/`$ssl_client_i_dn` (RFC 2253 since nginx 1.11.6:
//! the last RDN first, `,` between them, `CN`/`O`/`OU`/... short names).
//! x509-cert's RFC 4514 rendering is that format, except that it upper-
//! cases every name; OpenSSL writes `emailAddress` and `DC` as such.

use rustls::pki_types::CertificateDer;
use x509_cert::der::Decode;

/// The subject and issuer of a DER certificate, `None` if it does not parse.
pub(crate) fn subject_and_issuer(cert: &CertificateDer<'_>) -> Option<(String, String)> {
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    let tbs = &cert.tbs_certificate;
    Some((
        openssl_names(tbs.subject.to_string()),
        openssl_names(tbs.issuer.to_string()),
    ))
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
    fn email_keeps_openssl_spelling() {
        assert_eq!(
            openssl_names("EMAILADDRESS=a@b.c,CN=x,O=Org".into()),
            "emailAddress=a@b.c,CN=x,O=Org"
        );
        assert_eq!(openssl_names("CN=x".into()), "CN=x");
    }
}
