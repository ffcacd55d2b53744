//! An HTTP/2 request (pseudo-headers and fields as `h2` decoded them) as
//! the [`RequestHead`] an HTTP/1.1 connection would have parsed: `:path`
//! as the target, `:authority` as Host (when no Host field is sent), the
//! cookie crumbs joined back into one field (RFC 9113 §8.2.3), and the body
//! framing from Content-Length or, without one, chunked (length unknown).

use bytes::Bytes;
use portico_proto::http1::{BodyFraming, Headers, RequestHead, Version};

/// Why a request cannot be served; answered with 400.
pub(super) type Refusal = &'static str;

/// The head of an HTTP/2 request; `end_of_stream`: HEADERS ended the
/// stream (no body at all).
pub(super) fn request_head(
    parts: &http::request::Parts,
    end_of_stream: bool,
) -> Result<RequestHead, Refusal> {
    if parts.method == http::Method::CONNECT {
        return Err("CONNECT is not supported");
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    if target.is_empty() {
        return Err("empty :path");
    }
    let target = Bytes::from(target);
    let q = target.iter().position(|&b| b == b'?');
    let path = target.slice(..q.unwrap_or(target.len()));
    let query = q.map_or_else(Bytes::new, |q| target.slice(q + 1..));

    let mut headers = Headers::with_capacity(parts.headers.len() + 1);
    let authority = parts.uri.authority().map(|a| a.as_str());
    let mut host = None;
    if let Some(host_field) = parts.headers.get(http::header::HOST) {
        host = Some(Bytes::copy_from_slice(host_field.as_bytes()));
    } else if let Some(a) = authority {
        headers.push(b"host", a.as_bytes());
        host = Some(Bytes::copy_from_slice(a.as_bytes()));
    }
    let mut cookie: Option<Vec<u8>> = None;
    let mut content_length = None;
    let mut head_len = 0usize;
    for (name, value) in &parts.headers {
        head_len += name.as_str().len() + value.len() + 4;
        if name == http::header::COOKIE {
            let joined = cookie.get_or_insert_with(Vec::new);
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(value.as_bytes());
            continue;
        }
        if name == http::header::CONTENT_LENGTH {
            let n = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("Content-Length is not a decimal number fitting 64 bits")?;
            if content_length.is_some_and(|m| m != n) {
                return Err("more than one Content-Length");
            }
            content_length = Some(n);
        }
        headers.push(name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(cookie) = cookie {
        headers.push(b"cookie", &cookie);
    }
    let framing = match content_length {
        Some(n) => BodyFraming::Length(n),
        None if end_of_stream => BodyFraming::None,
        None => BodyFraming::Chunked,
    };
    Ok(RequestHead {
        method: Bytes::copy_from_slice(parts.method.as_str().as_bytes()),
        target,
        path,
        query,
        version: Version::Http2,
        headers,
        framing,
        keep_alive: true,
        expect_continue: false,
        host,
        head_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn the_authority_becomes_the_host_and_the_path_splits_at_the_query() {
        let Ok(req) = http::Request::get("https://example.com:8443/a%20b?x=1&y")
            .header("user-agent", "t")
            .body(())
        else {
            panic!("request");
        };
        let Ok(head) = request_head(&parts(req), true) else {
            panic!("head");
        };
        assert_eq!(&head.target[..], b"/a%20b?x=1&y");
        assert_eq!(&head.path[..], b"/a%20b");
        assert_eq!(&head.query[..], b"x=1&y");
        assert_eq!(head.host.as_deref(), Some(&b"example.com:8443"[..]));
        assert_eq!(head.headers.get(0).map_or(&b"?"[..], |h| h.name), b"host");
        assert_eq!(head.version, Version::Http2);
        assert_eq!(head.framing, BodyFraming::None);
    }

    #[test]
    fn cookie_crumbs_are_joined_into_one_field() {
        let Ok(req) = http::Request::get("https://h/")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
        else {
            panic!("request");
        };
        let Ok(head) = request_head(&parts(req), true) else {
            panic!("head");
        };
        let cookies: Vec<_> = head
            .headers
            .iter()
            .filter(|h| h.name == b"cookie")
            .collect();
        assert_eq!(cookies.len(), 1);
        assert_eq!(cookies[0].value, b"a=1; b=2");
    }

    #[test]
    fn a_body_without_a_length_is_framed_as_unknown_length() {
        let Ok(req) = http::Request::post("https://h/u").body(()) else {
            panic!("request");
        };
        let Ok(head) = request_head(&parts(req), false) else {
            panic!("head");
        };
        assert_eq!(head.framing, BodyFraming::Chunked);
        let Ok(req) = http::Request::post("https://h/u")
            .header("content-length", "5")
            .body(())
        else {
            panic!("request");
        };
        let Ok(head) = request_head(&parts(req), false) else {
            panic!("head");
        };
        assert_eq!(head.framing, BodyFraming::Length(5));
    }

    #[test]
    fn connect_is_refused() {
        let Ok(req) = http::Request::connect("https://h:443").body(()) else {
            panic!("request");
        };
        assert!(request_head(&parts(req), true).is_err());
    }
}
