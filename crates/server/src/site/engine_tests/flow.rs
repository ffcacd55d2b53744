//! rewrite, return, error_page, access, client_max_body_size, add_header, expires.

use std::sync::Arc;

use portico_config::site::*;

use super::*;

#[test]
fn rewrites_follow_nginx_flags_and_arg_rules() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let mut echo = location(prefix("/echo"), Arc::new(base.clone()));
    echo.rewrites = vec![ret(200, Some("uri=$uri args=$args"))];
    let mut rw = location(prefix("/rw/"), Arc::new(base.clone()));
    rw.rewrites = vec![
        rewrite("^/rw/last$", "/echo/l?n=1", RewriteFlag::Last),
        rewrite("^/rw/drop$", "/echo/d?", RewriteFlag::Last),
        rewrite("^/rw/brk$", "/a.txt", RewriteFlag::Break),
        rewrite("^/rw/red/(.*)$", "/echo/$1", RewriteFlag::Redirect),
        rewrite(
            "^/rw/perm$",
            "http://other.example/x?y=1",
            RewriteFlag::Permanent,
        ),
        rewrite("^/rw/chain$", "/rw/chain2", RewriteFlag::None),
        rewrite("^/rw/chain2$", "/echo/chained", RewriteFlag::None),
    ];
    let mut cycle = location(prefix("/cyc"), Arc::new(base.clone()));
    cycle.rewrites = vec![rewrite("^", "/cyc", RewriteFlag::Last)];
    let h = handler(server(base, vec![echo, rw, cycle], Vec::new()), &tree);

    assert_eq!(get(&h, "/rw/last?q=2").body, "uri=/echo/l args=n=1&q=2");
    assert_eq!(get(&h, "/rw/drop?q=2").body, "uri=/echo/d args=");
    assert_eq!(get(&h, "/rw/brk").body, "hello");
    let a = get(&h, "/rw/red/z?q=2");
    assert_eq!(a.status, 302);
    assert_eq!(
        a.header("Location"),
        Some("http://example.com:8080/echo/z?q=2")
    );
    assert_eq!(a.body, page("302 Found"));
    let a = get(&h, "/rw/perm?q=2");
    assert_eq!(a.status, 301);
    assert_eq!(a.header("Location"), Some("http://other.example/x?y=1&q=2"));
    assert_eq!(get(&h, "/rw/chain").body, "uri=/echo/chained args=");
    let a = get(&h, "/cyc");
    assert_eq!((a.status, a.body), (500, page("500 Internal Server Error")));
}

#[test]
fn return_answers_text_redirects_and_pages() {
    let tree = static_tree();
    let base = LocationConfig {
        default_type: "application/x-dflt".into(),
        ..config(&tree.path().join("html"))
    };
    let mut text = location(prefix("/text"), Arc::new(base.clone()));
    text.rewrites = vec![ret(200, Some("hello $host"))];
    let mut moved = location(prefix("/moved"), Arc::new(base.clone()));
    moved.rewrites = vec![ret(301, Some("/target"))];
    let mut empty = location(prefix("/empty"), Arc::new(base.clone()));
    empty.rewrites = vec![ret(200, None)];
    let mut teapot = location(prefix("/teapot"), Arc::new(base.clone()));
    teapot.rewrites = vec![ret(418, None)];
    let mut close = location(prefix("/close"), Arc::new(base.clone()));
    close.rewrites = vec![ret(444, None)];
    let h = handler(
        server(base, vec![text, moved, empty, teapot, close], Vec::new()),
        &tree,
    );
    let a = get(&h, "/close");
    assert_eq!(
        (a.status, a.body.as_str()),
        (444, ""),
        "closed by the connection in nginx mode"
    );

    let a = get(&h, "/text");
    assert_eq!((a.status, a.body.as_str()), (200, "hello example.com"));
    assert_eq!(a.header("Content-Type"), Some("application/x-dflt"));
    let a = get(&h, "/text.html");
    assert_eq!(
        a.header("Content-Type"),
        Some("text/html"),
        "types by the URI"
    );
    let a = get(&h, "/moved");
    assert_eq!(a.header("Location"), Some("http://example.com:8080/target"));
    let a = get(&h, "/empty");
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    assert_eq!(a.header("Content-Type"), Some("application/x-dflt"));
    let a = get(&h, "/teapot");
    assert_eq!(
        (a.status, a.reason.as_str(), a.header("Content-Type")),
        (418, "", None)
    );
}

#[test]
fn error_page_redirects_once_with_the_right_status() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let ep = |answer, target| ErrorPage {
        codes: vec![404],
        answer,
        target,
    };
    let plain = with(&base, |c| {
        c.error_pages = vec![ep(
            ErrorPageAnswer::Original,
            ErrorPageTarget::Uri(t("/404.html")),
        )];
        c.add_headers = vec![AddHeader {
            name: "X-A".into(),
            value: t("b"),
            always: false,
        }];
    });
    let to200 = with(&base, |c| {
        c.error_pages = vec![ep(
            ErrorPageAnswer::Code(200),
            ErrorPageTarget::Uri(t("/404.html")),
        )]
    });
    let target = with(&base, |c| {
        c.error_pages = vec![ep(ErrorPageAnswer::Target, ErrorPageTarget::Uri(t("/t")))]
    });
    let named = with(&base, |c| {
        c.error_pages = vec![ep(
            ErrorPageAnswer::Original,
            ErrorPageTarget::Named("fb".into()),
        )]
    });
    let away = with(&base, |c| {
        c.error_pages = vec![ep(
            ErrorPageAnswer::Original,
            ErrorPageTarget::Redirect(t("http://ex.com/nf")),
        )]
    });
    let missing = with(&base, |c| {
        c.error_pages = vec![ep(
            ErrorPageAnswer::Code(301),
            ErrorPageTarget::Uri(t("/nothere")),
        )]
    });
    let mut t201 = location(prefix("/t"), Arc::new(base.clone()));
    t201.rewrites = vec![ret(201, Some("t"))];
    let mut fallback = location(LocationMatch::Named("fb".into()), Arc::new(base.clone()));
    fallback.rewrites = vec![ret(200, Some("named $uri"))];
    let h = handler(
        server(
            base,
            vec![
                location(prefix("/ep/"), plain),
                location(prefix("/e2/"), to200),
                location(prefix("/eq/"), target),
                location(prefix("/en/"), named),
                location(prefix("/er/"), away),
                location(prefix("/em/"), missing),
                t201,
            ],
            vec![fallback],
        ),
        &tree,
    );
    let a = get(&h, "/ep/x");
    assert_eq!((a.status, a.body.as_str()), (404, "custom 404"));
    assert_eq!(a.header("Content-Type"), Some("text/html"));
    assert!(a.header("ETag").is_some());
    assert_eq!(a.header("Last-Modified"), None, "nginx drops it on a 404");
    assert_eq!(a.header("X-A"), None, "add_header is for success statuses");
    let a = get(&h, "/e2/x");
    assert_eq!((a.status, a.body.as_str()), (200, "custom 404"));
    assert!(a.header("Last-Modified").is_some());
    let a = get(&h, "/eq/x");
    assert_eq!((a.status, a.body.as_str()), (201, "t"));
    let a = get(&h, "/en/x");
    assert_eq!((a.status, a.body.as_str()), (404, "named /en/x"));
    let a = get(&h, "/er/x");
    assert_eq!(a.status, 302);
    assert_eq!(a.header("Location"), Some("http://ex.com/nf"));
    let a = get(&h, "/em/x");
    assert_eq!(
        (a.status, a.body),
        (404, page("404 Not Found")),
        "no second error_page"
    );
    let a = send(&h, "HEAD /ep/x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(a.status, 404);
}

#[test]
fn access_rules_and_body_size_stop_a_request_early() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let guarded = with(&base, |c| {
        c.access = vec![
            AccessRule {
                allow: true,
                net: AccessNet::Cidr {
                    addr: "10.0.0.0".parse().unwrap_or_else(|_| unreachable!()),
                    prefix: 8,
                },
            },
            AccessRule {
                allow: false,
                net: AccessNet::All,
            },
        ];
        c.client_max_body_size = 10;
    });
    let h = handler(
        server(base, vec![location(prefix("/"), guarded)], Vec::new()),
        &tree,
    );
    assert_eq!(
        send_from(&h, "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", "10.1.2.3:1").status,
        200
    );
    let a = send_from(
        &h,
        "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "192.168.0.1:1",
    );
    assert_eq!((a.status, a.body), (403, page("403 Forbidden")));
    let a = send(
        &h,
        "POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
    );
    assert_eq!(
        (a.status, a.reason.as_str()),
        (413, "Request Entity Too Large")
    );
    assert_eq!(a.body, page("413 Request Entity Too Large"));
}

#[test]
fn add_header_and_expires_decorate_success_answers() {
    let tree = static_tree();
    let base = with(&config(&tree.path().join("html")), |c| {
        c.add_headers = vec![
            AddHeader {
                name: "X-Plain".into(),
                value: t("p"),
                always: false,
            },
            AddHeader {
                name: "X-Always".into(),
                value: t("$uri"),
                always: true,
            },
        ];
        c.expires = Expires::After {
            seconds: 3600,
            from_modified: false,
        };
    });
    let h = handler(server((*base).clone(), Vec::new(), Vec::new()), &tree);
    let a = get(&h, "/a.txt");
    assert_eq!(a.header("X-Plain"), Some("p"));
    assert_eq!(a.header("X-Always"), Some("/a.txt"));
    assert_eq!(a.header("Cache-Control"), Some("max-age=3600"));
    assert!(a.header("Expires").is_some());
    let a = get(&h, "/missing");
    assert_eq!(
        (a.header("X-Plain"), a.header("X-Always")),
        (None, Some("/missing"))
    );
    assert_eq!(a.header("Expires"), None);
}

/// nginx 1.22.1: `internal` answers a client 404 (through error_page),
/// a rewrite may go there; `charset` types text answers and error pages.
#[test]
fn internal_locations_and_charset_follow_nginx() {
    let tree = static_tree();
    tree.file("html/int/f.txt", "int");
    let base = config(&tree.path().join("html"));
    let internal = with(&base, |c| c.internal = true);
    let internal_ep = with(&base, |c| {
        c.internal = true;
        c.error_pages = vec![ErrorPage {
            codes: vec![404],
            answer: ErrorPageAnswer::Original,
            target: ErrorPageTarget::Uri(t("/404.html")),
        }];
    });
    let mut toint = location(prefix("/toint/"), Arc::new(base.clone()));
    toint.rewrites = vec![rewrite("^/toint/(.*)$", "/int/$1", RewriteFlag::None)];
    let charset = with(&base, |c| c.charset = Some("utf-8".into()));
    let h = handler(
        server(
            base,
            vec![
                location(prefix("/int/"), internal),
                location(prefix("/intep/"), internal_ep),
                location(prefix("/cs/"), charset),
                toint,
            ],
            Vec::new(),
        ),
        &tree,
    );
    assert_eq!(get(&h, "/int/f.txt").status, 404);
    assert_eq!(get(&h, "/toint/f.txt").body, "int");
    let a = get(&h, "/intep/x");
    assert_eq!((a.status, a.body.as_str()), (404, "custom 404"));

    tree.file("html/cs/a.txt", "x");
    let a = get(&h, "/cs/a.txt");
    assert_eq!(a.header("Content-Type"), Some("text/plain; charset=utf-8"));
    let a = get(&h, "/cs/missing");
    assert_eq!(a.header("Content-Type"), Some("text/html; charset=utf-8"));
}

#[test]
fn request_uri_of_an_absolute_form_target_starts_at_the_path() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let mut echo = location(prefix("/"), Arc::new(base.clone()));
    echo.rewrites = vec![ret(200, Some("$request_uri|$request"))];
    let h = handler(server(base, vec![echo], Vec::new()), &tree);
    let a = send(
        &h,
        "GET http://ex.com/a%20b?x=1 HTTP/1.1\r\nHost: y\r\n\r\n",
    );
    assert_eq!(a.body, "/a%20b?x=1|GET http://ex.com/a%20b?x=1 HTTP/1.1");
}

/// nginx's `combined` line for a request, written once the connection
/// reports the response sent.
#[test]
fn access_log_writes_combined_lines_when_the_response_is_out() {
    use crate::handler::{Handler, Sent};
    let tree = static_tree();
    let log = tree.path().join("access.log");
    let combined = t(concat!(
        "$remote_addr - $remote_user [$time_local] \"$request\" ",
        "$status $body_bytes_sent \"$http_referer\" \"$http_user_agent\""
    ));
    let base = with(&config(&tree.path().join("html")), |c| {
        c.access_log = vec![AccessLogTarget::File {
            path: log.clone(),
            format: "combined".into(),
        }]
    });
    let quiet = with(&base, |c| c.access_log = vec![AccessLogTarget::Off]);
    let site = Site {
        servers: vec![server(
            (*base).clone(),
            vec![location(prefix("/quiet/"), quiet)],
            Vec::new(),
        )],
        log_formats: vec![LogFormatDef {
            name: "combined".into(),
            template: combined,
        }],
        ..Site::default()
    };
    let h = SiteHandler::new(Arc::new(site), tree.path().to_path_buf(), Vec::new());
    let a = send(
        &h,
        "GET /a.txt?x=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t \"q\"\r\n\r\n",
    );
    assert_ne!(a.log_tag, 0);
    let sent = Sent {
        status: a.status,
        body_bytes: a.body.len() as u64,
        header_bytes: 100,
    };
    h.done(a.log_tag, Some(&sent));
    h.done(a.log_tag, Some(&sent)); // a second report writes nothing
    assert_eq!(get(&h, "/quiet/x").log_tag, 0, "access_log off");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("10.0.0.1 - - ["), "{}", lines[0]);
    assert!(
        lines[0].ends_with("] \"GET /a.txt?x=1 HTTP/1.1\" 200 5 \"-\" \"t \\x22q\\x22\""),
        "{}",
        lines[0]
    );
}
