//! Reverse-proxy conversion: what `proxy_pass`, the `proxy_*` settings and
//! the upstream additions become in the Site model, with nginx's
//! inheritance and defaults (values checked against nginx 1.22's source
//! where they are computed: `$proxy_host`, default headers, redirects).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::site::*;

use super::testparse::tree;
use super::tests::{first_server, http, lit};
use super::to_site_with_warnings;

fn pass_of(l: &Location) -> &ProxyPass {
    match &l.content {
        Content::Proxy(p) => p,
        other => panic!("not a proxy location: {other:?}"),
    }
}

fn headers(p: &ProxySettings) -> Vec<(String, String)> {
    p.set_headers
        .iter()
        .map(|(n, t)| {
            let v = match t.parts.as_slice() {
                [TemplatePart::Var(Variable::ProxyHost)] => "$proxy_host".to_string(),
                _ => lit(t),
            };
            (n.clone(), v)
        })
        .collect()
}

#[test]
fn proxy_pass_forms_give_target_uri_and_proxy_host() {
    let tcp = |h: &str, p| {
        ProxyTarget::Peer(UpstreamTarget::Tcp {
            host: h.into(),
            port: p,
        })
    };
    // (URL, target, URI part, $proxy_host, $proxy_port)
    let cases = [
        (
            "http://127.0.0.1:8000",
            tcp("127.0.0.1", 8000),
            None,
            "127.0.0.1:8000",
            8000,
        ),
        (
            "http://127.0.0.1",
            tcp("127.0.0.1", 80),
            None,
            "127.0.0.1",
            80,
        ),
        (
            "http://127.0.0.1:80/",
            tcp("127.0.0.1", 80),
            Some("/"),
            "127.0.0.1",
            80,
        ),
        (
            "HTTP://localhost:9000/base/",
            tcp("localhost", 9000),
            Some("/base/"),
            "localhost:9000",
            9000,
        ),
        (
            "http://127.0.0.1?x=1",
            tcp("127.0.0.1", 80),
            Some("?x=1"),
            "127.0.0.1",
            80,
        ),
        (
            "http://[::1]:8000/a",
            tcp("::1", 8000),
            Some("/a"),
            "[::1]:8000",
            8000,
        ),
        (
            "http://unix:/run/app.sock:",
            ProxyTarget::Peer(UpstreamTarget::Unix(PathBuf::from("/run/app.sock"))),
            None,
            "localhost",
            0,
        ),
        (
            "http://unix:/run/app.sock:/api/",
            ProxyTarget::Peer(UpstreamTarget::Unix(PathBuf::from("/run/app.sock"))),
            Some("/api/"),
            "localhost",
            0,
        ),
        (
            "http://Backend",
            ProxyTarget::Group("backend".into()),
            None,
            "Backend",
            80,
        ),
        (
            "http://backend/x/",
            ProxyTarget::Group("backend".into()),
            Some("/x/"),
            "backend",
            80,
        ),
    ];
    for (url, target, uri, host, port) in cases {
        let s = first_server(&format!(
            "server {{ location /p/ {{ proxy_pass {url}; }} }}\n\
             upstream backend {{ server 127.0.0.1:9; }}"
        ));
        let p = pass_of(&s.locations[0]);
        assert_eq!(p.target, target, "{url}");
        assert_eq!(p.uri.as_ref().map(lit).as_deref(), uri, "{url}");
        assert_eq!((p.proxy_host.as_str(), p.proxy_port), (host, port), "{url}");
        assert_eq!(p.url, url);
    }
}

#[test]
fn proxy_pass_with_variables_is_dynamic_even_in_regex_locations() {
    let s = first_server(
        "map $http_x $pool { default backend; }\n\
         server { location ~ ^/a { proxy_pass http://$pool$request_uri; } }",
    );
    let p = pass_of(&s.locations[0]);
    let ProxyTarget::Dynamic(t) = &p.target else {
        panic!("not dynamic: {:?}", p.target)
    };
    assert_eq!(t.parts[1], TemplatePart::Var(Variable::Map(0)));
    assert_eq!(t.parts[2], TemplatePart::Var(Variable::RequestUri));
    assert!(p.uri.is_none());
}

#[test]
fn the_later_of_uwsgi_pass_and_proxy_pass_answers() {
    let s = first_server(
        "server { location /a { uwsgi_pass 127.0.0.1:1; proxy_pass http://127.0.0.1:2; }\n\
                  location /b { proxy_pass http://127.0.0.1:2; uwsgi_pass 127.0.0.1:1; } }",
    );
    assert!(matches!(s.locations[0].content, Content::Proxy(_)));
    assert!(matches!(s.locations[1].content, Content::Uwsgi(_)));
}

#[test]
fn set_headers_replace_inherited_ones_and_defaults_fill_the_rest() {
    let s = first_server(
        "proxy_set_header X-Real-IP $remote_addr;\n\
         server {\n\
           location /a { proxy_pass http://127.0.0.1:1; }\n\
           location /b { proxy_pass http://127.0.0.1:1; proxy_set_header Host $host; }\n\
           location /c { proxy_pass http://127.0.0.1:1; proxy_http_version 1.0;\n\
             location /c/d { proxy_pass http://127.0.0.1:1; proxy_http_version 1.1; } }\n\
           location /e { proxy_pass http://127.0.0.1:1; proxy_set_header connection upgrade; }\n\
         }",
    );
    let names = |p: &ProxySettings| -> Vec<String> {
        p.set_headers.iter().map(|(n, _)| n.clone()).collect()
    };
    let h = |i: usize| headers(&s.locations[i].config.proxy);
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    // Inherited from http, then the defaults.
    assert_eq!(
        names(&s.locations[0].config.proxy),
        ["X-Real-IP", "Host", "Connection"]
    );
    assert_eq!(h(0)[1], pair("Host", "$proxy_host"));
    assert_eq!(
        h(0)[2],
        pair("Connection", ""),
        "HTTP/1.1: no Connection header"
    );
    // A level that sets any replaces the inherited ones; Host is its own.
    assert_eq!(names(&s.locations[1].config.proxy), ["Host", "Connection"]);
    assert_eq!(h(2)[2], pair("Connection", "close"), "HTTP/1.0 sends close");
    // The nested block inherits the configured list, not the defaults twice.
    let nested = &s.locations[2].locations[0].config.proxy;
    assert_eq!(names(nested), ["X-Real-IP", "Host", "Connection"]);
    assert_eq!(headers(nested)[2], pair("Connection", ""));
    // A name set in any case replaces the default.
    assert_eq!(names(&s.locations[3].config.proxy), ["connection", "Host"]);
}

#[test]
fn scalar_proxy_settings_are_read_and_inherited() {
    let s = first_server(
        "proxy_read_timeout 5m; proxy_buffering off;\n\
         server { proxy_http_version 1.0; proxy_connect_timeout 500ms; proxy_send_timeout 7;\n\
           proxy_pass_request_headers off; proxy_pass_request_body off; proxy_intercept_errors on;\n\
           proxy_request_buffering off; proxy_buffer_size 8k; proxy_buffers 16 8k;\n\
           proxy_busy_buffers_size 16k; proxy_max_temp_file_size 0;\n\
           proxy_next_upstream_tries 3; proxy_next_upstream_timeout 10s;\n\
           location / { proxy_pass http://127.0.0.1:1; proxy_buffering on; } }",
    );
    let p = &s.locations[0].config.proxy;
    assert_eq!(p.read_timeout, Duration::from_secs(300));
    assert_eq!(p.connect_timeout, Duration::from_millis(500));
    assert_eq!(p.send_timeout, Duration::from_secs(7));
    assert_eq!(p.http_version, ProxyHttpVersion::Http10);
    assert!(!p.pass_request_headers && !p.pass_request_body && p.intercept_errors);
    assert!(p.buffering, "set in the location");
    assert!(!p.request_buffering);
    assert_eq!((p.buffer_size, p.buffers), (8192, (16, 8192)));
    assert_eq!(p.busy_buffers_size, Some(16384));
    assert_eq!(p.max_temp_file_size, 0);
    assert_eq!(p.next_upstream_tries, 3);
    assert_eq!(p.next_upstream_timeout, Duration::from_secs(10));
    // nginx 1.29.7+'s defaults where nothing is set.
    let d = first_server("server { location / { proxy_pass http://127.0.0.1:1; } }");
    let p = &d.locations[0].config.proxy;
    assert_eq!(p.http_version, ProxyHttpVersion::Http11);
    assert_eq!(p.next_upstream, NextUpstream::default());
    assert_eq!(p.read_timeout, DEFAULT_PROXY_TIMEOUT);
}

#[test]
fn next_upstream_keywords_accumulate_and_off_wins() {
    let s = first_server(
        "proxy_next_upstream error timeout http_502;\n\
         server {\n\
           location /a { proxy_pass http://127.0.0.1:1; }\n\
           location /b { proxy_pass http://127.0.0.1:1; proxy_next_upstream invalid_header http_500;\n\
             proxy_next_upstream http_503 http_504 http_403 http_404 http_429 non_idempotent updating; }\n\
           location /c { proxy_pass http://127.0.0.1:1; proxy_next_upstream error off; } }",
    );
    let n = |i: usize| s.locations[i].config.proxy.next_upstream;
    assert!(n(0).error && n(0).timeout && n(0).http_502 && !n(0).http_500);
    let b = n(1);
    assert!(
        !b.error && !b.timeout,
        "a block that sets any replaces the inherited set"
    );
    assert!(b.invalid_header && b.http_500 && b.http_503 && b.http_504);
    assert!(b.http_403 && b.http_404 && b.http_429 && b.non_idempotent);
    assert_eq!(n(2), NextUpstream::OFF);
}

#[test]
fn repeated_bitmask_values_are_nginx_warnings() {
    let text = "events {}\nhttp {\nserver { proxy_next_upstream error error; \
                proxy_ignore_headers Expires expires; }\n}\n";
    let (_, warnings) =
        to_site_with_warnings(&tree(text), Path::new("/p")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        warnings,
        [
            "[warn] duplicate value \"error\" in /t/nginx.conf:3",
            "[warn] duplicate value \"expires\" in /t/nginx.conf:3",
        ]
    );
}

#[test]
fn header_lists_are_lower_cased_and_inherited_independently() {
    let s = first_server(
        "proxy_hide_header X-Powered-By; proxy_pass_header Server;\n\
         server { location / { proxy_pass http://127.0.0.1:1; proxy_hide_header X-Debug;\n\
           proxy_ignore_headers X-Accel-Redirect Set-Cookie; } }",
    );
    let p = &s.locations[0].config.proxy;
    assert_eq!(p.hide_headers, ["x-debug"]);
    assert_eq!(
        p.pass_headers,
        ["server"],
        "inherited: only hide was set here"
    );
    assert_eq!(p.ignore_headers, ["x-accel-redirect", "set-cookie"]);
}

#[test]
fn proxy_redirect_forms() {
    let s = first_server(
        "server {\n\
           location /a/ { proxy_pass http://127.0.0.1:1/x/; }\n\
           location /b/ { proxy_pass http://127.0.0.1:1/x/; proxy_redirect off; }\n\
           location /c/ { proxy_pass http://127.0.0.1:1/x/; proxy_redirect default;\n\
             proxy_redirect ~*^http://old(/.*)$ http://$host$1; }\n\
           location /d/ { proxy_pass http://127.0.0.1:1; proxy_redirect default; proxy_redirect / /d/; }\n\
           location /e/ { proxy_pass http://127.0.0.1:1; proxy_redirect default; } }",
    );
    let r = |i: usize| s.locations[i].config.proxy.redirect.clone();
    assert!(matches!(r(0), ProxyRedirect::Default));
    assert!(matches!(r(1), ProxyRedirect::Off));
    assert!(matches!(r(4), ProxyRedirect::Default));
    let ProxyRedirect::Rules(c) = r(2) else {
        panic!("{:?}", r(2))
    };
    // `default` with a URI part: the URL → the location's name.
    assert!(matches!(&c[0].from, RedirectFrom::Text(t) if lit(t) == "http://127.0.0.1:1/x/"));
    assert_eq!(lit(&c[0].to), "/c/");
    assert!(matches!(&c[1].from, RedirectFrom::Regex(p) if p.source == "^http://old(/.*)$"));
    let ProxyRedirect::Rules(d) = r(3) else {
        panic!("{:?}", r(3))
    };
    // Without a URI part: the URL plus `/` → `/`.
    assert!(matches!(&d[0].from, RedirectFrom::Text(t) if lit(t) == "http://127.0.0.1:1/"));
    assert_eq!(lit(&d[0].to), "/");
    assert_eq!(lit(&d[1].to), "/d/");
}

#[test]
fn proxy_variables_are_known_in_headers_and_logs() {
    let s = first_server(
        "log_format up '$upstream_addr $upstream_status $upstream_response_time $proxy_host';\n\
         server { location / { proxy_pass http://127.0.0.1:1;\n\
           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
           proxy_set_header X-Port $proxy_port; } }",
    );
    let h = &s.locations[0].config.proxy.set_headers;
    assert_eq!(
        h[0].1.parts,
        [TemplatePart::Var(Variable::ProxyAddXForwardedFor)]
    );
    assert_eq!(h[1].1.parts, [TemplatePart::Var(Variable::ProxyPort)]);
}

#[test]
fn upstream_keepalive_zone_and_resolve_are_read() {
    let s = http(
        "resolver 127.0.0.1 valid=10s ipv6=off; resolver_timeout 5s;\n\
         upstream a { zone a 64k; server app.internal.invalid:8000 resolve; server 127.0.0.1:1;\n\
           keepalive 0; keepalive_timeout 30s; keepalive_requests 50; keepalive_time 10m; }\n\
         upstream b { server 127.0.0.1:2; resolver 127.0.0.2:5353; }\n\
         upstream c { server 127.0.0.1:3; }",
    );
    let a = &s.upstreams[0];
    assert_eq!(a.zone.as_deref(), Some("a"));
    assert_eq!(a.keepalive, Some(0));
    assert_eq!(a.keepalive_timeout, Duration::from_secs(30));
    assert_eq!(a.keepalive_requests, 50);
    assert_eq!(a.keepalive_time, Duration::from_secs(600));
    assert!(a.servers[0].resolve && !a.servers[1].resolve);
    assert_eq!(
        a.servers[0].target,
        UpstreamTarget::Tcp {
            host: "app.internal.invalid".into(),
            port: 8000
        },
        "a name to resolve at run time is not resolved at load"
    );
    let http_resolver = a.resolver.clone().unwrap_or_else(|| panic!("no resolver"));
    assert_eq!(
        http_resolver.servers,
        ["127.0.0.1:53".parse().unwrap_or_else(|_| panic!())]
    );
    assert_eq!(http_resolver.valid, Some(Duration::from_secs(10)));
    assert!(!http_resolver.ipv6);
    assert_eq!(http_resolver.timeout, Duration::from_secs(5));
    let own = s.upstreams[1]
        .resolver
        .clone()
        .unwrap_or_else(|| panic!("no resolver"));
    assert_eq!(
        own.servers,
        ["127.0.0.2:5353".parse().unwrap_or_else(|_| panic!())]
    );
    let c = &s.upstreams[2];
    assert_eq!(c.keepalive, None, "unset: the proxy's default (32)");
    assert_eq!(c.keepalive_timeout, DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT);
}

#[test]
fn health_checks_attach_to_the_group_with_their_match() {
    let s = http(
        "upstream app { server 127.0.0.1:1; }\n\
         server { location / { proxy_pass http://app;\n\
           health_check interval=2s fails=3 passes=2 uri=/healthz match=ok; }\n\
           location /x { proxy_pass http://APP; health_check; } }\n\
         match ok { status 200-399; status ! 301 302; }",
    );
    let checks = &s.upstreams[0].health_checks;
    assert_eq!(checks.len(), 2);
    let c = &checks[0];
    assert_eq!(c.interval, Duration::from_secs(2));
    assert_eq!((c.fails, c.passes, c.uri.as_str()), (3, 2, "/healthz"));
    let m = c.matcher.clone().unwrap_or_else(|| panic!("no match"));
    assert!(m.passes(200) && m.passes(304));
    assert!(!m.passes(301) && !m.passes(404));
    let d = &checks[1];
    assert_eq!(
        (d.interval, d.fails, d.passes),
        (Duration::from_secs(5), 1, 1)
    );
    assert_eq!(d.uri, "/");
    assert!(d.matcher.is_none());
}
