//! What the framing-relevant header fields mean: Host, Content-Length,
//! Transfer-Encoding, Connection and Expect. The head parser feeds every field to
//! [`Facts::observe`] during its scan and asks for the verdict once the head is complete,
//! so a semantic error never depends on how the bytes were split across reads.
//!
//! This is where request smuggling is prevented: duplicate or malformed Content-Length,
//! Transfer-Encoding next to Content-Length or on HTTP/1.0, and any transfer coding but a
//! lone `chunked` are refused.

use super::chars::{head, is_token, list_elements, range, tail};
use super::error::HeadError;
use super::field::FieldPos;
use super::head::{BodyFraming, Version};

/// What the semantically interesting fields said, gathered during the scan and judged
/// once the head is complete (so errors do not depend on how the bytes were split).
#[derive(Default)]
pub(crate) struct Facts {
    host_count: usize,
    pub host: Option<(usize, usize)>,
    content_length_count: usize,
    /// `None` if the (last) Content-Length value was not 1*DIGIT fitting a u64.
    content_length: Option<u64>,
    transfer_encoding_count: usize,
    transfer_encoding: (usize, usize),
    pub connection_close: bool,
    pub connection_keep_alive: bool,
    pub expect_continue: bool,
}

impl Facts {
    pub(crate) fn observe(&mut self, buf: &[u8], f: &FieldPos) {
        let name = range(buf, f.name_start, f.name_end);
        let value = range(buf, f.value_start, f.value_end);
        let span = (f.value_start, f.value_end);
        // Dispatch on length first: most fields are none of these and cost one compare.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                self.host_count += 1;
                self.host = Some(span);
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in list_elements(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.connection_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.connection_keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                self.content_length_count += 1;
                self.content_length = parse_content_length(value);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.transfer_encoding_count += 1;
                self.transfer_encoding = span;
            }
            _ => {}
        }
    }

    /// Judges Host, Content-Length and Transfer-Encoding; returns the body framing.
    pub(crate) fn framing(&self, buf: &[u8], version: Version) -> Result<BodyFraming, HeadError> {
        if self.host_count > 1 {
            return Err(HeadError::bad_request("more than one Host header"));
        }
        if self.host_count == 0 && version == Version::Http11 {
            return Err(HeadError::bad_request("missing Host header on HTTP/1.1"));
        }
        if let Some((start, end)) = self.host
            && !is_valid_host(range(buf, start, end))
        {
            return Err(HeadError::bad_request("Host is not a valid host[:port]"));
        }
        if self.content_length_count > 1 {
            return Err(HeadError::bad_request(
                "more than one Content-Length header",
            ));
        }
        if self.content_length_count == 1 && self.content_length.is_none() {
            return Err(HeadError::bad_request(
                "Content-Length is not a decimal number fitting 64 bits",
            ));
        }
        if self.transfer_encoding_count == 0 {
            return Ok(self
                .content_length
                .map_or(BodyFraming::None, BodyFraming::Length));
        }
        if version == Version::Http10 {
            return Err(HeadError::bad_request(
                "Transfer-Encoding on an HTTP/1.0 request",
            ));
        }
        if self.transfer_encoding_count > 1 {
            return Err(HeadError::bad_request(
                "more than one Transfer-Encoding header",
            ));
        }
        if self.content_length_count > 0 {
            return Err(HeadError::bad_request(
                "conflicting Content-Length and Transfer-Encoding",
            ));
        }
        let (start, end) = self.transfer_encoding;
        check_transfer_coding(range(buf, start, end)).map(|()| BodyFraming::Chunked)
    }
}

/// `Content-Length = 1*DIGIT`, fitting a u64. No sign, spaces, lists or other bases.
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Only `chunked` is accepted. Other well-formed coding lists ending in `chunked`
/// (`gzip, chunked`) are 501; anything else (`chunked` not last, `identity`, junk) is 400.
fn check_transfer_coding(value: &[u8]) -> Result<(), HeadError> {
    if value.eq_ignore_ascii_case(b"chunked") {
        return Ok(());
    }
    let count = list_elements(value).count();
    let mut well_formed = true;
    let mut chunked_last = false;
    for (i, coding) in list_elements(value).enumerate() {
        let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
        well_formed &= is_token(coding) && (!is_chunked || i + 1 == count);
        chunked_last = is_chunked;
    }
    if well_formed && chunked_last {
        Err(HeadError::not_implemented(
            "unsupported transfer coding (only chunked is supported)",
        ))
    } else {
        Err(HeadError::bad_request(
            "Transfer-Encoding must be exactly \"chunked\"",
        ))
    }
}

/// RFC 9110 §7.2 `uri-host [ ":" port ]`: a reg-name (unreserved, pct-encoded,
/// sub-delims), an IPv4 address or a bracketed IP literal, then an optional
/// decimal port. An empty value is allowed (a target without authority).
pub(crate) fn is_valid_host(host: &[u8]) -> bool {
    let (name, port) = if host.first() == Some(&b'[') {
        let Some(close) = host.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = range(host, 1, close);
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        (head(host, close + 1), tail(host, close + 1))
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(colon) => (head(host, colon), tail(host, colon)),
            None => (host, tail(host, host.len())),
        }
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit) && digits.len() <= 5,
        Some(_) => false,
    };
    let name_ok = name.first() == Some(&b'[')
        || name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b));
    port_ok && name_ok
}

#[cfg(test)]
mod host_tests {
    use super::is_valid_host;

    #[test]
    fn host_must_be_a_host_and_optional_port() {
        for ok in [
            &b"example.com"[..],
            b"example.com:8080",
            b"127.0.0.1:80",
            b"[::1]:9000",
            b"[::1]",
            b"",
            b"a-b.c_d",
        ] {
            assert!(is_valid_host(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"a b"[..],
            b"example.com/evil",
            b"user@example.com",
            b"example.com:abc",
            b"[::1",
            b"[zz]:1",
            b"a:1:2",
            b"example.com:123456",
        ] {
            assert!(!is_valid_host(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
