//! nginx's built-in error pages and reason phrases, byte for byte, so a
//! failed upstream looks the same behind Portico as behind nginx.
//!
//! Only the page text lives here; which status a failure maps to is the
//! caller's business (see [`crate::error::ProxyError::status`]). The engine's
//! `error_page` directive, when configured, replaces these pages upstream of us.

use bytes::Bytes;
use portico_server::{Response, ResponseBody, ResponseMeta};

/// The reason phrase nginx 1.22 puts on its own status lines
/// (`ngx_http_status_lines[]` in `ngx_http_header_filter_module.c`), or `""`
/// for a code it has none for (nginx then sends `HTTP/1.1 NNN ` with no text).
/// Note nginx's own wording: `302 Moved Temporarily`, `504 Gateway Time-out`.
pub fn status_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        510 => "Not Extended",
        _ => "",
    }
}

/// nginx's built-in error page for `status`, with `server_token` where nginx
/// writes `nginx` (`server_tokens off`) or `nginx/1.22.1` (on).
///
/// Observed from nginx 1.22.1 (`uwsgi_pass 127.0.0.1:1;`, curl):
/// `<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n`
/// `<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n`
/// `</body>\r\n</html>\r\n`, served as `Content-Type: text/html`.
pub fn error_page_html(status: u16, reason: &str, server_token: &str) -> String {
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n\
         <center><h1>{status} {reason}</h1></center>\r\n\
         <hr><center>{server_token}</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// A complete error [`Response`] carrying nginx's page for `status`.
pub fn error_response(status: u16, server_token: &str) -> Response {
    let reason = status_reason(status);
    let page = error_page_html(status, reason, server_token);
    Response {
        status,
        reason: Bytes::from_static(reason.as_bytes()),
        headers: vec![(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/html"),
        )],
        body: ResponseBody::Full(Bytes::from(page)),
        meta: ResponseMeta {
            app_id: -1,
            ..ResponseMeta::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_gateway_page_matches_nginx_byte_for_byte() {
        // Captured from nginx 1.22.1 (`server_tokens on`, the default).
        let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                     <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n\
                     </body>\r\n</html>\r\n";
        assert_eq!(error_page_html(502, "Bad Gateway", "nginx/1.22.1"), nginx);
        assert_eq!(nginx.len(), 157, "nginx announced Content-Length: 157");
    }

    #[test]
    fn gateway_timeout_page_has_nginx_length() {
        // nginx 1.22.1 answered a read timeout with a 167-byte page
        // (`nginx/1.22.1` token).
        let page = error_page_html(504, status_reason(504), "nginx/1.22.1");
        assert_eq!(page.len(), 167);
        assert!(page.contains("<title>504 Gateway Time-out</title>"));
    }

    #[test]
    fn gateway_timeout_page_matches_nginx_with_server_tokens_off() {
        // Captured from nginx 1.22.1 with `server_tokens off`.
        let nginx = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n\
                     <center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n\
                     </body>\r\n</html>\r\n";
        assert_eq!(error_page_html(504, status_reason(504), "nginx"), nginx);
    }

    #[test]
    fn reasons_use_nginx_wording() {
        for (code, reason) in [
            (302, "Moved Temporarily"),
            (503, "Service Temporarily Unavailable"),
            (504, "Gateway Time-out"),
            (299, ""),
        ] {
            assert_eq!(status_reason(code), reason, "{code}");
        }
    }

    #[test]
    fn error_response_is_html_with_the_page() {
        let r = error_response(500, "portico");
        assert_eq!(
            (r.status, &r.reason[..]),
            (500, &b"Internal Server Error"[..])
        );
        let ResponseBody::Full(body) = r.body else {
            panic!("a full body");
        };
        assert!(body.ends_with(b"<hr><center>portico</center>\r\n</body>\r\n</html>\r\n"));
    }
}
