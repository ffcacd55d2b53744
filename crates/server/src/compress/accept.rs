//! Reading what the client accepts, exactly as the anchors read it: nginx's
//! `ngx_http_gzip_ok` test of `Accept-Encoding` for gzip (a fast path for
//! `gzip,...`, then the `gzip` token with an optional `;q=` between 0.001
//! and 1.000), ngx_brotli's `check_accept_encoding` for `br` (the token,
//! refused only by `;q=0`, `;q=0.0`... ), and nginx's MSIE 4-6 test of
//! `User-Agent` behind `gzip_disable msie6`. Pure functions on bytes.

/// nginx's gzip test of an `Accept-Encoding` value.
pub(crate) fn accepts_gzip(ae: &[u8]) -> bool {
    if ae.len() < b"gzip".len() {
        return false;
    }
    ae.starts_with(b"gzip,") || gzip_accept_encoding(ae)
}

/// `ngx_strcasestrn`: the first case-insensitive `needle` (lower case) in
/// `hay` at or after `from`.
fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let rest = hay.get(from..)?;
    rest.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

/// `ngx_http_gzip_accept_encoding`.
fn gzip_accept_encoding(ae: &[u8]) -> bool {
    let mut start = 0;
    let at = loop {
        let Some(p) = find_ci(ae, start, b"gzip") else {
            return false;
        };
        if p == 0 || matches!(ae[p - 1], b',' | b' ') {
            break p;
        }
        start = p + 4;
    };
    let mut p = at + 4;
    // After the token: `,` accepts, `;` starts the quantity, spaces skip.
    loop {
        let Some(&c) = ae.get(p) else {
            return true;
        };
        p += 1;
        match c {
            b',' => return true,
            b';' => break,
            b' ' => continue,
            _ => return false,
        }
    }
    loop {
        let Some(&c) = ae.get(p) else {
            return true;
        };
        p += 1;
        match c {
            b'q' | b'Q' => break,
            b' ' => continue,
            _ => return false,
        }
    }
    if p + 2 > ae.len() || ae[p] != b'=' {
        return false;
    }
    gzip_quantity(&ae[p + 1..]) != 0
}

/// `ngx_http_gzip_quantity`: q × 1000 as nginx reads it (0 for anything
/// invalid, past 1, or with more than three decimals).
fn gzip_quantity(q: &[u8]) -> u32 {
    let mut it = q.iter().copied();
    let Some(c) = it.next() else {
        return 0;
    };
    if c != b'0' && c != b'1' {
        return 0;
    }
    let mut value = u32::from(c - b'0') * 100;
    let Some(c) = it.next() else {
        return value;
    };
    if c == b',' || c == b' ' {
        return value;
    }
    if c != b'.' {
        return 0;
    }
    let mut n = 0;
    for c in it {
        if c == b',' || c == b' ' {
            break;
        }
        if c.is_ascii_digit() {
            value += u32::from(c - b'0');
            n += 1;
            continue;
        }
        return 0;
    }
    if value > 100 || n > 3 {
        return 0;
    }
    value
}

/// ngx_brotli's `check_accept_encoding` (nginx's header values end in a
/// NUL, read here as a byte past the end).
pub(crate) fn accepts_brotli(ae: &[u8]) -> bool {
    if ae.len() < 2 {
        return false;
    }
    let at = |i: usize| ae.get(i).copied().unwrap_or(0);
    let mut cursor = 0;
    loop {
        let Some(p) = find_ci(ae, cursor, b"br") else {
            return false;
        };
        let before = if p == 0 { b' ' } else { ae[p - 1] };
        cursor = p + 2;
        let after = if cursor >= ae.len() { b' ' } else { ae[cursor] };
        if before != b',' && before != b' ' {
            continue;
        }
        if after != b',' && after != b' ' && after != b';' {
            continue;
        }
        // ";q=0[.[0[0[0]]]]" refuses; anything else accepts.
        let mut c = cursor;
        let skip = |c: &mut usize| {
            while at(*c) == b' ' {
                *c += 1;
            }
        };
        skip(&mut c);
        if at(c) != b';' {
            return true;
        }
        c += 1;
        skip(&mut c);
        if at(c) != b'q' {
            return true;
        }
        c += 1;
        skip(&mut c);
        if at(c) != b'=' {
            return true;
        }
        c += 1;
        skip(&mut c);
        if at(c) != b'0' {
            return true;
        }
        c += 1;
        if at(c) != b'.' {
            return false;
        }
        c += 1;
        for _ in 0..3 {
            let digit = at(c);
            c += 1;
            if !digit.is_ascii_digit() {
                return false;
            }
            if digit > b'0' {
                return true;
            }
        }
        return false;
    }
}

/// nginx's `r->headers_in.msie6`: "MSIE 4." / "MSIE 5." / "MSIE 6."
/// without "SV1" after it.
pub(crate) fn is_msie6(user_agent: &[u8]) -> bool {
    let Some(m) = find_exact(user_agent, b"MSIE ") else {
        return false;
    };
    if m + 7 >= user_agent.len() || user_agent[m + 6] != b'.' {
        return false;
    }
    match user_agent[m + 5] {
        b'4' | b'5' => true,
        b'6' => find_exact(&user_agent[m + 8..], b"SV1").is_none(),
        _ => false,
    }
}

/// `ngx_strstrn`: the first exact `needle` in `hay`.
fn find_exact(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_accepted_as_nginx_reads_accept_encoding() {
        let cases: &[(&str, bool)] = &[
            ("gzip", true),
            ("gzip, deflate, br", true),
            ("deflate, gzip", true),
            ("GZIP", true),
            ("gzip;q=0", false),
            ("gzip; q=0", false),
            ("gzip;q=0.000", false),
            ("gzip;q=0.001", true),
            ("gzip;q=0.5", true),
            ("gzip;q=1", true),
            ("gzip;q=1.0", true),
            ("gzip;q=1.5", false),
            ("gzip;q=0.0001", false),
            ("br, gzip;q=0, deflate", false),
            ("x-gzip", false),
            ("identity", false),
            ("gzipx", false),
            ("*", false),
            ("gzi", false),
            ("deflate,gzip ,br", true),
        ];
        for (ae, want) in cases {
            assert_eq!(accepts_gzip(ae.as_bytes()), *want, "{ae}");
        }
    }

    #[test]
    fn brotli_is_accepted_as_ngx_brotli_reads_accept_encoding() {
        let cases: &[(&str, bool)] = &[
            ("br", true),
            ("gzip, deflate, br", true),
            ("br;q=0", false),
            ("br; q=0", false),
            ("br;q=0.0", false),
            ("br;q=0.000", false),
            ("br;q=0.001", true),
            ("br;q=0.5", true),
            ("br;q=1", true),
            ("gzip, br;q=0", false),
            ("brotli", false),
            ("xbr", false),
            ("BR", true),
            ("gzip", false),
            ("b", false),
        ];
        for (ae, want) in cases {
            assert_eq!(accepts_brotli(ae.as_bytes()), *want, "{ae}");
        }
    }

    #[test]
    fn msie_4_to_6_without_sv1_is_msie6() {
        let cases: &[(&str, bool)] = &[
            ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", true),
            (
                "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
                false,
            ),
            ("Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", true),
            ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", false),
            ("curl/8.0", false),
            ("MSIE 6.", false),
        ];
        for (ua, want) in cases {
            assert_eq!(is_msie6(ua.as_bytes()), *want, "{ua}");
        }
    }
}
