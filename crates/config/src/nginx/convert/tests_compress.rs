//! Conversion tests of the compression directives: values, nginx's
//! inheritance (scalars, whole lists, `msie6` on its own), and errors
//! worded as nginx 1.22 words them (`nginx -t` on the same text).

use crate::site::*;

use super::testparse::error_of;
use super::tests::first_server;

fn settings_of(c: &LocationConfig) -> &CompressSettings {
    &c.compress
}

#[test]
fn defaults_are_nginx_and_ngx_brotli_defaults() {
    let s = first_server("server { }");
    let c = settings_of(&s.config);
    assert!(!c.gzip && !c.brotli);
    assert_eq!(c.gzip_min_length, 20);
    assert_eq!(c.gzip_level, 1);
    assert_eq!(c.brotli_level, 6);
    assert_eq!(c.brotli_window_bits, 19);
    assert_eq!(c.gzip_http_version, MinHttpVersion::Http11);
    assert_eq!(c.gzip_proxied, GzipProxied(GzipProxied::OFF));
    assert_eq!(c.gzip_types, CompressTypes::List(vec!["text/html".into()]));
}

#[test]
fn values_are_read_and_inherited_down_the_tree() {
    let s = first_server(
        "gzip on; gzip_types text/css application/json; gzip_comp_level 5; gzip_vary on;\n\
         gzip_min_length 100; gzip_proxied expired auth; gzip_http_version 1.0;\n\
         gzip_disable msie6 \"curl/.*\"; gzip_buffers 16 8k;\n\
         brotli on; brotli_comp_level 4; brotli_types text/plain; brotli_window 1m;\n\
         server { location /a { gzip off; brotli_min_length 1k; } location /b { } }",
    );
    let top = settings_of(&s.config);
    assert!(top.gzip && top.brotli && s.config.gzip_vary);
    assert_eq!(top.gzip_level, 5);
    assert_eq!(top.gzip_min_length, 100);
    assert_eq!(
        top.gzip_proxied,
        GzipProxied(GzipProxied::EXPIRED | GzipProxied::AUTH)
    );
    assert_eq!(top.gzip_http_version, MinHttpVersion::Http10);
    assert!(top.gzip_disable_msie6);
    assert_eq!(top.gzip_disable.len(), 1);
    assert_eq!(top.gzip_buffers, Some((16, 8192)));
    assert_eq!(
        top.gzip_types,
        CompressTypes::List(vec![
            "text/html".into(),
            "text/css".into(),
            "application/json".into()
        ])
    );
    assert_eq!(top.brotli_level, 4);
    assert_eq!(top.brotli_window_bits, 20);
    let a = settings_of(&s.locations[0].config);
    assert!(!a.gzip && a.brotli);
    assert_eq!(a.brotli_min_length, 1024);
    assert_eq!(a.gzip_level, 5);
    // A block that sets nothing shares its parent's settings.
    assert!(std::sync::Arc::ptr_eq(
        &s.locations[1].config.compress,
        &s.config.compress
    ));
}

#[test]
fn lists_are_taken_whole_and_msie6_is_inherited_on_its_own() {
    let s = first_server(
        "gzip_disable msie6 \"^Bot\"; gzip_types text/css;\n\
         server { location /a { gzip_disable \"^Other\"; gzip_types *; gzip_proxied any; } }",
    );
    let a = settings_of(&s.locations[0].config);
    assert_eq!(a.gzip_disable.len(), 1);
    assert_eq!(a.gzip_disable[0].source, "^Other");
    assert!(a.gzip_disable_msie6);
    assert_eq!(a.gzip_types, CompressTypes::Any);
    assert_eq!(a.gzip_proxied, GzipProxied(GzipProxied::ANY));
}

#[test]
fn gzip_directives_are_no_longer_ignored() {
    let names = super::lists::IGNORED;
    for name in [
        "gzip",
        "gzip_types",
        "gzip_proxied",
        "gzip_comp_level",
        "gzip_min_length",
        "gzip_disable",
        "gzip_http_version",
        "gzip_buffers",
    ] {
        assert!(!names.contains(&name), "{name} is still listed as ignored");
    }
}

#[test]
fn errors_are_worded_as_nginx_words_them() {
    let at = " in /t/nginx.conf:3";
    let cases = [
        ("gzip_comp_level 10;", "value must be between 1 and 9"),
        (
            "gzip_comp_level x;",
            "\"gzip_comp_level\" directive invalid number",
        ),
        ("gzip_http_version 2.0;", "invalid value \"2.0\""),
        ("gzip_proxied foo;", "invalid value \"foo\""),
        (
            "gzip_http_version 1.0; gzip_http_version 1.1;",
            "\"gzip_http_version\" directive is duplicate",
        ),
        (
            "gzip_buffers 0 4k;",
            "\"gzip_buffers\" directive invalid value",
        ),
        (
            "gzip_min_length x;",
            "\"gzip_min_length\" directive invalid value",
        ),
        (
            "gzip_disable \"(\";",
            "pcre2_compile() failed: missing closing parenthesis in \"(\"",
        ),
        (
            "gzip maybe;",
            "invalid value \"maybe\" in \"gzip\" directive, it must be \"on\" or \"off\"",
        ),
        ("brotli_comp_level 12;", "value must be between 0 and 11"),
    ];
    for (body, want) in cases {
        assert_eq!(error_of(body), format!("[emerg] {want}{at}"), "{body}");
    }
}
