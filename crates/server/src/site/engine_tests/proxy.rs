//! proxy_pass end to end with a fake [`ProxyUpstream`]: the head the
//! engine builds (target, headers, version, body), the hash key, and the
//! answer's way back (proxy_redirect, hidden headers, intercepted errors,
//! Portico's own 502, `$upstream_*` in add_header).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use portico_config::site::*;

use super::*;
use crate::handler::{Request, RequestSource, Response};
use crate::site::engine::{SiteHandler, proxy_locations};
use crate::upstream::{ProxyCall, ProxyFuture, ProxyOutcome, ProxyUpstream};

/// What the fake upstream was sent.
#[derive(Debug, Clone, Default)]
struct Seen {
    line: String,
    headers: Vec<String>,
    body: Bytes,
    hash_key: Option<Bytes>,
}

/// Records each call and answers with `status` and `headers`.
struct Fake {
    seen: Mutex<Vec<Seen>>,
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    from_upstream: bool,
    key: Option<Template>,
}

impl Fake {
    fn new(status: u16, headers: Vec<(&'static str, &'static str)>) -> Arc<Fake> {
        Arc::new(Fake {
            seen: Mutex::new(Vec::new()),
            status,
            headers,
            from_upstream: true,
            key: None,
        })
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .ok()
            .and_then(|s| s.last().cloned())
            .unwrap_or_default()
    }
}

impl ProxyUpstream for Fake {
    fn forward(&self, mut call: ProxyCall) -> ProxyFuture {
        let mut seen = Seen {
            hash_key: call.hash_key.clone(),
            ..Seen::default()
        };
        if let RequestSource::Http(head) = &call.request.source {
            seen.line = format!(
                "{} {} {}",
                String::from_utf8_lossy(&head.method),
                String::from_utf8_lossy(&head.target),
                String::from_utf8_lossy(head.version.as_bytes())
            );
            seen.headers = head
                .headers
                .iter()
                .map(|h| {
                    format!(
                        "{}: {}",
                        String::from_utf8_lossy(h.name),
                        String::from_utf8_lossy(h.value)
                    )
                })
                .collect();
        }
        if let Some(encoded) = &call.encoded_head {
            // A bodiless request's head comes written: its request line must
            // be the head's, and its field lines are what the upstream gets.
            let text = String::from_utf8_lossy(encoded).into_owned();
            let mut lines = text.split("\r\n");
            assert_eq!(lines.next(), Some(seen.line.as_str()), "{text:?}");
            assert!(seen.headers.is_empty(), "fields twice: {text:?}");
            assert!(text.ends_with("\r\n\r\n"), "{text:?}");
            seen.headers = lines
                .take_while(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let crate::body::TryNext::Data(d) = call.request.body.try_next() {
            seen.body = d;
        }
        if let Ok(mut all) = self.seen.lock() {
            all.push(seen);
        }
        let mut response = Response::plain(self.status, "Upstream", "from upstream");
        for (n, v) in &self.headers {
            response.headers.push((
                Bytes::from_static(n.as_bytes()),
                Bytes::from_static(v.as_bytes()),
            ));
        }
        ProxyFuture::new(move || {
            std::future::ready(ProxyOutcome {
                response,
                from_upstream: self.from_upstream,
                tries: {
                    let mut tries = crate::UpstreamTries::default();
                    tries.push(
                        "127.0.0.1:8000",
                        self.status,
                        std::time::Duration::from_millis(1),
                    );
                    tries
                },
            })
        })
    }

    fn hash_key(&self) -> Option<&Template> {
        self.key.as_ref()
    }
}

fn pass(url: &str, uri: Option<&str>) -> ProxyPass {
    ProxyPass {
        target: ProxyTarget::Group("app".into()),
        uri: uri.map(t),
        url: url.into(),
        proxy_host: "app:8000".into(),
        proxy_port: 8000,
        origin: "test".into(),
    }
}

fn proxied(matcher: LocationMatch, config: Arc<LocationConfig>, p: ProxyPass) -> Location {
    let mut l = location(matcher, config);
    l.content = Content::Proxy(p);
    l
}

/// A handler whose every proxy_pass location goes to `fake`.
fn proxy_handler(server: Server, tree: &Tree, fake: &Arc<Fake>) -> SiteHandler {
    let site = Site {
        servers: vec![server],
        ..Site::default()
    };
    let map = proxy_locations(&site)
        .into_iter()
        .map(|(id, _, _)| (id, fake.clone() as Arc<dyn ProxyUpstream>))
        .collect();
    SiteHandler::new(Arc::new(site), tree.path().to_path_buf(), Vec::new()).with_proxies(map)
}

/// nginx 1.29+'s defaults, as the converter fills them in.
fn proxy_config(base: &LocationConfig) -> Arc<LocationConfig> {
    with(base, |c| {
        c.proxy = Arc::new(ProxySettings {
            set_headers: vec![
                ("Host".into(), t("$proxy_host")),
                ("Connection".into(), t("")),
            ],
            ..ProxySettings::default()
        });
    })
}

#[test]
fn a_uri_part_replaces_the_location_prefix() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let fake = Fake::new(200, vec![]);
    let app = proxied(
        prefix("/app/"),
        proxy_config(&base),
        pass("http://app:8000/base/", Some("/base/")),
    );
    let h = proxy_handler(server(base, vec![app], Vec::new()), &tree, &fake);
    let a = send(
        &h,
        "GET /app/a%20b/../c?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\nConnection: keep-alive\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
    );
    assert_eq!((a.status, a.body.as_str()), (200, "from upstream"));
    let seen = fake.last();
    assert_eq!(seen.line, "GET /base/c?x=1 HTTP/1.1");
    assert_eq!(
        seen.headers,
        [
            "Host: app:8000",
            "User-Agent: t",
            "X-Forwarded-For: 1.2.3.4"
        ]
    );
}

#[test]
fn without_a_uri_part_the_target_goes_as_sent_unless_rewritten() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let fake = Fake::new(200, vec![]);
    let plain = proxied(
        prefix("/raw/"),
        proxy_config(&base),
        pass("http://app:8000", None),
    );
    let mut broken = proxied(
        prefix("/name/"),
        proxy_config(&base),
        pass("http://app:8000/ignored/", Some("/ignored/")),
    );
    broken.rewrites = vec![rewrite(
        "^/name/([^/]+)",
        "/users?name=$1",
        RewriteFlag::Break,
    )];
    let mut changed = proxied(
        prefix("/chg/"),
        proxy_config(&base),
        pass("http://app:8000", None),
    );
    changed.rewrites = vec![rewrite("^/chg/(.*)$", "/chg/new $1", RewriteFlag::Break)];
    let mut tried = location(prefix("/try/"), Arc::new(base.clone()));
    tried.config = with(&base, |c| {
        c.try_files = Some(TryFiles {
            files: vec![t("$uri")],
            fallback: TryFallback::Named("backend".into()),
        })
    });
    let named = proxied(
        LocationMatch::Named("backend".into()),
        proxy_config(&base),
        pass("http://app:8000", None),
    );
    let mut short = proxied(
        prefix("/short/prefix/"),
        proxy_config(&base),
        pass("http://app:8000/b/", Some("/b/")),
    );
    short.rewrites = vec![rewrite("^", "/s", RewriteFlag::Break)];
    let mut last = location(prefix("/lastrw/"), Arc::new(base.clone()));
    last.rewrites = vec![rewrite("^/lastrw/(.*)$", "/base/$1", RewriteFlag::Last)];
    let with_base = proxied(
        prefix("/base/"),
        proxy_config(&base),
        pass("http://app:8000/other/", Some("/other/")),
    );
    let mut ep = location(
        prefix("/ep/"),
        with(&base, |c| {
            c.error_pages = vec![ErrorPage {
                codes: vec![404],
                answer: ErrorPageAnswer::Target,
                target: ErrorPageTarget::Uri(t("/base/errpage")),
            }]
        }),
    );
    ep.rewrites = vec![ret(404, None)];
    let h = proxy_handler(
        server(
            base,
            vec![plain, broken, changed, tried, short, last, with_base, ep],
            vec![named],
        ),
        &tree,
        &fake,
    );
    // Each answer is nginx 1.22.1's for the same configuration.
    let cases = [
        ("/short/prefix/x", "GET /s HTTP/1.1"),
        ("/lastrw/a%20b", "GET /other/a%20b HTTP/1.1"),
        ("/ep/x", "GET /other/errpage HTTP/1.1"),
        (
            "/raw//a/./b%2Fc?q=%20",
            "GET /raw//a/./b%2Fc?q=%20 HTTP/1.1",
        ),
        ("/name/bob?x=1", "GET /users?name=bob&x=1 HTTP/1.1"),
        ("/chg/a%3Fb", "GET /chg/new%20a%3Fb HTTP/1.1"),
        ("/try/missing%21?k", "GET /try/missing%21?k HTTP/1.1"),
    ];
    for (target, want) in cases {
        let a = get(&h, target);
        assert_eq!(a.status, 200, "{target}");
        assert_eq!(fake.last().line, want, "{target}");
    }
}

#[test]
fn bodies_set_headers_and_the_hash_key_go_upstream() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let fake = Arc::new(Fake {
        key: Some(t("$arg_user")),
        ..Arc::into_inner(Fake::new(200, vec![])).unwrap_or_else(|| unreachable!())
    });
    let cfg = with(&base, |c| {
        c.proxy = Arc::new(ProxySettings {
            set_headers: vec![
                ("X-Real-IP".into(), t("$remote_addr")),
                ("Host".into(), t("$host")),
                ("X-Forwarded-For".into(), t("$proxy_add_x_forwarded_for")),
                ("Accept-Encoding".into(), t("")),
                ("Connection".into(), t("close")),
            ],
            http_version: ProxyHttpVersion::Http10,
            ..ProxySettings::default()
        });
    });
    let app = proxied(prefix("/"), cfg, pass("http://app:8000", None));
    let h = proxy_handler(server(base, vec![app], Vec::new()), &tree, &fake);
    let a = send(
        &h,
        "POST /form?user=ann HTTP/1.1\r\nHost: Example.com:8080\r\nAccept-Encoding: gzip\r\nX-Forwarded-For: 9.9.9.9\r\nContent-Length: 4\r\nTE: trailers\r\n\r\nbody",
    );
    assert_eq!(a.status, 200);
    let seen = fake.last();
    assert_eq!(seen.line, "POST /form?user=ann HTTP/1.0");
    assert_eq!(
        seen.headers,
        [
            "X-Real-IP: 10.0.0.1",
            "Host: example.com",
            "X-Forwarded-For: 9.9.9.9, 10.0.0.1",
            "Connection: close",
            "Content-Length: 4",
        ]
    );
    assert_eq!(seen.body.as_ref(), b"body");
    assert_eq!(seen.hash_key.as_deref(), Some(&b"ann"[..]));
    let a = send(
        &h,
        "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(a.status, 200);
    let seen = fake.last();
    assert!(
        seen.headers.contains(&"Content-Length: 3".into()),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.body.as_ref(), b"abc", "a chunked body is read whole");
}

#[test]
fn proxy_redirect_rewrites_location_and_refresh() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let fake = Fake::new(
        302,
        vec![
            ("Location", "http://app:8000/base/x?y=1"),
            ("Refresh", "3; url=http://app:8000/base/r"),
            ("Server", "upstream"),
            ("X-Accel-Redirect", "/secret"),
        ],
    );
    let app = proxied(
        prefix("/app/"),
        proxy_config(&base),
        pass("http://app:8000/base/", Some("/base/")),
    );
    let off_cfg = with(&proxy_config(&base), |c| {
        let mut p = (*c.proxy).clone();
        p.redirect = ProxyRedirect::Off;
        c.proxy = Arc::new(p);
    });
    let off = proxied(
        prefix("/off/"),
        off_cfg,
        pass("http://app:8000/base/", Some("/base/")),
    );
    let rules_cfg = with(&proxy_config(&base), |c| {
        let mut p = (*c.proxy).clone();
        p.redirect = ProxyRedirect::Rules(vec![
            RedirectRule {
                from: RedirectFrom::Text(t("http://nowhere/")),
                to: t("/never/"),
            },
            RedirectRule {
                from: RedirectFrom::Regex(
                    Pattern::new("^http://app:(\\d+)/base/(.*)$", false)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                to: t("$scheme://$host/p$1/$2"),
            },
        ]);
        c.proxy = Arc::new(p);
    });
    let ruled = proxied(
        prefix("/rules/"),
        rules_cfg,
        pass("http://app:8000/base/", Some("/base/")),
    );
    let h = proxy_handler(
        server(base, vec![app, off, ruled], Vec::new()),
        &tree,
        &fake,
    );
    let a = get(&h, "/app/z");
    assert_eq!(a.status, 302);
    assert_eq!(
        a.header("Location"),
        Some("http://example.com:8080/app/x?y=1")
    );
    assert_eq!(a.header("Refresh"), Some("3; url=/app/r"));
    assert_eq!(a.header("Server"), None, "hidden by default");
    assert_eq!(a.header("X-Accel-Redirect"), None);
    let a = get(&h, "/off/z");
    assert_eq!(a.header("Location"), Some("http://app:8000/base/x?y=1"));
    let a = get(&h, "/rules/z");
    assert_eq!(a.header("Location"), Some("http://example.com/p8000/x?y=1"));
}

#[test]
fn upstream_errors_are_intercepted_only_when_asked() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let fake = Fake::new(404, vec![]);
    let pages = |c: &mut LocationConfig| {
        c.error_pages = vec![ErrorPage {
            codes: vec![404, 502],
            answer: ErrorPageAnswer::Original,
            target: ErrorPageTarget::Uri(t("/404.html")),
        }];
        c.add_headers = vec![AddHeader {
            name: "X-Up".into(),
            value: t("$upstream_addr $upstream_status"),
            always: true,
        }];
    };
    let relayed = proxied(
        prefix("/relay/"),
        with(&proxy_config(&base), pages),
        pass("http://app:8000", None),
    );
    let caught_cfg = with(&proxy_config(&base), |c| {
        pages(c);
        let mut p = (*c.proxy).clone();
        p.intercept_errors = true;
        c.proxy = Arc::new(p);
    });
    let caught = proxied(
        prefix("/caught/"),
        caught_cfg,
        pass("http://app:8000", None),
    );
    let h = proxy_handler(
        server(base.clone(), vec![relayed, caught], Vec::new()),
        &tree,
        &fake,
    );
    let a = get(&h, "/relay/x");
    assert_eq!((a.status, a.body.as_str()), (404, "from upstream"));
    assert_eq!(a.header("X-Up"), Some("127.0.0.1:8000 404"));
    let a = get(&h, "/caught/x");
    assert_eq!((a.status, a.body.as_str()), (404, "custom 404"));

    // Portico's own 502 (every peer failed) goes through error_page.
    let failed = Arc::new(Fake {
        from_upstream: false,
        ..Arc::into_inner(Fake::new(502, vec![])).unwrap_or_else(|| unreachable!())
    });
    let relayed = proxied(
        prefix("/relay/"),
        with(&proxy_config(&base), pages),
        pass("http://app:8000", None),
    );
    let plain = proxied(
        prefix("/plain/"),
        proxy_config(&base),
        pass("http://app:8000", None),
    );
    let h = proxy_handler(
        server(base, vec![relayed, plain], Vec::new()),
        &tree,
        &failed,
    );
    let a = get(&h, "/relay/x");
    assert_eq!((a.status, a.body.as_str()), (502, "custom 404"));
    let a = get(&h, "/plain/x");
    assert_eq!((a.status, a.body), (502, page("502 Bad Gateway")));
}

#[test]
fn a_proxy_location_without_an_upstream_is_502() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let app = proxied(
        prefix("/"),
        proxy_config(&base),
        pass("http://app:8000", None),
    );
    let h = handler(server(base, vec![app], Vec::new()), &tree);
    let a = get(&h, "/x");
    assert_eq!((a.status, a.body), (502, page("502 Bad Gateway")));
}
