//! Conversion tests: values, inheritance, listen, names, locations,
//! rewrites, upstreams and variables, on trees built from text by the
//! test-only reader in `testparse`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::site::*;

use super::testparse::tree;
use super::to_site;

pub(super) fn site(text: &str) -> Site {
    match to_site(&tree(text), Path::new("/p")) {
        Ok(s) => s,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

pub(super) fn http(body: &str) -> Site {
    site(&format!("events {{}}\nhttp {{\n{body}\n}}\n"))
}

pub(super) fn first_server(body: &str) -> Server {
    match http(body).servers.into_iter().next() {
        Some(s) => s,
        None => panic!("no server"),
    }
}

pub(super) fn lit(t: &Template) -> String {
    t.as_literal().unwrap_or_else(|| format!("{t:?}"))
}

fn root_of(c: &LocationConfig) -> String {
    match &c.root {
        DocRoot::Root(t) => format!("root {}", lit(t)),
        DocRoot::Alias(t) => format!("alias {}", lit(t)),
    }
}

#[test]
fn main_settings_are_read_and_paths_resolve_against_the_prefix() {
    let s = site(
        "user www-data adm; worker_processes auto; pid run/nginx.pid;\n\
         error_log logs/error.log warn;\nevents { worker_connections 2048; use epoll; }\nhttp {}",
    );
    assert_eq!(s.main.worker_processes, None);
    assert_eq!(s.main.worker_connections, 2048);
    assert_eq!(s.main.pid, Some(PathBuf::from("/p/run/nginx.pid")));
    assert_eq!(s.main.error_log, Some(PathBuf::from("/p/logs/error.log")));
    assert_eq!(
        s.main.user,
        Some(("www-data".to_string(), Some("adm".to_string())))
    );
    let s = site("worker_processes 4; error_log stderr; events {}");
    assert_eq!(s.main.worker_processes, Some(4));
    assert_eq!(s.main.error_log, None);
    let s = site("events {}");
    assert_eq!(s.main.worker_processes, Some(1));
    assert_eq!(s.main.worker_connections, 512);
}

#[test]
fn defaults_are_nginx_defaults_under_the_prefix() {
    let s = first_server("server { }");
    assert_eq!(root_of(&s.config), "root /p/html");
    assert_eq!(
        s.config.index.iter().map(lit).collect::<Vec<_>>(),
        ["index.html"]
    );
    assert_eq!(s.config.types.lookup("html"), Some("text/html"));
    assert_eq!(s.config.types.lookup("JPG"), Some("image/jpeg"));
    assert_eq!(s.config.default_type, "text/plain");
    assert_eq!(
        s.config.access_log,
        vec![AccessLogTarget::File {
            path: PathBuf::from("/p/logs/access.log"),
            format: "combined".into()
        }]
    );
    assert!(s.names.is_empty());
}

#[test]
fn scalars_inherit_from_http_to_server_to_location() {
    let s = first_server(
        "client_max_body_size 10m; keepalive_timeout 30s; gzip_static on;\n\
         server { client_max_body_size 2m; root /srv;\n\
           location /a { client_max_body_size 0; autoindex on; }\n\
           location /b { root www/; location /b/c { expires 1h; } } }",
    );
    assert_eq!(s.config.client_max_body_size, 2 * 1024 * 1024);
    assert_eq!(s.config.keepalive_timeout, Duration::from_secs(30));
    let a = &s.locations[0].config;
    assert_eq!(a.client_max_body_size, 0);
    assert!(a.autoindex && a.gzip_static);
    assert_eq!(root_of(a), "root /srv");
    let b = &s.locations[1];
    assert_eq!(root_of(&b.config), "root /p/www");
    let c = &b.locations[0].config;
    assert_eq!(root_of(c), "root /p/www");
    assert_eq!(
        c.expires,
        Expires::After {
            seconds: 3600,
            from_modified: false
        }
    );
    assert_eq!(c.client_max_body_size, 2 * 1024 * 1024);
}

#[test]
fn arrays_are_inherited_only_when_the_inner_level_sets_none() {
    let s = first_server(
        "add_header X-A 1; add_header X-B 2 always; index a.html;\n\
         server {\n\
           location /own { add_header X-C 3; allow 10.0.0.0/8; deny all; }\n\
           location /inh { }\n\
         }",
    );
    let own = &s.locations[0].config;
    assert_eq!(own.add_headers.len(), 1);
    assert_eq!(own.add_headers[0].name, "X-C");
    assert_eq!(own.access.len(), 2);
    let inh = &s.locations[1].config;
    let names: Vec<_> = inh.add_headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["X-A", "X-B"]);
    assert!(inh.add_headers[1].always);
    assert_eq!(inh.index.iter().map(lit).collect::<Vec<_>>(), ["a.html"]);
    assert!(inh.access.is_empty());
}

#[test]
fn try_files_is_not_inherited_but_error_pages_are() {
    let s = first_server(
        "server { try_files $uri /index.html; error_page 404 /404.html;\n\
         location /a { } location /b { try_files $uri $uri/ =404; } }",
    );
    assert!(s.config.try_files.is_some());
    assert!(s.locations[0].config.try_files.is_none());
    assert_eq!(s.locations[0].config.error_pages.len(), 1);
    let tf = s.locations[1].config.try_files.as_ref();
    assert!(matches!(
        tf.map(|t| &t.fallback),
        Some(TryFallback::Code(404))
    ));
    assert_eq!(tf.map(|t| t.files.len()), Some(2));
}

#[test]
fn try_files_fallbacks() {
    let s = first_server(
        "server { location /a { try_files $uri @app; } location /b { try_files $uri /i.php?$args; } }",
    );
    let fb = |i: usize| {
        s.locations[i]
            .config
            .try_files
            .as_ref()
            .map(|t| t.fallback.clone())
    };
    assert!(matches!(fb(0), Some(TryFallback::Named(n)) if n == "@app"));
    assert!(matches!(fb(1), Some(TryFallback::Uri(_))));
}

#[test]
fn alias_and_types_and_default_type() {
    let s = first_server(
        "types { text/html html; text/css css; } default_type application/octet-stream;\n\
         server { location /static/ { alias /srv/static/; types { image/png png; } } }",
    );
    assert_eq!(s.config.types.lookup("css"), Some("text/css"));
    assert_eq!(s.config.default_type, "application/octet-stream");
    let l = &s.locations[0].config;
    assert_eq!(root_of(l), "alias /srv/static/");
    assert_eq!(l.types.lookup("png"), Some("image/png"));
    assert_eq!(l.types.lookup("css"), None);
}

#[test]
fn expires_forms() {
    let cases = [
        ("off", Expires::Off),
        ("epoch", Expires::Epoch),
        ("max", Expires::Max),
        (
            "1h30m",
            Expires::After {
                seconds: 5400,
                from_modified: false,
            },
        ),
        (
            "-1",
            Expires::After {
                seconds: -1,
                from_modified: false,
            },
        ),
        (
            "modified +24h",
            Expires::After {
                seconds: 86400,
                from_modified: true,
            },
        ),
        (
            "@15h30m",
            Expires::DailyAt {
                seconds_of_day: 55800,
            },
        ),
    ];
    for (text, want) in cases {
        let s = first_server(&format!("server {{ expires {text}; }}"));
        assert_eq!(s.config.expires, want, "{text}");
    }
}

#[test]
fn allow_deny_rules_in_order_with_cidr_ipv6_all_and_unix() {
    let s = first_server(
        "server { allow 127.0.0.1; allow 192.168.0.0/16; allow ::1; allow 2001:db8::/32; allow unix:; deny all; }",
    );
    let nets: Vec<_> = s.config.access.iter().map(|r| (r.allow, r.net)).collect();
    let ip = |t: &str| t.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    assert_eq!(
        nets,
        vec![
            (
                true,
                AccessNet::Cidr {
                    addr: ip("127.0.0.1"),
                    prefix: 32
                }
            ),
            (
                true,
                AccessNet::Cidr {
                    addr: ip("192.168.0.0"),
                    prefix: 16
                }
            ),
            (
                true,
                AccessNet::Cidr {
                    addr: ip("::1"),
                    prefix: 128
                }
            ),
            (
                true,
                AccessNet::Cidr {
                    addr: ip("2001:db8::"),
                    prefix: 32
                }
            ),
            (true, AccessNet::Unix),
            (false, AccessNet::All),
        ]
    );
}

#[test]
fn low_address_bits_are_masked_with_a_warning() {
    let text = "events {}\nhttp { server { deny 10.0.0.1/8; } }";
    let got = super::to_site_with_warnings(&tree(text), Path::new("/p"));
    let Ok((s, warnings)) = got else {
        panic!("error")
    };
    assert_eq!(
        s.servers[0].config.access[0].net,
        AccessNet::Cidr {
            addr: IpAddr::from([10, 0, 0, 0]),
            prefix: 8
        }
    );
    assert_eq!(
        warnings,
        ["[warn] low address bits of 10.0.0.1/8 are meaningless in /t/nginx.conf:2"]
    );
}

#[test]
fn access_log_and_log_format() {
    let s = http(
        "log_format main '$remote_addr \"$request\"' ' $status';\n\
         access_log logs/a.log main buffer=32k;\n\
         server { location /q { access_log off; } location /d { access_log /var/log/x.log; } }",
    );
    let f = s.log_formats.iter().find(|f| f.name == "main");
    assert_eq!(f.map(|f| f.template.parts.len()), Some(5));
    assert!(s.log_formats.iter().any(|f| f.name == "combined"));
    let srv = &s.servers[0];
    assert_eq!(
        srv.config.access_log,
        vec![AccessLogTarget::File {
            path: "/p/logs/a.log".into(),
            format: "main".into()
        }]
    );
    assert_eq!(
        srv.locations[0].config.access_log,
        vec![AccessLogTarget::Off]
    );
    assert_eq!(
        srv.locations[1].config.access_log,
        vec![AccessLogTarget::File {
            path: "/var/log/x.log".into(),
            format: "combined".into()
        }]
    );
}

#[test]
fn uwsgi_directives() {
    let s = first_server(
        "uwsgi_read_timeout 300; server { location / { uwsgi_param QUERY_STRING $query_string; \
         uwsgi_param HTTPS $https if_not_empty; uwsgi_pass 127.0.0.1:8001; uwsgi_buffering off; \
         uwsgi_intercept_errors on; uwsgi_connect_timeout 500ms; uwsgi_send_timeout 1m; }\n\
         location /u { uwsgi_pass unix:/run/app.sock; } location /w { uwsgi_pass uwsgi://localhost:9000; } }",
    );
    let l = &s.locations[0];
    assert_eq!(l.config.uwsgi_read_timeout, Duration::from_secs(300));
    assert_eq!(l.config.uwsgi_connect_timeout, Duration::from_millis(500));
    assert_eq!(l.config.uwsgi_send_timeout, Duration::from_secs(60));
    assert!(!l.config.uwsgi_buffering && l.config.uwsgi_intercept_errors);
    assert_eq!(l.config.uwsgi_params.len(), 2);
    assert!(l.config.uwsgi_params[1].if_not_empty);
    assert!(
        matches!(&l.content, Content::Uwsgi(UpstreamTarget::Tcp { host, port: 8001 }) if host == "127.0.0.1")
    );
    assert!(
        matches!(&s.locations[1].content, Content::Uwsgi(UpstreamTarget::Unix(p)) if p == Path::new("/run/app.sock"))
    );
    assert!(matches!(
        &s.locations[2].content,
        Content::Uwsgi(UpstreamTarget::Tcp { port: 9000, .. })
    ));
    assert!(matches!(s.config.uwsgi_read_timeout, d if d == Duration::from_secs(300)));
}

#[test]
fn uwsgi_pass_names_an_upstream_block_case_insensitively_even_defined_later() {
    let s =
        http("server { location / { uwsgi_pass App; } }\n upstream app { server 127.0.0.1:3031; }");
    assert!(
        matches!(&s.servers[0].locations[0].content, Content::Uwsgi(UpstreamTarget::Group(g)) if g == "app")
    );
}

#[test]
fn content_is_not_inherited_by_nested_locations() {
    let s = first_server("server { location / { uwsgi_pass 127.0.0.1:1; location /static/ { } } }");
    assert!(matches!(
        s.locations[0].locations[0].content,
        Content::Static
    ));
}

#[test]
fn upstream_blocks() {
    let s = http(
        "upstream a { server 127.0.0.1:1 weight=3 max_fails=2 fail_timeout=30s max_conns=9; server unix:/s backup; server localhost down; keepalive 16; }\n\
         upstream b { hash $request_uri consistent; server 127.0.0.1:2; }\n\
         upstream c { random two least_conn; server 127.0.0.1:3; }\n\
         upstream d { ip_hash; server 127.0.0.1:4; } upstream e { least_conn; server 127.0.0.1:5 backup; }",
    );
    let a = &s.upstreams[0];
    assert_eq!(a.servers[0].weight, 3);
    assert_eq!(a.servers[0].max_fails, 2);
    assert_eq!(a.servers[0].fail_timeout, Duration::from_secs(30));
    assert_eq!(a.servers[0].max_conns, 9);
    assert!(a.servers[1].backup);
    assert!(matches!(
        &a.servers[2].target,
        UpstreamTarget::Tcp { port: 80, .. }
    ));
    assert!(a.servers[2].down);
    assert_eq!(a.keepalive, Some(16));
    assert_eq!(a.balancer, Balancer::RoundRobin);
    assert_eq!(
        s.upstreams[1].balancer,
        Balancer::Hash {
            key: "$request_uri".into(),
            consistent: true
        }
    );
    assert_eq!(
        s.upstreams[2].balancer,
        Balancer::Random {
            two: true,
            least_conn: true
        }
    );
    assert_eq!(s.upstreams[3].balancer, Balancer::IpHash);
    assert_eq!(s.upstreams[4].balancer, Balancer::LeastConn);
}

#[test]
fn map_targets_become_map_variables_and_captures_stay_named() {
    let s = http(
        "map $http_upgrade $conn { default upgrade; '' close; ~*^web websocket; }\n\
         server { server_name ~^(?<sub>.+)\\.example\\.com$;\n\
           location / { add_header X-Conn $conn; add_header X-Sub $sub; } }",
    );
    assert_eq!(s.maps.len(), 1);
    assert_eq!(s.maps[0].target, "conn");
    assert_eq!(s.maps[0].exact.len(), 1);
    assert_eq!(s.maps[0].regexes.len(), 1);
    let h = &s.servers[0].locations[0].config.add_headers;
    assert_eq!(h[0].value.parts, [TemplatePart::Var(Variable::Map(0))]);
    assert_eq!(
        h[1].value.parts,
        [TemplatePart::Var(Variable::Named("sub".into()))]
    );
}

#[test]
fn gzip_and_proxy_settings_are_accepted_without_effect() {
    let s = first_server(
        "sendfile on; tcp_nopush on; gzip on; gzip_types text/css; ssl_protocols TLSv1.2;\n\
         server { proxy_set_header Host $host; server_tokens off; keepalive_requests 50; etag on; }",
    );
    assert!(!s.config.server_tokens);
    assert_eq!(s.config.keepalive_requests, 50);
}

#[test]
fn docs_list_every_ignored_default_only_and_refused_directive() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/nginx.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let lists = super::lists::IGNORED
        .iter()
        .chain(super::lists::IGNORED_PREFIXES)
        .chain(super::lists::UNSUPPORTED);
    for name in lists {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/nginx.md lacks `{name}`"
        );
    }
    for name in super::lists::TLS {
        assert!(
            doc.contains(&format!("`{name}`")) && !super::lists::IGNORED.contains(name),
            "docs/nginx.md lacks the supported `{name}`, or it is still ignored"
        );
    }
    for (name, value) in super::lists::DEFAULT_ONLY {
        assert!(
            doc.contains(&format!("`{name} {value}`")),
            "docs/nginx.md lacks `{name} {value}`"
        );
    }
}

#[test]
fn settings_of_refused_modules_are_accepted_and_other_known_directives_refused() {
    let s = first_server(
        "server { fastcgi_cache_valid 200 1h; http2_push_preload on; uwsgi_cache_key $uri; }",
    );
    assert!(s.locations.is_empty());
    let text = "events {}\nhttp { server { empty_gif; } }";
    let got = to_site(&tree(text), Path::new("/p")).map(|_| ());
    assert_eq!(
        got.map_err(|e| e.to_string()),
        Err(
            "[emerg] \"empty_gif\" directive is not supported by Portico yet in /t/nginx.conf:2"
                .to_string()
        )
    );
}

#[test]
fn a_nested_location_inheriting_alias_maps_through_the_parents_prefix() {
    let s = first_server(
        "server { location /static/ { alias /srv/static/; location /static/css/ { } location ~ z { } } }",
    );
    let a = &s.locations[0];
    assert_eq!(root_of(&a.locations[0].config), "alias /srv/static/css/");
    assert_eq!(root_of(&a.locations[1].config), "root /srv");
    let text = "events {}\nhttp {\nserver { location /a/ { alias /x/;\nlocation ~ z { } } } }";
    let got = to_site(&tree(text), Path::new("/p")).map(|_| ());
    assert_eq!(
        got.map_err(|e| e.to_string()),
        Err("[emerg] the regex location \"z\" inherits \"alias\" from location \"/a/\", \
             which Portico does not support yet (set \"root\" or \"alias\" in it) in /t/nginx.conf:4"
            .to_string())
    );
}

#[test]
fn charset_and_internal_are_inherited() {
    let s = first_server(
        "charset utf-8; server { location /a { charset off; } location /b { internal; location /b/c { } } }",
    );
    assert_eq!(s.config.charset.as_deref(), Some("utf-8"));
    assert_eq!(s.locations[0].config.charset, None);
    assert!(!s.locations[0].config.internal);
    assert!(s.locations[1].config.internal);
    assert!(s.locations[1].locations[0].config.internal);
}

#[test]
fn autoindex_styles_and_gzip_vary_are_read_and_inherited() {
    let s = first_server(
        "gzip_vary on;\n\
         server { autoindex_exact_size off;\n\
           location /a { autoindex_localtime on; }\n\
           location /b { autoindex_exact_size on; } }",
    );
    assert!(s.config.gzip_vary && !s.config.autoindex_exact_size);
    let a = &s.locations[0].config;
    assert!(a.autoindex_localtime && !a.autoindex_exact_size && a.gzip_vary);
    let b = &s.locations[1].config;
    assert!(b.autoindex_exact_size && !b.autoindex_localtime);
}
