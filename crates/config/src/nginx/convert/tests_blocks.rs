//! Conversion tests of the blocks: listen, server names, locations,
//! rewrites and returns, error pages, upstreams, maps and variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::site::*;

use super::tests::{first_server, lit};

#[test]
fn listen_forms() {
    let tcp = |t: &str| match t.parse::<SocketAddr>() {
        Ok(a) => ListenAddr::Tcp(a),
        Err(_) => panic!("{t}"),
    };
    let cases = [
        ("80", tcp("0.0.0.0:80")),
        ("8080", tcp("0.0.0.0:8080")),
        ("127.0.0.1:8080", tcp("127.0.0.1:8080")),
        ("127.0.0.1", tcp("127.0.0.1:80")),
        ("*:80", tcp("0.0.0.0:80")),
        ("[::]:80", tcp("[::]:80")),
        ("[::1]:8080", tcp("[::1]:8080")),
        (
            "unix:/run/p.sock",
            ListenAddr::Unix(PathBuf::from("/run/p.sock")),
        ),
    ];
    for (text, want) in cases {
        let s = first_server(&format!("server {{ listen {text}; }}"));
        assert_eq!(s.listens[0].addr, want, "{text}");
    }
}

#[test]
fn listen_resolves_localhost_at_load() {
    let s = first_server("server { listen localhost:8080; }");
    assert!(!s.listens.is_empty());
    for l in &s.listens {
        match &l.addr {
            ListenAddr::Tcp(a) => {
                assert!(a.ip().is_loopback());
                assert_eq!(a.port(), 8080);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn listen_options() {
    let s = first_server(
        "server { listen 8080 default_server backlog=511 reuseport deferred; listen 81 default bind; }",
    );
    assert!(s.listens[0].default_server && s.listens[0].reuseport);
    assert_eq!(s.listens[0].backlog, Some(511));
    assert!(s.listens[1].default_server);
    assert_eq!(s.listens[1].backlog, None);
}

#[test]
fn a_server_without_listen_gets_nginx_default_port() {
    let s = first_server("server { }");
    let port = if nix::unistd::geteuid().is_root() {
        80
    } else {
        8000
    };
    assert_eq!(s.listens.len(), 1);
    assert!(
        matches!(&s.listens[0].addr, ListenAddr::Tcp(a) if a.port() == port && a.ip().is_unspecified())
    );
}

#[test]
fn server_names_are_classified_and_lower_cased() {
    let s = first_server(
        "server { server_name Example.COM *.Wild.org .both.net mail.* ~^(?<sub>\\w+)\\.re\\.io$ \"\"; }",
    );
    let got: Vec<String> = s
        .names
        .iter()
        .map(|n| match n {
            ServerName::Exact(x) => format!("exact:{x}"),
            ServerName::LeadingWildcard(x) => format!("lead:{x}"),
            ServerName::TrailingWildcard(x) => format!("trail:{x}"),
            ServerName::Regex(p) => format!("re:{}", p.source),
        })
        .collect();
    assert_eq!(
        got,
        [
            "exact:example.com",
            "lead:.wild.org",
            "exact:both.net",
            "lead:.both.net",
            "trail:mail.",
            "re:^(?<sub>\\w+)\\.re\\.io$",
            "exact:",
        ]
    );
    let ServerName::Regex(p) = &s.names[5] else {
        panic!("not a regex")
    };
    assert!(
        p.regex.is_match(b"WWW.RE.IO"),
        "server_name regexes are caseless"
    );
}

#[test]
fn location_modifiers_and_nesting() {
    let s = first_server(
        "server {\n location = /exact { }\n location ^~ /stop/ { }\n location /pre/ { location /pre/in/ { } location ~ \\.x$ { } }\n\
         location ~ \\.PHP$ { }\n location ~* \\.JPG$ { }\n location @named { }\n location =/glued { } }",
    );
    let kinds: Vec<String> = s
        .locations
        .iter()
        .map(|l| match &l.matcher {
            LocationMatch::Exact(u) => format!("= {u}"),
            LocationMatch::Prefix { uri, stop_regex } => {
                format!("{}{uri}", if *stop_regex { "^~ " } else { "" })
            }
            LocationMatch::Regex(p) => format!("~ {} {}", p.source, p.regex.is_match(b"/A.php")),
            LocationMatch::Named(n) => n.clone(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "= /exact",
            "^~ /stop/",
            "/pre/",
            "~ \\.PHP$ false",
            "~ \\.JPG$ false",
            "= /glued"
        ]
    );
    assert!(
        matches!(&s.locations[4].matcher, LocationMatch::Regex(p) if p.regex.is_match(b"/a.jpg"))
    );
    assert_eq!(s.locations[2].locations.len(), 2);
    assert_eq!(s.named.len(), 1);
    assert_eq!(s.locations[0].origin, "/t/nginx.conf:4");
    assert_eq!(s.origin, "/t/nginx.conf:3");
}

#[test]
fn return_and_rewrite_steps() {
    let s = first_server(
        "server {\n return 301 https://$host$request_uri;\n location /a { return 404; }\n\
         location /b { return http://x/; }\n location /c { return 200 \"hi\"; }\n\
         location /d { rewrite ^/d/(.*)$ /e/$1 last; rewrite ^ /f break; rewrite ^ /g redirect; rewrite ^ /h permanent; rewrite ^ /i; rewrite ^ https://x/ last; } }",
    );
    assert!(matches!(
        &s.rewrites[0],
        RewriteStep::Return {
            code: 301,
            body: Some(_)
        }
    ));
    assert!(matches!(
        &s.locations[0].rewrites[0],
        RewriteStep::Return {
            code: 404,
            body: None
        }
    ));
    assert!(matches!(
        &s.locations[1].rewrites[0],
        RewriteStep::Return {
            code: 302,
            body: Some(_)
        }
    ));
    assert!(
        matches!(&s.locations[2].rewrites[0], RewriteStep::Return { code: 200, body: Some(b) } if lit(b) == "hi")
    );
    let flags: Vec<RewriteFlag> = s.locations[3]
        .rewrites
        .iter()
        .filter_map(|r| match r {
            RewriteStep::Rewrite { flag, .. } => Some(*flag),
            RewriteStep::Return { .. } => Option::None,
        })
        .collect();
    {
        use RewriteFlag::*;
        assert_eq!(flags, [Last, Break, Redirect, Permanent, None, Redirect]);
    }
}

#[test]
fn error_page_forms() {
    let s = first_server(
        "server { error_page 404 /404.html; error_page 500 502 =200 /50x.html; error_page 403 = @fb; error_page 410 =301 http://x/; }",
    );
    let p = &s.config.error_pages;
    assert_eq!(p[0].codes, [404]);
    assert_eq!(p[0].answer, ErrorPageAnswer::Original);
    assert_eq!(p[1].codes, [500, 502]);
    assert_eq!(p[1].answer, ErrorPageAnswer::Code(200));
    assert_eq!(p[2].answer, ErrorPageAnswer::Target);
    assert!(matches!(&p[2].target, ErrorPageTarget::Named(n) if n == "@fb"));
    assert!(matches!(&p[3].target, ErrorPageTarget::Redirect(_)));
    let s = first_server("server { error_page 497 500 /x; }");
    let p = &s.config.error_pages;
    assert_eq!(
        (p[0].codes.clone(), p[0].answer),
        (vec![500], ErrorPageAnswer::Original)
    );
    assert_eq!(
        (p[1].codes.clone(), p[1].answer),
        (vec![497], ErrorPageAnswer::Code(400))
    );
}
