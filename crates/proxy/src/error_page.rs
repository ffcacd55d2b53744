//! nginx's built-in error pages and reason phrases for the upstream
//! clients, so a failed upstream looks the same behind Portico as behind
//! nginx. The tables are the site engine's (`portico_server`'s
//! `site/pages.rs`, captured from nginx 1.22.1): one copy for all of
//! Portico; this file only names them for the proxy.
//!
//! Which status a failure maps to is the caller's business (see
//! [`crate::error::ProxyError::status`]). The engine's `error_page`
//! directive, when configured, replaces these pages upstream of us.

use portico_server::Response;

/// The reason phrase nginx 1.22 puts on its own status lines, or `""` for
/// a code it has none for (nginx then sends `HTTP/1.1 NNN ` with no text).
/// Note nginx's own wording: `302 Moved Temporarily`, `504 Gateway Time-out`.
pub fn status_reason(status: u16) -> &'static str {
    portico_server::nginx_reason(status)
}

/// A complete error [`Response`] carrying nginx's page for `status`, with
/// `server_token` where nginx writes `nginx` (`server_tokens off`) or
/// `nginx/1.22.1` (on), served as `Content-Type: text/html`.
pub fn error_response(status: u16, server_token: &str) -> Response {
    portico_server::nginx_error_response(status, server_token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_server::ResponseBody;

    fn page(status: u16, token: &str) -> String {
        match error_response(status, token).body {
            ResponseBody::Full(body) => String::from_utf8_lossy(&body).into_owned(),
            _ => String::new(),
        }
    }

    #[test]
    fn bad_gateway_page_matches_nginx_byte_for_byte() {
        // Captured from nginx 1.22.1 (`server_tokens on`, the default).
        let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                     <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n\
                     </body>\r\n</html>\r\n";
        assert_eq!(page(502, "nginx/1.22.1"), nginx);
        assert_eq!(nginx.len(), 157, "nginx announced Content-Length: 157");
    }

    #[test]
    fn gateway_timeout_page_has_nginx_length() {
        // nginx 1.22.1 answered a read timeout with a 167-byte page
        // (`nginx/1.22.1` token).
        let page = page(504, "nginx/1.22.1");
        assert_eq!(page.len(), 167);
        assert!(page.contains("<title>504 Gateway Time-out</title>"));
    }

    #[test]
    fn gateway_timeout_page_matches_nginx_with_server_tokens_off() {
        // Captured from nginx 1.22.1 with `server_tokens off`.
        let nginx = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n\
                     <center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n\
                     </body>\r\n</html>\r\n";
        assert_eq!(page(504, "nginx"), nginx);
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
