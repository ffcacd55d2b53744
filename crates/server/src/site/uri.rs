//! nginx's normalisation of a request target into `$uri` and `$args`:
//! a port of `ngx_http_parse_complex_uri` (nginx 1.22, `merge_slashes on`)
//! plus the absolute-form part of `ngx_http_parse_request_line`.
//!
//! The path is split from the args at the first raw `?` and cut at a raw
//! `#`; `%XX` is decoded and the decoded byte then acts as if written
//! (`%2F` is a slash, `%2e%2e` a `..` segment) except that a decoded `?`,
//! `%` or `#` is plain text; slashes are merged; `.` and `..` segments are
//! resolved, and a `..` above `/` is an error (nginx answers 400), as are a
//! bad `%` escape, `%00` and raw control bytes. Args stay raw. This module
//! only computes; the 400 is the caller's.
//!
//! Most targets are already normal (`/path?query`: no `%`, no `#`, no `//`
//! or `/.`): as nginx's parser does with its fast path, those are taken
//! as they are, the three parts slices of the target (no copy); only the
//! others are decoded into a buffer of their own.

use std::fmt;

use bytes::Bytes;

/// A request target, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NormalizedUri {
    /// `$uri`: decoded, `.`/`..` resolved, slashes merged; starts with `/`.
    pub path: Bytes,
    /// `$args`: after the first raw `?`, up to a raw `#`, not decoded.
    pub args: Bytes,
    /// `$request_uri`: the target as sent from its path on (for an
    /// absolute-form target, without `scheme://host:port`).
    pub request_uri: Bytes,
    /// The host of an absolute-form target (`http://Host:81/p`), as sent,
    /// without the port: it takes precedence over the Host header.
    pub host: Option<Bytes>,
}

/// Why a target is refused (each is a 400 in nginx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriError {
    /// Neither `/path` nor `scheme://host[:port][/path]`.
    BadForm,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `%00`.
    Nul,
    /// A raw control byte (below 0x20, or 0x7f).
    ControlByte,
    /// A `..` segment that climbs above `/`.
    AboveRoot,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::BadForm => "request target is neither a path nor an absolute URL",
            UriError::BadEscape => "bad %-escape in the request path",
            UriError::Nul => "%00 in the request path",
            UriError::ControlByte => "control character in the request target",
            UriError::AboveRoot => "\"..\" above the root in the request path",
        })
    }
}

impl std::error::Error for UriError {}

/// Normalise a request target (origin form `/p?q` or absolute form
/// `scheme://host[:port][/p][?q]`); the parts are slices of `target`
/// where they are its bytes as sent.
pub(crate) fn normalize(target: &Bytes) -> Result<NormalizedUri, UriError> {
    match already_normal(target) {
        Some(normal) => Ok(normal),
        None => parse_target(target),
    }
}

/// [`normalize`] the long way: every byte through nginx's states.
fn parse_target(target: &Bytes) -> Result<NormalizedUri, UriError> {
    if target.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(UriError::ControlByte);
    }
    let (host, rest) = match target.first() {
        Some(b'/') => (None, target.clone()),
        Some(b) if b.is_ascii_alphabetic() => {
            let (host, rest) = split_absolute(target)?;
            (Some(target.slice_ref(host)), target.slice_ref(rest))
        }
        _ => return Err(UriError::BadForm),
    };
    // `http://h` has the path "/"; `http://h?x` the path "/" and args "x"
    // (and nginx's `$request_uri` is then "?x").
    let request_uri = if rest.is_empty() {
        Bytes::from_static(b"/")
    } else {
        rest.clone()
    };
    let mut path = Vec::with_capacity(rest.len() + 1);
    let args_at = parse_path(&rest, &mut path)?;
    let args = match args_at {
        Some(at) => {
            let args = &rest[at..];
            let end = args.iter().position(|&b| b == b'#').unwrap_or(args.len());
            rest.slice(at..at + end)
        }
        None => Bytes::new(),
    };
    Ok(NormalizedUri {
        path: Bytes::from(path),
        args,
        request_uri,
        host,
    })
}

/// Bytes that end the fast path's plain run: `/` (a `//` or `/.` may
/// follow), `%`, `?`, `#`, and the control bytes (refused).
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[0x7f] = true;
    table[b'/' as usize] = true;
    table[b'%' as usize] = true;
    table[b'?' as usize] = true;
    table[b'#' as usize] = true;
    table
};

/// An origin-form target that normalisation would leave as it is: its
/// path has no `%`, `#`, `//` or `/.`, and no byte of it is a control
/// byte. Its `$uri` is then its path, its `$args` what follows the first
/// `?`, both slices of `target`. `None`: not known normal (the full
/// parse decides, and finds any error).
fn already_normal(target: &Bytes) -> Option<NormalizedUri> {
    if target.first() != Some(&b'/') {
        return None;
    }
    let bytes = target.as_ref();
    let mut i = 0;
    let query = loop {
        // At a `/`: neither a second `/` nor a `.` segment may follow.
        match bytes.get(i + 1) {
            Some(b'/' | b'.') => return None,
            _ => i += 1,
        }
        while i < bytes.len() && !SPECIAL[bytes[i] as usize] {
            i += 1;
        }
        match bytes.get(i) {
            None => break None,
            Some(b'/') => {}
            Some(b'?') => break Some(i),
            Some(_) => return None,
        }
    };
    let (path, args) = match query {
        None => (target.clone(), Bytes::new()),
        Some(q) => {
            let args = &bytes[q + 1..];
            if args.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'#') {
                return None;
            }
            (target.slice(..q), target.slice(q + 1..))
        }
    };
    Some(NormalizedUri {
        path,
        args,
        request_uri: target.clone(),
        host: None,
    })
}

/// Split `scheme://host[:port]` off an absolute-form target: the host
/// (without port) and the rest (empty, or starting with `/` or `?`).
fn split_absolute(target: &[u8]) -> Result<(&[u8], &[u8]), UriError> {
    let colon = target
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .ok_or(UriError::BadForm)?;
    let after = target[colon..]
        .strip_prefix(b"://")
        .ok_or(UriError::BadForm)?;
    let host_len = if after.first() == Some(&b'[') {
        let close = after
            .iter()
            .position(|&b| b == b']')
            .ok_or(UriError::BadForm)?;
        let literal = &after[1..close];
        let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(b);
        if !literal.iter().all(allowed) {
            return Err(UriError::BadForm);
        }
        close + 1
    } else {
        after
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
            .unwrap_or(after.len())
    };
    let (host, mut rest) = after.split_at(host_len);
    if let Some(port) = rest.strip_prefix(b":") {
        let digits = port.iter().take_while(|b| b.is_ascii_digit()).count();
        rest = &port[digits..];
    }
    match rest.first() {
        None | Some(b'/') | Some(b'?') => Ok((host, rest)),
        Some(_) => Err(UriError::BadForm),
    }
}

/// The states of `ngx_http_parse_complex_uri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Usual,
    Slash,
    Dot,
    DotDot,
}

/// Decode and resolve `raw` (empty, or starting with `/` or `?`) into
/// `path`; the index in `raw` where the args start, after a raw `?`.
fn parse_path(raw: &[u8], path: &mut Vec<u8>) -> Result<Option<usize>, UriError> {
    let mut state = State::Usual;
    let mut i = 0;
    if raw.first() != Some(&b'/') {
        // Absolute form with an empty path.
        path.push(b'/');
        state = State::Slash;
    }
    while i < raw.len() {
        let mut ch = raw[i];
        i += 1;
        let mut decoded = false;
        if ch == b'%' {
            // A `%` without two hex digits after it is a 400 in nginx.
            ch = unescape(raw.get(i..i + 2)).ok_or(UriError::BadEscape)?;
            i += 2;
            if ch == 0 {
                return Err(UriError::Nul);
            }
            if matches!(ch, b'?' | b'%' | b'#') {
                // Decoded, these are text, and leave the dot states as is.
                path.push(ch);
                state = State::Usual;
                continue;
            }
            decoded = true;
        }
        if !decoded && (ch == b'?' || ch == b'#') {
            finish_segment(state, path)?;
            return Ok((ch == b'?').then_some(i));
        }
        state = step(state, ch, path)?;
    }
    finish_segment(state, path)?;
    Ok(None)
}

/// One byte of the path in state `state`; the next state.
fn step(state: State, ch: u8, path: &mut Vec<u8>) -> Result<State, UriError> {
    Ok(match (state, ch) {
        (State::Usual, b'/') => {
            path.push(ch);
            State::Slash
        }
        // merge_slashes on.
        (State::Slash, b'/') => State::Slash,
        (State::Slash, b'.') => {
            path.push(ch);
            State::Dot
        }
        (State::Dot, b'/') => {
            path.pop();
            State::Slash
        }
        (State::Dot, b'.') => {
            path.push(ch);
            State::DotDot
        }
        (State::DotDot, b'/') => {
            climb(path)?;
            State::Slash
        }
        (_, _) => {
            path.push(ch);
            State::Usual
        }
    })
}

/// The end of the path (or a `?`/`#`) in `state`: a final `.` or `..`
/// segment is resolved, leaving the trailing slash.
fn finish_segment(state: State, path: &mut Vec<u8>) -> Result<(), UriError> {
    match state {
        State::Dot => {
            path.pop();
        }
        State::DotDot => climb(path)?,
        State::Usual | State::Slash => {}
    }
    Ok(())
}

/// `path` ends with `/..`: drop that and the segment before it, keeping
/// the slash that precedes it. Nothing before it: above the root.
fn climb(path: &mut Vec<u8>) -> Result<(), UriError> {
    // "/a/.." → "/": search back from before the "/.." for a slash.
    let before = path.len().checked_sub(3).ok_or(UriError::AboveRoot)?;
    let slash = path[..before]
        .iter()
        .rposition(|&b| b == b'/')
        .ok_or(UriError::AboveRoot)?;
    path.truncate(slash + 1);
    Ok(())
}

/// The byte of two hex digits.
fn unescape(digits: Option<&[u8]>) -> Option<u8> {
    let [hi, lo] = digits? else {
        return None;
    };
    let hex = |d: u8| (d as char).to_digit(16);
    Some((hex(*hi)? * 16 + hex(*lo)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Target → (`$uri`, `$args`, `$request_uri`), or the error; every
    /// answer is what nginx 1.22.1 gave for the same request line.
    #[test]
    fn targets_normalise_as_in_nginx() {
        type Want = Result<(&'static str, &'static str, &'static str), UriError>;
        let ok = |uri, args, request_uri| -> Want { Ok((uri, args, request_uri)) };
        let cases: Vec<(&str, Want)> = vec![
            ("/a/../b", ok("/b", "", "/a/../b")),
            ("/a/%2e%2e/b", ok("/b", "", "/a/%2e%2e/b")),
            ("//a///b", ok("/a/b", "", "//a///b")),
            ("/a/./b/.", ok("/a/b/", "", "/a/./b/.")),
            ("/%2F", ok("/", "", "/%2F")),
            ("/..", Err(UriError::AboveRoot)),
            ("/a/..%2f..%2f", Err(UriError::AboveRoot)),
            ("/a/..%2f..%2fb", Err(UriError::AboveRoot)),
            ("/a/..", ok("/", "", "/a/..")),
            ("/a/b/..", ok("/a/", "", "/a/b/..")),
            ("/a%00b", Err(UriError::Nul)),
            ("/a%2", Err(UriError::BadEscape)),
            ("/a%zz", Err(UriError::BadEscape)),
            ("/a%2?b", Err(UriError::BadEscape)),
            ("/a%3Fb?x=%2F&y", ok("/a?b", "x=%2F&y", "/a%3Fb?x=%2F&y")),
            ("/a%23b#frag", ok("/a#b", "", "/a%23b#frag")),
            ("/a?b#c", ok("/a", "b", "/a?b#c")),
            ("/a#b?c", ok("/a", "", "/a#b?c")),
            ("/a?", ok("/a", "", "/a?")),
            ("/a/.%2e/b", ok("/b", "", "/a/.%2e/b")),
            ("/a/..b", ok("/a/..b", "", "/a/..b")),
            ("/a/.b/./c", ok("/a/.b/c", "", "/a/.b/./c")),
            ("/%25", ok("/%", "", "/%25")),
            ("/a+b%2B", ok("/a+b+", "", "/a+b%2B")),
            ("/.", ok("/", "", "/.")),
            ("/a%2f%2f%2fb", ok("/a/b", "", "/a%2f%2f%2fb")),
            ("/%2e", ok("/", "", "/%2e")),
            ("/%2e%2e", Err(UriError::AboveRoot)),
            ("/a/b/%2e%2E/c", ok("/a/c", "", "/a/b/%2e%2E/c")),
            ("/./../x", Err(UriError::AboveRoot)),
            ("/a%C3%A9", ok("/a\u{e9}", "", "/a%C3%A9")),
            ("/a%0a", ok("/a\n", "", "/a%0a")),
            ("/a/..?x", ok("/", "x", "/a/..?x")),
            ("/a/.?x", ok("/a/", "x", "/a/.?x")),
            ("/a/%2e?x", ok("/a/", "x", "/a/%2e?x")),
            ("/a/.#x", ok("/a/", "", "/a/.#x")),
            // A decoded `?` is text: the `..` before it stays.
            ("/a/%2e%2e%3f", ok("/a/..?", "", "/a/%2e%2e%3f")),
            (
                "http://Host.Example:81/p/../q?z=1",
                ok("/q", "z=1", "/p/../q?z=1"),
            ),
            ("http://h", ok("/", "", "/")),
            ("http://h?x=1", ok("/", "x=1", "?x=1")),
            ("http://h:/p", ok("/p", "", "/p")),
            ("HTTP://h/p", ok("/p", "", "/p")),
            ("foo+bar://h/p", ok("/p", "", "/p")),
            ("http://user@h/p", Err(UriError::BadForm)),
            ("*", Err(UriError::BadForm)),
            ("abc", Err(UriError::BadForm)),
            ("", Err(UriError::BadForm)),
            ("/a\x01", Err(UriError::ControlByte)),
        ];
        for (target, want) in cases {
            let target = Bytes::copy_from_slice(target.as_bytes());
            let got = normalize(&target);
            let got = got.as_ref().map(|n| {
                (
                    String::from_utf8_lossy(&n.path).into_owned(),
                    String::from_utf8_lossy(&n.args).into_owned(),
                    String::from_utf8_lossy(&n.request_uri).into_owned(),
                )
            });
            let want = want.map(|(u, a, r)| (u.to_string(), a.to_string(), r.to_string()));
            assert_eq!(got.map_err(|e| *e), want, "{target:?}");
        }
    }

    /// Every target of up to six bytes from an alphabet of the bytes that
    /// matter: the fast path, where it answers, agrees with the full parse.
    #[test]
    fn already_normal_targets_parse_to_themselves() {
        let alphabet = b"/.a%2e?#\x01";
        let mut taken = 0;
        let mut target = Vec::new();
        for len in 1..=6u32 {
            for mut n in 0..alphabet.len().pow(len - 1) {
                target.clear();
                target.push(b'/');
                for _ in 1..len {
                    target.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let target = Bytes::copy_from_slice(&target);
                if let Some(fast) = already_normal(&target) {
                    taken += 1;
                    assert_eq!(Ok(fast), parse_target(&target), "{target:?}");
                }
            }
        }
        assert!(taken > 1000, "the fast path took only {taken} targets");
    }

    #[test]
    fn decoded_bytes_are_kept_as_bytes() {
        let uri = normalize(&Bytes::from_static(b"/a%C3%A9%ff")).unwrap_or_default();
        assert_eq!(uri.path.as_ref(), b"/a\xc3\xa9\xff");
    }

    #[test]
    fn absolute_form_targets_give_their_host() {
        let cases: &[(&str, Option<&str>)] = &[
            ("http://Host.Example:81/p", Some("Host.Example")),
            ("http://[::1]:8080/p", Some("[::1]")),
            ("http://h", Some("h")),
            ("/p", None),
        ];
        for &(target, want) in cases {
            let uri = normalize(&Bytes::copy_from_slice(target.as_bytes())).unwrap_or_default();
            assert_eq!(uri.host.as_deref(), want.map(str::as_bytes), "{target}");
        }
    }
}
