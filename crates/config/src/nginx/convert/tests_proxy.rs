//! Reverse-proxy conversion errors: `proxy_pass` URLs, the `proxy_*`
//! settings, upstream `keepalive_*`/`zone`/`resolver`, worded as nginx
//! 1.22 words them. Each case is the body of `http {}` on line 3 of
//! `events {}\nhttp {\nBODY\n}`; `scripts/check-nginx-messages.py
//! crates/config/src/nginx/convert/tests_proxy.rs` checks the first table
//! against the real nginx. The other tables are Portico's own.

use super::testparse::{assert_errors, error_of};

/// (http body, nginx's message; `§` stands for ` in /t/nginx.conf:3`).
const AS_NGINX: &[(&str, &str)] = &[
    (
        r#"server { location / { proxy_pass ftp://x; } }"#,
        r#"invalid URL prefix§"#,
    ),
    (
        r#"server { location / { proxy_pass 127.0.0.1:8000; } }"#,
        r#"invalid URL prefix§"#,
    ),
    (
        r#"server { location / { proxy_pass http://; } }"#,
        r#"no host in upstream ""§"#,
    ),
    (
        r#"server { location / { proxy_pass http:///x; } }"#,
        r#"no host in upstream "/x"§"#,
    ),
    (
        r#"server { location / { proxy_pass http://unix:; } }"#,
        r#"no path in the unix domain socket in upstream "unix:"§"#,
    ),
    (
        r#"server { location / { proxy_pass http://127.0.0.1:0; } }"#,
        r#"invalid port in upstream "127.0.0.1:0"§"#,
    ),
    (
        r#"server { location / { proxy_pass http://127.0.0.1:99999/a; } }"#,
        r#"invalid port in upstream "127.0.0.1:99999/a"§"#,
    ),
    (
        r#"server { location / { proxy_pass http://127.0.0.1:abc; } }"#,
        r#"invalid port in upstream "127.0.0.1:abc"§"#,
    ),
    (
        r#"server { location / { proxy_pass http://[::1; } }"#,
        r#"invalid host in upstream "[::1"§"#,
    ),
    (
        r#"server { location / { proxy_pass http://nonexistent.invalid; } }"#,
        r#"host not found in upstream "nonexistent.invalid"§"#,
    ),
    (
        r#"server { location ~ /a { proxy_pass http://127.0.0.1:8000/x; } }"#,
        r#""proxy_pass" cannot have URI part in location given by regular expression, or inside named location, or inside "if" statement, or inside "limit_except" block§"#,
    ),
    (
        r#"server { location @a { proxy_pass http://127.0.0.1:8000/; } }"#,
        r#""proxy_pass" cannot have URI part in location given by regular expression, or inside named location, or inside "if" statement, or inside "limit_except" block§"#,
    ),
    (
        r#"upstream b { server 127.0.0.1:8000; } server { location / { proxy_pass http://b:8080; } }"#,
        r#"upstream "b" may not have port 8080§"#,
    ),
    (
        r#"server { location / { proxy_pass http://B:80; } } upstream b { server 127.0.0.1:8000; }"#,
        r#"upstream "b" may not have port 80§"#,
    ),
    (
        r#"server { location / { proxy_pass http://127.0.0.1:1; proxy_pass http://127.0.0.1:2; } }"#,
        r#""proxy_pass" directive is duplicate§"#,
    ),
    (
        r#"server { location / { proxy_pass http://$nope; } }"#,
        r#"unknown "nope" variable"#,
    ),
    (
        r#"server { location / { proxy_set_header X-A $nope; } }"#,
        r#"unknown "nope" variable"#,
    ),
    (
        r#"server { proxy_next_upstream error foo; }"#,
        r#"invalid value "foo"§"#,
    ),
    (
        r#"server { uwsgi_next_upstream error http_502; }"#,
        r#"invalid value "http_502"§"#,
    ),
    (
        r#"server { uwsgi_next_upstream http_504; }"#,
        r#"invalid value "http_504"§"#,
    ),
    (
        r#"server { uwsgi_next_upstream_tries -1; }"#,
        r#""uwsgi_next_upstream_tries" directive invalid number§"#,
    ),
    (
        r#"server { uwsgi_next_upstream_timeout 1x; }"#,
        r#""uwsgi_next_upstream_timeout" directive invalid value§"#,
    ),
    (
        r#"server { proxy_next_upstream_tries x; }"#,
        r#""proxy_next_upstream_tries" directive invalid number§"#,
    ),
    (
        r#"server { proxy_next_upstream_timeout 1x; }"#,
        r#""proxy_next_upstream_timeout" directive invalid value§"#,
    ),
    (
        r#"server { proxy_http_version 2.0; }"#,
        r#"invalid value "2.0"§"#,
    ),
    (
        r#"server { proxy_http_version 1.1; proxy_http_version 1.0; }"#,
        r#""proxy_http_version" directive is duplicate§"#,
    ),
    (
        r#"server { proxy_ignore_headers X-Accel-Expires Foo; }"#,
        r#"invalid value "Foo"§"#,
    ),
    (
        r#"server { proxy_redirect foo; }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"server { proxy_redirect off; proxy_redirect off; }"#,
        r#""proxy_redirect" directive is duplicate§"#,
    ),
    (
        r#"server { proxy_redirect / /x; proxy_redirect off; }"#,
        r#""proxy_redirect" directive is duplicate§"#,
    ),
    (
        r#"server { proxy_redirect off; proxy_redirect / /x; }"#,
        r#""proxy_redirect" directive is duplicate§"#,
    ),
    (
        r#"server { proxy_redirect ~(bad /x; }"#,
        r#"pcre2_compile() failed: missing closing parenthesis in "(bad"§"#,
    ),
    (
        r#"server { proxy_redirect $nope /x; }"#,
        r#"unknown "nope" variable"#,
    ),
    (
        r#"server { proxy_redirect default; location / { proxy_pass http://127.0.0.1:8000; } }"#,
        r#""proxy_redirect default" should be placed after the "proxy_pass" directive§"#,
    ),
    (
        r#"server { location / { proxy_redirect default; proxy_pass http://127.0.0.1:8000; } }"#,
        r#""proxy_redirect default" should be placed after the "proxy_pass" directive§"#,
    ),
    (
        r#"server { location / { proxy_pass http://$host; proxy_redirect default; } }"#,
        r#""proxy_redirect default" cannot be used with "proxy_pass" directive with variables§"#,
    ),
    (
        r#"server { proxy_buffers x 4k; }"#,
        r#""proxy_buffers" directive invalid value§"#,
    ),
    (
        r#"server { proxy_buffers 8 x; }"#,
        r#""proxy_buffers" directive invalid value§"#,
    ),
    (
        r#"server { proxy_buffer_size 1q; }"#,
        r#""proxy_buffer_size" directive invalid value§"#,
    ),
    (
        r#"server { proxy_max_temp_file_size x; }"#,
        r#""proxy_max_temp_file_size" directive invalid value§"#,
    ),
    (
        r#"server { proxy_connect_timeout 1x; }"#,
        r#""proxy_connect_timeout" directive invalid value§"#,
    ),
    (
        r#"server { proxy_send_timeout 30m1h; }"#,
        r#""proxy_send_timeout" directive invalid value§"#,
    ),
    (
        r#"server { proxy_read_timeout x; }"#,
        r#""proxy_read_timeout" directive invalid value§"#,
    ),
    (
        r#"resolver 127.0.0.1 valid=x;"#,
        r#"invalid parameter: valid=x§"#,
    ),
    (
        r#"resolver 127.0.0.1 ipv6=maybe;"#,
        r#"invalid parameter: ipv6=maybe§"#,
    ),
    (
        r#"resolver 127.0.0.1:99999;"#,
        r#"invalid port in resolver "127.0.0.1:99999"§"#,
    ),
    (
        r#"resolver nonexistent.invalid;"#,
        r#"host not found in resolver "nonexistent.invalid"§"#,
    ),
    (
        r#"resolver_timeout x;"#,
        r#""resolver_timeout" directive invalid value§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1; keepalive_timeout x; }"#,
        r#""keepalive_timeout" directive invalid value§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1; keepalive_requests x; }"#,
        r#""keepalive_requests" directive invalid number§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1; zone z x; }"#,
        r#"invalid zone size "x"§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1; zone z 1k; }"#,
        r#"zone "z" is too small§"#,
    ),
];

#[test]
fn proxy_errors_are_worded_as_nginx_words_them() {
    assert_errors(AS_NGINX);
}

/// nginx checks the buffer sizes when it merges the blocks and names the
/// line where `http {}` ends (4 here); Portico names the block whose
/// resolved settings fail (3). The words are nginx's.
const BUFFER_CHECKS: &[(&str, &str)] = &[
    (
        r#"server { proxy_buffers 1 4k; }"#,
        r#"there must be at least 2 "proxy_buffers""#,
    ),
    (
        r#"server { location / { proxy_buffer_size 64k; } }"#,
        r#""proxy_busy_buffers_size" must be less than the size of all "proxy_buffers" minus one buffer"#,
    ),
    (
        r#"proxy_busy_buffers_size 1k; server { }"#,
        r#""proxy_busy_buffers_size" must be equal to or greater than the maximum of the value of "proxy_buffer_size" and one of the "proxy_buffers""#,
    ),
    (
        r#"server { proxy_temp_file_write_size 1k; }"#,
        r#""proxy_temp_file_write_size" must be equal to or greater than the maximum of the value of "proxy_buffer_size" and one of the "proxy_buffers""#,
    ),
    (
        r#"server { proxy_max_temp_file_size 1k; }"#,
        r#""proxy_max_temp_file_size" must be equal to zero to disable temporary files usage or must be equal to or greater than the maximum of the value of "proxy_buffer_size" and one of the "proxy_buffers""#,
    ),
];

#[test]
fn buffer_size_checks_use_nginx_words_and_name_the_block() {
    for (body, want) in BUFFER_CHECKS {
        let want = format!("[emerg] {want} in /t/nginx.conf:3");
        assert_eq!(error_of(body), want, "{body}");
    }
    // Valid combinations pass: nginx's defaults, and bigger buffers.
    for ok in [
        "server { proxy_buffers 8 64k; proxy_buffer_size 64k; }",
        "server { proxy_max_temp_file_size 0; }",
    ] {
        assert!(error_of(ok).starts_with("no error"), "{ok}");
    }
}

/// Portico's own messages: (http body, message).
const PORTICO_ONLY: &[(&str, &str)] = &[
    (
        r#"server { location / { proxy_pass https://127.0.0.1; } }"#,
        r#""proxy_pass https://127.0.0.1": https upstreams are not supported by Portico yet (its TLS is for its own listeners; use http:// to the upstream)§"#,
    ),
    (
        r#"server { location / { proxy_pass https://$host; } }"#,
        r#""proxy_pass https://$host": https upstreams are not supported by Portico yet (its TLS is for its own listeners; use http:// to the upstream)§"#,
    ),
    (
        r#"server { location / { proxy_pass http://127.0.0.1:1; health_check; } }"#,
        r#""health_check" requires "proxy_pass" to an upstream group in the same location§"#,
    ),
    (
        r#"server { location / { health_check; } }"#,
        r#""health_check" requires "proxy_pass" to an upstream group in the same location§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1; } server { location / { proxy_pass http://u; health_check match=nope; } }"#,
        r#"match "nope" not found§"#,
    ),
    (
        r#"server { location / { health_check interval=0; } }"#,
        r#"invalid parameter "interval=0"§"#,
    ),
    (
        r#"server { location / { health_check fails=x; } }"#,
        r#"invalid parameter "fails=x"§"#,
    ),
    (
        r#"server { location / { health_check foo; } }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"server { location / { health_check jitter=1s; } }"#,
        r#""health_check" parameter "jitter=1s" is not supported by Portico yet§"#,
    ),
    (r#"match ok { status 2xx; }"#, r#"invalid status "2xx"§"#),
    (
        r#"match ok { status 300-200; }"#,
        r#"invalid status "300-200"§"#,
    ),
    (
        r#"match ok { header Content-Type = text/html; }"#,
        r#""header" in "match" is not supported by Portico yet (only "status")§"#,
    ),
    (
        r#"match ok { status 200; } match ok { status 204; }"#,
        r#"duplicate match "ok"§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1; zone z; zone y; }"#,
        r#""zone" directive is duplicate§"#,
    ),
    (
        r#"resolver unix:/run/dns.sock;"#,
        r#"a resolver on a unix socket ("unix:/run/dns.sock") is not supported by Portico§"#,
    ),
    (
        r#"server { proxy_cookie_path / /x; }"#,
        r#""proxy_cookie_path" directive is not supported by Portico yet§"#,
    ),
    (
        r#"server { proxy_set_body x; }"#,
        r#""proxy_set_body" directive is not supported by Portico yet§"#,
    ),
];

#[test]
fn portico_refusals_and_extension_errors_name_their_place() {
    assert_errors(PORTICO_ONLY);
}
