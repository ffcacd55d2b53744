//! `ssl_ciphers` (an OpenSSL cipher list) onto rustls's suites. rustls
//! offers six TLS 1.2 suites, all ECDHE with AEAD, and three TLS 1.3 ones;
//! an OpenSSL list selects among the TLS 1.2 ones by their OpenSSL names
//! and by OpenSSL's keywords (`HIGH`, `ECDHE+AESGCM`, `!aNULL`, ...), in
//! the list's order. Anything rustls does not have (RSA key exchange, DHE,
//! CBC, 3DES, RC4, NULL, export) matches nothing, as a keyword for a
//! cipher OpenSSL lacks does there. TLS 1.3 suites are not chosen by
//! `ssl_ciphers` (nginx leaves them to OpenSSL's defaults too): all three
//! are always offered.

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::cipher_suite as cs;

/// rustls's suites with their OpenSSL names, TLS 1.3 first, then TLS 1.2
/// in OpenSSL's default order.
pub const CIPHER_NAMES: &[(&str, &str)] = &[
    ("TLS13_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    (
        "TLS13_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    ("TLS13_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ),
];

/// A TLS 1.2 suite and the OpenSSL attributes its keywords test.
struct Suite {
    suite: SupportedCipherSuite,
    name: &'static str,
    /// Authentication: `aECDSA` or `aRSA`.
    auth: &'static str,
    /// Encryption: `AES128GCM`, `AES256GCM` or `CHACHA20`.
    enc: &'static str,
    /// The PRF/MAC digest: `SHA256` or `SHA384`.
    digest: &'static str,
}

fn tls12_suites() -> [Suite; 6] {
    let s = |suite, name, auth, enc, digest| Suite {
        suite,
        name,
        auth,
        enc,
        digest,
    };
    [
        s(
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "aECDSA",
            "AES256GCM",
            "SHA384",
        ),
        s(
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-RSA-AES256-GCM-SHA384",
            "aRSA",
            "AES256GCM",
            "SHA384",
        ),
        s(
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "aECDSA",
            "CHACHA20",
            "SHA256",
        ),
        s(
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-RSA-CHACHA20-POLY1305",
            "aRSA",
            "CHACHA20",
            "SHA256",
        ),
        s(
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "aECDSA",
            "AES128GCM",
            "SHA256",
        ),
        s(
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-RSA-AES128-GCM-SHA256",
            "aRSA",
            "AES128GCM",
            "SHA256",
        ),
    ]
}

/// Whether `suite` has the OpenSSL attribute `term` (one word of a `+`
/// combination, case-sensitive as in OpenSSL).
fn has(suite: &Suite, term: &str) -> bool {
    if term == suite.name {
        return true;
    }
    match term {
        // Every rustls TLS 1.2 suite is ECDHE, AEAD, HIGH and TLS 1.2.
        "ALL" | "DEFAULT" | "HIGH" | "FIPS" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "AEAD"
        | "TLSv1.2" => true,
        "AESGCM" | "AES" => suite.enc.starts_with("AES"),
        "AES128" => suite.enc == "AES128GCM",
        "AES256" => suite.enc == "AES256GCM",
        "CHACHA20" => suite.enc == "CHACHA20",
        "ECDSA" | "aECDSA" => suite.auth == "aECDSA",
        "aRSA" => suite.auth == "aRSA",
        "SHA256" | "SHA384" => suite.digest == term,
        // Everything else (kRSA/RSA key exchange, DHE, CBC, 3DES, RC4,
        // NULL, aNULL, export, PSK, SHA1, MD5, ...) names suites rustls
        // does not have.
        _ => false,
    }
}

/// The TLS 1.2 suites an OpenSSL cipher list selects, in its order, or
/// why it selects none.
pub fn suites_for(list: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = tls12_suites();
    let mut active: Vec<usize> = Vec::new();
    let mut banned = [false; 6];
    for item in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if item.starts_with('@') {
            // @STRENGTH, @SECLEVEL=N: ordering and policy knobs; every
            // suite here is already of the strongest kind.
            continue;
        }
        let (op, body) = match item.as_bytes().first() {
            Some(b'!') | Some(b'-') | Some(b'+') => (item.as_bytes()[0], &item[1..]),
            _ => (b' ', item),
        };
        let matching: Vec<usize> = (0..all.len())
            .filter(|&i| body.split('+').all(|term| has(&all[i], term)))
            .collect();
        match op {
            b'!' => {
                for &i in &matching {
                    banned[i] = true;
                }
                active.retain(|i| !matching.contains(i));
            }
            b'-' => active.retain(|i| !matching.contains(i)),
            b'+' => {
                let (moved, kept): (Vec<usize>, Vec<usize>) =
                    active.iter().partition(|i| matching.contains(i));
                active = kept;
                active.extend(moved);
            }
            _ => {
                for i in matching {
                    if !banned[i] && !active.contains(&i) {
                        active.push(i);
                    }
                }
            }
        }
    }
    if active.is_empty() {
        return Err(format!(
            "\"{list}\" selects none of the TLS 1.2 cipher suites Portico has \
             (ECDHE with AES-GCM or CHACHA20-POLY1305; see docs/nginx.md)"
        ));
    }
    Ok(active.into_iter().map(|i| all[i].suite).collect())
}

/// The OpenSSL name of a negotiated suite (`$ssl_cipher`).
pub(crate) fn openssl_name(suite: rustls::CipherSuite) -> &'static str {
    let rustls_name = suite.as_str().unwrap_or_default();
    CIPHER_NAMES
        .iter()
        .find(|(r, _)| *r == rustls_name)
        .map_or("", |(_, o)| o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<&'static str> {
        match suites_for(list) {
            Ok(suites) => suites.iter().map(|s| openssl_name(s.suite())).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn nginx_default_list_offers_every_tls12_suite() {
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 6);
    }

    #[test]
    fn explicit_names_keep_their_order_and_unknown_names_are_skipped() {
        assert_eq!(
            names(
                "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"
            ),
            [
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-CHACHA20-POLY1305"
            ]
        );
    }

    #[test]
    fn combinations_exclusions_and_moves_follow_openssl() {
        assert_eq!(
            names("ECDHE+AESGCM:!aECDSA"),
            ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(
            names("ALL:+AES256:-CHACHA20"),
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384",
            ]
        );
        // `!` bans for good; `-` lets a later item add it back.
        assert_eq!(names("!CHACHA20:CHACHA20:AES128").len(), 2);
        assert_eq!(names("-CHACHA20:CHACHA20").len(), 2);
    }

    #[test]
    fn a_list_of_only_weak_ciphers_is_refused() {
        let Err(e) = suites_for("RC4:3DES:aNULL:EXPORT") else {
            panic!("weak-only list accepted");
        };
        assert!(e.contains("selects none"), "{e}");
    }
}
