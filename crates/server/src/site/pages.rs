//! nginx's own answers, byte for byte: the status line's reason phrases and
//! the built-in pages of `ngx_http_special_response.c` (an HTML page for
//! the statuses nginx has one for, an empty body otherwise), with the
//! server token in the page's tail (`portico/VERSION`, or `portico` under
//! `server_tokens off`) and the MSIE/Chrome padding nginx adds to 4xx/5xx
//! pages for those browsers. The tables were captured from nginx 1.22.1
//! answering `return CODE;` for every code from 200 to 599.
//!
//! Which answer a request gets (error_page, intercepts) is decided in
//! `phases.rs`; this file only renders.

use bytes::Bytes;

use crate::handler::{Response, ResponseBody};
use crate::statics::{header_pair, static_meta};

/// Where nginx writes `nginx/1.22.1`, with `server_tokens on`.
const TOKEN_FULL: &str = concat!("portico/", env!("CARGO_PKG_VERSION"));

/// Where nginx writes `nginx`, with `server_tokens off`.
const TOKEN_BARE: &str = "portico";

/// Appended to 4xx/5xx pages for MSIE and Chrome, as nginx's `msie_padding on`
/// does, so those browsers show the page rather than their own.
const MSIE_PADDING: &str = concat!(
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n",
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n",
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n",
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n",
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n",
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n",
);

/// nginx 1.22's status lines: code → reason phrase (captured from the real
/// program; codes it has no phrase for go out as `HTTP/1.1 418 `).
#[rustfmt::skip]
static REASONS: &[(u16, &str)] = &[
    (200, "OK"),
    (201, "Created"),
    (202, "Accepted"),
    (204, "No Content"),
    (206, "Partial Content"),
    (301, "Moved Permanently"),
    (302, "Moved Temporarily"),
    (303, "See Other"),
    (304, "Not Modified"),
    (307, "Temporary Redirect"),
    (308, "Permanent Redirect"),
    (400, "Bad Request"),
    (401, "Unauthorized"),
    (402, "Payment Required"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (405, "Not Allowed"),
    (406, "Not Acceptable"),
    (408, "Request Time-out"),
    (409, "Conflict"),
    (410, "Gone"),
    (411, "Length Required"),
    (412, "Precondition Failed"),
    (413, "Request Entity Too Large"),
    (414, "Request-URI Too Large"),
    (415, "Unsupported Media Type"),
    (416, "Requested Range Not Satisfiable"),
    (421, "Misdirected Request"),
    (429, "Too Many Requests"),
    (500, "Internal Server Error"),
    (501, "Not Implemented"),
    (502, "Bad Gateway"),
    (503, "Service Temporarily Unavailable"),
    (504, "Gateway Time-out"),
    (505, "HTTP Version Not Supported"),
    (507, "Insufficient Storage"),
];

/// nginx 1.22's built-in pages, without the common tail: (code asked,
/// status sent, page head). Captured from the real program with `return CODE`.
#[rustfmt::skip]
static PAGES: &[(u16, u16, &str)] = &[
    (301, 301, "<html>\r\n<head><title>301 Moved Permanently</title></head>\r\n<body>\r\n<center><h1>301 Moved Permanently</h1></center>\r\n"),
    (302, 302, "<html>\r\n<head><title>302 Found</title></head>\r\n<body>\r\n<center><h1>302 Found</h1></center>\r\n"),
    (303, 303, "<html>\r\n<head><title>303 See Other</title></head>\r\n<body>\r\n<center><h1>303 See Other</h1></center>\r\n"),
    (307, 307, "<html>\r\n<head><title>307 Temporary Redirect</title></head>\r\n<body>\r\n<center><h1>307 Temporary Redirect</h1></center>\r\n"),
    (308, 308, "<html>\r\n<head><title>308 Permanent Redirect</title></head>\r\n<body>\r\n<center><h1>308 Permanent Redirect</h1></center>\r\n"),
    (400, 400, "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"),
    (401, 401, "<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n<center><h1>401 Authorization Required</h1></center>\r\n"),
    (402, 402, "<html>\r\n<head><title>402 Payment Required</title></head>\r\n<body>\r\n<center><h1>402 Payment Required</h1></center>\r\n"),
    (403, 403, "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n"),
    (404, 404, "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n"),
    (405, 405, "<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n<center><h1>405 Not Allowed</h1></center>\r\n"),
    (406, 406, "<html>\r\n<head><title>406 Not Acceptable</title></head>\r\n<body>\r\n<center><h1>406 Not Acceptable</h1></center>\r\n"),
    (409, 409, "<html>\r\n<head><title>409 Conflict</title></head>\r\n<body>\r\n<center><h1>409 Conflict</h1></center>\r\n"),
    (410, 410, "<html>\r\n<head><title>410 Gone</title></head>\r\n<body>\r\n<center><h1>410 Gone</h1></center>\r\n"),
    (411, 411, "<html>\r\n<head><title>411 Length Required</title></head>\r\n<body>\r\n<center><h1>411 Length Required</h1></center>\r\n"),
    (412, 412, "<html>\r\n<head><title>412 Precondition Failed</title></head>\r\n<body>\r\n<center><h1>412 Precondition Failed</h1></center>\r\n"),
    (413, 413, "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n"),
    (414, 414, "<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n<body>\r\n<center><h1>414 Request-URI Too Large</h1></center>\r\n"),
    (415, 415, "<html>\r\n<head><title>415 Unsupported Media Type</title></head>\r\n<body>\r\n<center><h1>415 Unsupported Media Type</h1></center>\r\n"),
    (416, 416, "<html>\r\n<head><title>416 Requested Range Not Satisfiable</title></head>\r\n<body>\r\n<center><h1>416 Requested Range Not Satisfiable</h1></center>\r\n"),
    (421, 421, "<html>\r\n<head><title>421 Misdirected Request</title></head>\r\n<body>\r\n<center><h1>421 Misdirected Request</h1></center>\r\n"),
    (429, 429, "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center><h1>429 Too Many Requests</h1></center>\r\n"),
    (494, 400, "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n"),
    (495, 400, "<html>\r\n<head><title>400 The SSL certificate error</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The SSL certificate error</center>\r\n"),
    (496, 400, "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>No required SSL certificate was sent</center>\r\n"),
    (497, 400, "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP request was sent to HTTPS port</center>\r\n"),
    (498, 498, "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n"),
    (500, 500, "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n<center><h1>500 Internal Server Error</h1></center>\r\n"),
    (501, 501, "<html>\r\n<head><title>501 Not Implemented</title></head>\r\n<body>\r\n<center><h1>501 Not Implemented</h1></center>\r\n"),
    (502, 502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"),
    (503, 503, "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"),
    (504, 504, "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n"),
    (505, 505, "<html>\r\n<head><title>505 HTTP Version Not Supported</title></head>\r\n<body>\r\n<center><h1>505 HTTP Version Not Supported</h1></center>\r\n"),
    (507, 507, "<html>\r\n<head><title>507 Insufficient Storage</title></head>\r\n<body>\r\n<center><h1>507 Insufficient Storage</h1></center>\r\n"),
];

/// The reason phrase nginx sends with `status` (empty when it has none).
/// The one table for every part of Portico that speaks as nginx (the site
/// engine, the upstream clients).
pub fn reason(status: u16) -> &'static str {
    REASONS
        .binary_search_by_key(&status, |(code, _)| *code)
        .map_or("", |i| REASONS[i].1)
}

/// How a built-in page is dressed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageStyle {
    pub server_tokens: bool,
    /// The client is MSIE or Chrome (see [`wants_padding`]).
    pub padding: bool,
}

/// nginx's test for the browsers that hide short error pages
/// (`ngx_http_process_user_agent`): "MSIE " (unless "Opera"), or "Chrome/"
/// when the agent has no "Gecko/".
pub(crate) fn wants_padding(user_agent: &[u8]) -> bool {
    let has = |needle: &[u8]| user_agent.windows(needle.len()).any(|w| w == needle);
    if has(b"Opera") {
        return false;
    }
    let msie = user_agent
        .windows(5)
        .position(|w| w == b"MSIE ")
        .is_some_and(|at| at + 7 < user_agent.len());
    msie || (!has(b"Gecko/") && has(b"Chrome/"))
}

/// nginx's answer for `status` when nothing else makes one: the built-in
/// page, or an empty body (typed `plain_type` below 400, as nginx does).
pub(crate) fn special_response(status: u16, style: PageStyle, plain_type: &str) -> Response {
    let token = if style.server_tokens {
        TOKEN_FULL
    } else {
        TOKEN_BARE
    };
    page_response(status, token, style.padding, plain_type)
}

/// nginx's error page for `status` with `token` where nginx writes its own
/// name (`nginx`, `nginx/1.22.1`), as the upstream clients answer a failed
/// upstream (502, 504) when no site engine renders the page.
pub fn error_response(status: u16, token: &str) -> Response {
    page_response(status, token, false, "text/html")
}

fn page_response(status: u16, token: &str, padding: bool, plain_type: &str) -> Response {
    let page = PAGES.iter().find(|(code, _, _)| *code == status);
    let mut headers = Vec::new();
    let (sent, body) = match page {
        Some(&(_, sent, head)) => {
            let mut body = String::with_capacity(head.len() + token.len() + 64);
            body.push_str(head);
            body.push_str("<hr><center>");
            body.push_str(token);
            body.push_str("</center>\r\n</body>\r\n</html>\r\n");
            if padding && status >= 400 {
                body.push_str(MSIE_PADDING);
            }
            headers.push(header_pair("Content-Type", "text/html"));
            (sent, ResponseBody::Full(Bytes::from(body)))
        }
        None => {
            if status != 204 && status < 400 {
                headers.push(header_pair(
                    "Content-Type",
                    Bytes::copy_from_slice(plain_type.as_bytes()),
                ));
            }
            (status, ResponseBody::Empty)
        }
    };
    Response {
        status: sent,
        reason: Bytes::from_static(reason(sent).as_bytes()),
        headers,
        body,
        meta: static_meta(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response) -> &[u8] {
        match &r.body {
            ResponseBody::Full(b) => b,
            _ => b"",
        }
    }

    fn content_type(r: &Response) -> Option<&[u8]> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"content-type"))
            .map(|(_, v)| v.as_ref())
    }

    #[test]
    fn the_404_page_is_nginxs_with_our_token() {
        let r = special_response(
            404,
            PageStyle {
                server_tokens: false,
                padding: false,
            },
            "text/plain",
        );
        assert_eq!((r.status, &r.reason[..]), (404, &b"Not Found"[..]));
        assert_eq!(
            body(&r),
            b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>portico</center>\r\n</body>\r\n</html>\r\n"
        );
        assert_eq!(content_type(&r), Some(&b"text/html"[..]));
    }

    #[test]
    fn server_tokens_on_names_the_version() {
        let r = special_response(
            403,
            PageStyle {
                server_tokens: true,
                padding: false,
            },
            "",
        );
        let text = String::from_utf8_lossy(body(&r)).into_owned();
        assert!(text.contains(concat!(
            "<hr><center>portico/",
            env!("CARGO_PKG_VERSION"),
            "</center>"
        )));
    }

    #[test]
    fn redirect_pages_keep_nginxs_odd_302_title() {
        let r = special_response(302, PageStyle::default(), "text/plain");
        assert_eq!(&r.reason[..], b"Moved Temporarily");
        assert!(body(&r).starts_with(b"<html>\r\n<head><title>302 Found</title>"));
    }

    #[test]
    fn codes_without_a_page_have_empty_bodies_typed_only_below_400() {
        let r = special_response(200, PageStyle::default(), "application/x-dflt");
        assert_eq!(content_type(&r), Some(&b"application/x-dflt"[..]));
        assert!(matches!(r.body, ResponseBody::Empty));
        let r = special_response(418, PageStyle::default(), "text/plain");
        assert_eq!((content_type(&r), &r.reason[..]), (None, &b""[..]));
        let r = special_response(204, PageStyle::default(), "text/plain");
        assert_eq!(content_type(&r), None);
    }

    #[test]
    fn header_too_large_is_sent_as_400() {
        let r = special_response(494, PageStyle::default(), "");
        assert_eq!(r.status, 400);
    }

    #[test]
    fn padding_goes_to_chrome_and_msie_error_pages_only() {
        assert!(wants_padding(
            b"Mozilla/5.0 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
        ));
        assert!(wants_padding(
            b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
        ));
        assert!(!wants_padding(b"Mozilla/5.0 Gecko/20100101 Firefox/120.0"));
        assert!(!wants_padding(b"curl/8.0"));
        let style = PageStyle {
            server_tokens: false,
            padding: true,
        };
        assert!(body(&special_response(404, style, "")).ends_with(MSIE_PADDING.as_bytes()));
        assert!(!body(&special_response(301, style, "")).ends_with(MSIE_PADDING.as_bytes()));
    }
}
