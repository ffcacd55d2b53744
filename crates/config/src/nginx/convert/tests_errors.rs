//! Conversion tests: every semantic error, worded as nginx 1.22 words it.
//! Each case is the body of `http {}` on line 3 of
//! `events {}\nhttp {\nBODY\n}`; the messages were taken from
//! `nginx -p DIR -c FILE -e stderr -t` on that same text (nginx prints a
//! variable error without a place). A second table pins Portico's own
//! refusals (TLS, unsupported directives), which nginx does not have.

use std::path::Path;

use super::testparse::{assert_errors, tree};
use super::to_site;

/// (http body, nginx's message; `§` stands for ` in /t/nginx.conf:3`).
const AS_NGINX: &[(&str, &str)] = &[
    (
        r#"server { root a; root b; }"#,
        r#""root" directive is duplicate§"#,
    ),
    (
        r#"server { keepalive_requests x; }"#,
        r#""keepalive_requests" directive invalid number§"#,
    ),
    (
        r#"server { gzip_static maybe; }"#,
        r#"invalid value "maybe"§"#,
    ),
    (
        r#"server { server_tokens maybe; }"#,
        r#"invalid value "maybe"§"#,
    ),
    (
        r#"server { autoindex maybe; }"#,
        r#"invalid value "maybe" in "autoindex" directive, it must be "on" or "off"§"#,
    ),
    (
        r#"server { client_max_body_size 1q; }"#,
        r#""client_max_body_size" directive invalid value§"#,
    ),
    (
        r#"server { uwsgi_read_timeout 1x; }"#,
        r#""uwsgi_read_timeout" directive invalid value§"#,
    ),
    (
        r#"server { keepalive_timeout 30m1h; }"#,
        r#""keepalive_timeout" directive invalid value§"#,
    ),
    (
        r#"server { keepalive_timeout 5; keepalive_timeout 7; }"#,
        r#""keepalive_timeout" directive is duplicate§"#,
    ),
    (
        r#"server { location / { alias /a; root /b; } }"#,
        r#""root" directive is duplicate, "alias" directive was specified earlier§"#,
    ),
    (
        r#"server { location / { root /a; alias /b; } }"#,
        r#""alias" directive is duplicate, "root" directive was specified earlier§"#,
    ),
    (
        r#"server { location / { alias /a; alias /b; } }"#,
        r#""alias" directive is duplicate§"#,
    ),
    (
        r#"server { location @n { alias /x; } }"#,
        r#"the "alias" directive cannot be used inside the named location§"#,
    ),
    (
        r#"server { expires 1h; expires 2h; }"#,
        r#""expires" directive is duplicate§"#,
    ),
    (
        r#"server { expires abc; }"#,
        r#""expires" directive invalid value§"#,
    ),
    (
        r#"server { expires modified; }"#,
        r#""expires" directive invalid value§"#,
    ),
    (
        r#"server { expires @25h; }"#,
        r#""expires" directive daily time value must be less than 24 hours§"#,
    ),
    (
        r#"server { expires modified @1h; }"#,
        r#""expires" directive daily time cannot be used with "modified" parameter§"#,
    ),
    (
        r#"server { try_files a b; try_files c d; }"#,
        r#""try_files" directive is duplicate§"#,
    ),
    (r#"server { try_files a =abc; }"#, r#"invalid code "=abc"§"#),
    (
        r#"server { try_files a =1000; }"#,
        r#"invalid code "=1000"§"#,
    ),
    (
        r#"server { index a "" b; }"#,
        r#"index "a" in "index" directive is invalid§"#,
    ),
    (
        r#"server { add_header X y foo; }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"server { location / { uwsgi_param A b foo; } }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"server { listen 99999; }"#,
        r#"invalid port in "99999" of the "listen" directive§"#,
    ),
    (
        r#"server { listen 127.0.0.1:0; }"#,
        r#"invalid port in "127.0.0.1:0" of the "listen" directive§"#,
    ),
    (
        r#"server { listen *:abc; }"#,
        r#"invalid port in "*:abc" of the "listen" directive§"#,
    ),
    (
        r#"server { listen [::1]:x; }"#,
        r#"invalid port in "[::1]:x" of the "listen" directive§"#,
    ),
    (
        r#"server { listen [::1; }"#,
        r#"invalid host in "[::1" of the "listen" directive§"#,
    ),
    (
        r#"server { listen unix:; }"#,
        r#"no path in the unix domain socket in "unix:" of the "listen" directive§"#,
    ),
    (
        r#"server { listen 80x.invalid; }"#,
        r#"host not found in "80x.invalid" of the "listen" directive§"#,
    ),
    (
        r#"server { listen 80 foo; }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"server { listen 80 backlog=x; }"#,
        r#"invalid backlog "backlog=x"§"#,
    ),
    (
        r#"server { listen 80 backlog=-1; }"#,
        r#"invalid backlog "backlog=-1"§"#,
    ),
    (
        r#"server { listen 80 ipv6only=oops; }"#,
        r#"invalid ipv6only flags "oops"§"#,
    ),
    (
        r#"server { listen 80 ipv6only=yes; }"#,
        r#"invalid parameter "ipv6only=yes"§"#,
    ),
    (
        r#"server { listen 80 rcvbuf=x; }"#,
        r#"invalid rcvbuf "rcvbuf=x"§"#,
    ),
    (
        r#"server { listen 80 setfib=1; }"#,
        r#"invalid parameter "setfib=1"§"#,
    ),
    (
        r#"server { listen 80 backlog=0; }"#,
        r#"invalid backlog "backlog=0"§"#,
    ),
    (
        r#"server { listen 80 default_server; } server { listen 80 default_server; }"#,
        r#"a duplicate default server for 0.0.0.0:80§"#,
    ),
    (
        r#"server { listen 80 backlog=5; } server { listen 80 backlog=6; }"#,
        r#"duplicate listen options for 0.0.0.0:80§"#,
    ),
    (
        r#"server { listen 80 default_server; listen 80; }"#,
        r#"a duplicate listen 0.0.0.0:80§"#,
    ),
    (
        r#"server { server_name *x; }"#,
        r#"server name "*x" is invalid§"#,
    ),
    (
        r#"server { server_name "~("; }"#,
        r#"pcre2_compile() failed: missing closing parenthesis in "("§"#,
    ),
    (r#"server { return abc; }"#, r#"invalid return code "abc"§"#),
    (
        r#"server { return 1000; }"#,
        r#"invalid return code "1000"§"#,
    ),
    (r#"server { return 200 "$"; }"#, r#"invalid variable name§"#),
    (
        r#"server { return 200 "${a"; }"#,
        r#"the closing bracket in "a" variable is missing§"#,
    ),
    (
        r#"server { error_page 200 /x; }"#,
        r#"value "200" must be between 300 and 599§"#,
    ),
    (
        r#"server { error_page 404 =abc /x; }"#,
        r#"invalid value "=abc"§"#,
    ),
    (
        r#"server { error_page =404 /x; }"#,
        r#"invalid value "=404"§"#,
    ),
    (
        r#"server { error_page 499 /x; }"#,
        r#"invalid value "499"§"#,
    ),
    (
        r#"server { root /x$document_root; }"#,
        r#"the $document_root variable cannot be used in the "root" directive§"#,
    ),
    (
        r#"server { error_page 4x4 /x; }"#,
        r#"invalid value "4x4"§"#,
    ),
    (
        r#"server { allow 1.2.3.4/40; }"#,
        r#"invalid parameter "1.2.3.4/40"§"#,
    ),
    (r#"server { allow foo; }"#, r#"invalid parameter "foo"§"#),
    (
        r#"server { access_log /x foo; }"#,
        r#"unknown log format "foo"§"#,
    ),
    (
        r#"server { access_log off foo; }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"server { access_log /x main; } log_format main x;"#,
        r#"unknown log format "main"§"#,
    ),
    (
        r#"log_format a x; log_format a y;"#,
        r#"duplicate "log_format" name "a"§"#,
    ),
    (
        r#"log_format combined x;"#,
        r#"duplicate "log_format" name "combined"§"#,
    ),
    (
        r#"log_format a escape=foo x;"#,
        r#"unknown log format escaping "foo"§"#,
    ),
    (
        r#"server { location / { uwsgi_pass foo; } }"#,
        r#"no port in upstream "foo"§"#,
    ),
    (
        r#"server { location / { uwsgi_pass uwsgi://127.0.0.1; } }"#,
        r#"no port in upstream "127.0.0.1"§"#,
    ),
    (
        r#"server { location / { uwsgi_pass nonexistent.invalid:1; } }"#,
        r#"host not found in upstream "nonexistent.invalid"§"#,
    ),
    (
        r#"server { location / { uwsgi_pass 127.0.0.1:99999; } }"#,
        r#"invalid port in upstream "127.0.0.1:99999"§"#,
    ),
    (
        r#"server { location / { uwsgi_pass unix:; } }"#,
        r#"no path in the unix domain socket in upstream "unix:"§"#,
    ),
    (
        r#"server { location / { uwsgi_pass 127.0.0.1:8001; uwsgi_pass a:1;} }"#,
        r#""uwsgi_pass" directive is duplicate§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1; } upstream u { server 127.0.0.1:1; }"#,
        r#"duplicate upstream "u"§"#,
    ),
    (r#"upstream u { }"#, r#"no servers are inside upstream§"#),
    (
        r#"upstream u { server 127.0.0.1:1 weight=0; }"#,
        r#"invalid parameter "weight=0"§"#,
    ),
    (
        r#"upstream u { ip_hash; server 127.0.0.1:1 backup; }"#,
        r#"balancing method does not support parameter "backup"§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1 foo; }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1 max_fails=x; }"#,
        r#"invalid parameter "max_fails=x"§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:1 fail_timeout=x; }"#,
        r#"invalid parameter "fail_timeout=x"§"#,
    ),
    (
        r#"upstream u { server 127.0.0.1:x; }"#,
        r#"invalid port in upstream "127.0.0.1:x"§"#,
    ),
    (
        r#"upstream u { server nonexistent.invalid:1; }"#,
        r#"host not found in upstream "nonexistent.invalid:1"§"#,
    ),
    (
        r#"upstream u { random two foo; server 127.0.0.1:1; }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"upstream u { keepalive x; server 127.0.0.1:1; }"#,
        r#"invalid value "x" in "keepalive" directive§"#,
    ),
    (
        r#"map $uri a { default x; }"#,
        r#"invalid variable name "a"§"#,
    ),
    (
        r#"map $uri $a { default x; a 1; a 2; }"#,
        r#"conflicting parameter "a"§"#,
    ),
    (
        r#"map $uri $a { a b c; }"#,
        r#"invalid number of the map parameters§"#,
    ),
    (
        r#"map $uri $a { default 1; default 2; }"#,
        r#"duplicate default map parameter§"#,
    ),
    (
        r#"server { location = /a { location /a/b {} } }"#,
        r#"location "/a/b" cannot be inside the exact location "/a"§"#,
    ),
    (
        r#"server { location @n { location /b {} } }"#,
        r#"location "/b" cannot be inside the named location "@n"§"#,
    ),
    (
        r#"server { location /a { location /b {} } }"#,
        r#"location "/b" is outside location "/a"§"#,
    ),
    (
        r#"server { location ~* /a { location /b {} } }"#,
        r#"location "/b" is outside location "/a"§"#,
    ),
    (
        r#"server { location /a { location @x {} } }"#,
        r#"named location "@x" can be on the server level only§"#,
    ),
    (
        r#"server { location /a {} location /a {} }"#,
        r#"duplicate location "/a"§"#,
    ),
    (
        r#"server { location = /a {} location = /a {} }"#,
        r#"duplicate location "/a"§"#,
    ),
    (
        r#"server { location /a {} location ^~ /a {} }"#,
        r#"duplicate location "/a"§"#,
    ),
    (
        r#"server { location * /a {} }"#,
        r#"invalid location modifier "*"§"#,
    ),
    (
        r#"server { location ~ "(" {} }"#,
        r#"pcre2_compile() failed: missing closing parenthesis in "("§"#,
    ),
    (r#"server { rewrite ^ ""; }"#, r#"empty replacement§"#),
    (
        r#"server { rewrite ^ /x foo; }"#,
        r#"invalid parameter "foo"§"#,
    ),
    (
        r#"server { rewrite "(" /x; }"#,
        r#"pcre2_compile() failed: missing closing parenthesis in "("§"#,
    ),
    (
        r#"server { return 200 $nope; }"#,
        r#"unknown "nope" variable"#,
    ),
    (
        r#"server { location / { root $nope; } }"#,
        r#"unknown "nope" variable"#,
    ),
];

#[test]
fn semantic_errors_are_worded_as_nginx_words_them() {
    assert_errors(AS_NGINX);
}

/// Portico's own refusals: (http body, message).
const PORTICO_ONLY: &[(&str, &str)] = &[
    (
        r#"server { listen 443 quic; }"#,
        r#""listen ... quic" is not supported by Portico yet (HTTP/3)§"#,
    ),
    (
        r#"server { listen 443 ssl; }"#,
        r#"no "ssl_certificate" is defined for the "listen ... ssl" directive§"#,
    ),
    (
        r#"server { listen 80 proxy_protocol; }"#,
        r#""listen ... proxy_protocol" is not supported by Portico yet§"#,
    ),
    (
        r#"server { location / { proxy_pass https://x; } }"#,
        r#""proxy_pass https://x": https upstreams are not supported by Portico yet (its TLS is for its own listeners; use http:// to the upstream)§"#,
    ),
    (
        r#"server { location / { fastcgi_pass 127.0.0.1:9000; } }"#,
        r#""fastcgi_pass" directive is not supported by Portico yet§"#,
    ),
    (
        r#"server { set $a 1; }"#,
        r#""set" directive is not supported by Portico yet§"#,
    ),
    (
        r#"server { frobnicate on; }"#,
        r#"unknown directive "frobnicate"§"#,
    ),
    (
        r#"server { merge_slashes off; }"#,
        r#""merge_slashes" is supported by Portico only with nginx's default value "on"§"#,
    ),
    (
        r#"server { gzip_static always; }"#,
        r#""gzip_static always" is not supported by Portico yet§"#,
    ),
    (
        r#"server { access_log syslog:server=x; }"#,
        r#"access_log to syslog is not supported by Portico yet§"#,
    ),
    (
        r#"server { access_log /x combined if=$a; }"#,
        r#"access_log if= is not supported by Portico yet§"#,
    ),
    (
        r#"server { location ~ "^/(?=a)" {} }"#,
        r#"regex "^/(?=a)" is not supported by Portico (look-around, including look-ahead and look-behind, is not supported; Portico uses Rust regex syntax, without look-around and backreferences)§"#,
    ),
    (
        r#"server { location / { uwsgi_pass $up; } }"#,
        r#"uwsgi_pass with variables is not supported by Portico yet§"#,
    ),
];

#[test]
fn unsupported_features_are_refused_with_their_place() {
    assert_errors(PORTICO_ONLY);
}

#[test]
fn errors_name_the_line_of_the_offending_directive() {
    let text = "events {}\nhttp {\nserver {\n  location /a {}\n  location /b {}\n  location /a {}\n}\n\
                server {\n  listen 8081 default_server;\n}\nserver {\n  listen 8082;\n  listen 8081 default_server;\n}\n}";
    let got = to_site(&tree(text), Path::new("/p")).map(|_| ());
    assert_eq!(
        got.map_err(|e| e.to_string()),
        Err("[emerg] duplicate location \"/a\" in /t/nginx.conf:6".to_string())
    );
    let text = "events {}\nhttp {\nserver {\n  listen 8081 default_server;\n}\nserver {\n  listen 8082;\n  listen 8081 default_server;\n}\n}";
    let got = to_site(&tree(text), Path::new("/p")).map(|_| ());
    assert_eq!(
        got.map_err(|e| e.to_string()),
        Err("[emerg] a duplicate default server for 0.0.0.0:8081 in /t/nginx.conf:8".to_string())
    );
}

#[test]
fn main_context_errors() {
    let cases = [
        (
            "worker_processes x; events {}",
            "[emerg] \"worker_processes\" directive invalid value in /t/nginx.conf:1",
        ),
        (
            "error_log e.log foo; events {}",
            "[emerg] invalid log level \"foo\" in /t/nginx.conf:1",
        ),
        (
            "events {} http {} http {}",
            "[emerg] \"http\" directive is duplicate in /t/nginx.conf:1",
        ),
        (
            "events { worker_connections x; }",
            "[emerg] invalid number \"x\" in /t/nginx.conf:1",
        ),
        (
            "events {\n worker_connections 0; }\nhttp { server { listen 80; } }",
            "[emerg] 0 worker_connections are not enough for 1 listening sockets in /t/nginx.conf:2",
        ),
        (
            "events {\n worker_connections 2; }\nhttp { server { listen 80; listen 81; } }",
            "[emerg] 2 worker_connections are not enough for 2 listening sockets in /t/nginx.conf:2",
        ),
    ];
    for (text, want) in cases {
        let got = to_site(&tree(text), Path::new("/p")).map(|_| ());
        assert_eq!(
            got.map_err(|e| e.to_string()),
            Err(want.to_string()),
            "{text}"
        );
    }
}
