//! Classifies a request-target (RFC 9112 §3.2) and splits it into the raw path and query
//! that become `PATH_INFO` (after percent-decoding, elsewhere) and `QUERY_STRING`.
//!
//! Byte-level validation (visible ASCII) already happened while scanning the request
//! line; this module only decides the *form*: origin-form (`/p?q`), absolute-form
//! (`http://host/p?q`, authority ignored for routing, userinfo refused as RFC 9110
//! §4.2.4 asks), asterisk-form (`*`, with any method: `OPTIONS *`, SSDP's `M-SEARCH *`).
//! A fragment (`#...`, which clients should not send) is cut off the path and query and
//! kept in the raw target, as nginx does. CONNECT is 501 whatever its target: Portico is
//! not a forward proxy, and authority-form for any other method is 400.
//! docs/compat.md lists each choice with what nginx, gunicorn and llhttp do.

use super::chars::{head, tail};
use super::error::HeadError;

/// The path part of a target: a range of the target, or `/` for an absolute-form target
/// with an empty path (`http://example.com` or `http://example.com?q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathPart {
    Range(usize, usize),
    Slash,
}

/// Offsets into the target bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetParts {
    pub path: PathPart,
    /// The query without its `?`; an empty range when there is none.
    pub query: (usize, usize),
}

/// Splits `target[from..]` at the first `?` into a path range and a query range.
fn split_query(target: &[u8], from: usize) -> (usize, (usize, usize)) {
    match memchr::memchr(b'?', tail(target, from)) {
        Some(q) => (from + q, (from + q + 1, target.len())),
        None => (target.len(), (target.len(), target.len())),
    }
}

/// Decides the form of `target` (already known to be non-empty visible ASCII).
pub(crate) fn split_target(method: &[u8], target: &[u8]) -> Result<TargetParts, HeadError> {
    if method == b"CONNECT" {
        return Err(HeadError::not_implemented(
            "CONNECT is not supported (not a forward proxy)",
        ));
    }
    // Offsets into the part before the fragment are offsets into the whole target.
    let target = head(target, memchr::memchr(b'#', target).unwrap_or(target.len()));
    match target.first() {
        Some(b'/') => {
            let (path_end, query) = split_query(target, 0);
            Ok(TargetParts {
                path: PathPart::Range(0, path_end),
                query,
            })
        }
        Some(b'*') if target.len() == 1 => Ok(TargetParts {
            path: PathPart::Range(0, 1),
            query: (1, 1),
        }),
        _ => split_absolute_form(target),
    }
}

/// `http://authority[/path][?query]` or `https://...`, scheme case-insensitive.
fn split_absolute_form(target: &[u8]) -> Result<TargetParts, HeadError> {
    let after_scheme = if starts_with_ignore_case(target, b"http://") {
        7
    } else if starts_with_ignore_case(target, b"https://") {
        8
    } else if memchr::memchr(b':', target).is_some() && !target.contains(&b'/') {
        return Err(HeadError::bad_request(
            "authority-form request-target is not supported (not a forward proxy)",
        ));
    } else {
        return Err(HeadError::bad_request(
            "request-target must start with '/' or be an http(s) absolute URI",
        ));
    };
    let rest = tail(target, after_scheme);
    let authority_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = head(rest, authority_len);
    if authority.is_empty() {
        return Err(HeadError::bad_request(
            "absolute-form request-target without a host",
        ));
    }
    if authority.contains(&b'@') {
        return Err(HeadError::bad_request(
            "userinfo in request-target authority is not allowed",
        ));
    }
    let path_start = after_scheme + authority_len;
    let (path_end, query) = split_query(target, path_start);
    let path = if path_end == path_start {
        PathPart::Slash
    } else {
        PathPart::Range(path_start, path_end)
    };
    Ok(TargetParts { path, query })
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}
