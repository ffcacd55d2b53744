//! HTTP/2 settings: `listen ... http2`, `http2 on`, and the `http2_*`
//! limits inherited from `http` to `server`.

use std::time::Duration;

use super::tests::{first_server, http};

#[test]
fn listen_http2_marks_the_address() {
    let s = first_server("server { listen 127.0.0.1:8080 http2; }");
    assert!(s.listens[0].http2);
    assert!(!s.config.http2.on);
    let plain = first_server("server { listen 8080; }");
    assert!(!plain.listens[0].http2);
}

#[test]
fn http2_on_marks_every_address_of_the_server() {
    let s = first_server("server { listen 8080; listen 8081; http2 on; }");
    assert!(s.listens.iter().all(|l| l.http2));
    let inherited = first_server("http2 on; server { listen 8080; }");
    assert!(inherited.listens[0].http2);
    let off = first_server("http2 on; server { listen 8080; http2 off; }");
    assert!(!off.listens[0].http2);
}

#[test]
fn the_limits_have_nginx_defaults() {
    let s = first_server("server { listen 8080 http2; }");
    let h = s.config.http2.settings;
    assert_eq!(h.max_concurrent_streams, 128);
    assert_eq!(h.max_header_list_size, 32 * 1024);
    assert_eq!(h.chunk_size, 8 * 1024);
    assert_eq!(h.idle_timeout, Duration::from_secs(75));
    assert_eq!(h.max_requests, Some(1000));
}

#[test]
fn keepalive_requests_limits_the_streams_of_a_connection() {
    let site = http(
        "keepalive_requests 50;\n\
         server { listen 8080 http2; }\n\
         server { listen 8081 http2; keepalive_requests 3; }",
    );
    assert_eq!(site.servers[0].config.http2.settings.max_requests, Some(50));
    assert_eq!(site.servers[1].config.http2.settings.max_requests, Some(3));
    assert_eq!(portico_default_max_requests(), None);
}

/// The option style sets no limit on the streams of a connection.
fn portico_default_max_requests() -> Option<u64> {
    crate::Http2Settings::default().max_requests
}

#[test]
fn the_limits_are_read_and_inherited_from_http() {
    let site = http(
        "http2_max_concurrent_streams 10; http2_chunk_size 16k; keepalive_timeout 20s;\n\
         server { listen 8080 http2; http2_max_header_size 4k; http2_recv_buffer_size 128k; }\n\
         server { listen 8081 http2; large_client_header_buffers 2 1k; http2_idle_timeout 5s; }",
    );
    let a = site.servers[0].config.http2.settings;
    assert_eq!(a.max_concurrent_streams, 10);
    assert_eq!(a.chunk_size, 16 * 1024);
    assert_eq!(a.max_header_list_size, 4 * 1024);
    assert_eq!(a.recv_window, 128 * 1024);
    assert_eq!(a.idle_timeout, Duration::from_secs(20));
    let b = site.servers[1].config.http2.settings;
    assert_eq!(b.max_header_list_size, 2 * 1024);
    assert_eq!(b.idle_timeout, Duration::from_secs(5));
}

#[test]
fn a_bad_limit_is_refused() {
    let text = "events {}\nhttp {\nserver { http2_max_concurrent_streams x; }\n}\n";
    let parsed = super::to_site(&super::testparse::tree(text), std::path::Path::new("/p"));
    assert!(parsed.is_err());
}
