//! The engine end to end without sockets: sites built by hand, a file
//! tree in a temporary directory, requests made from raw head bytes
//! ([`Request::from_http_bytes`]) and answered by [`SiteHandler`]. The
//! expected answers are nginx 1.22.1's for the same configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use portico_config::site::{
    AccessNet, AccessRule, AddHeader, Content, DocRoot, ErrorPage, ErrorPageAnswer,
    ErrorPageTarget, Expires, Listen, ListenAddr, ListenProtocol, Location, LocationConfig,
    LocationMatch, Pattern, RewriteFlag, RewriteStep, Server, ServerName, Site, Template,
    TryFallback, TryFiles, UpstreamTarget, UwsgiParam,
};

use super::engine::SiteHandler;
use crate::handler::{
    Handler, HandlerFuture, Request, RequestSource, Response, ResponseBody, StreamItem,
};

const LOCAL: &str = "127.0.0.1:8080";

/// A fresh directory under the system's temp dir, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Tree {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "portico-engine-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Tree(dir)
    }

    fn file(&self, rel: &str, body: &str) -> &Tree {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(&path, body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self
    }

    fn dir(&self, rel: &str) -> &Tree {
        let _ = std::fs::create_dir_all(self.0.join(rel));
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn t(s: &str) -> Template {
    Template::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn config(root: &Path) -> LocationConfig {
    LocationConfig {
        root: DocRoot::Root(Template::literal(&root.to_string_lossy())),
        ..LocationConfig::default()
    }
}

fn with(base: &LocationConfig, change: impl FnOnce(&mut LocationConfig)) -> Arc<LocationConfig> {
    let mut c = base.clone();
    change(&mut c);
    Arc::new(c)
}

fn prefix(uri: &str) -> LocationMatch {
    LocationMatch::Prefix {
        uri: uri.into(),
        stop_regex: false,
    }
}

fn location(matcher: LocationMatch, config: Arc<LocationConfig>) -> Location {
    Location {
        matcher,
        rewrites: Vec::new(),
        locations: Vec::new(),
        content: Content::Static,
        config,
        origin: "test".into(),
    }
}

fn rewrite(re: &str, replacement: &str, flag: RewriteFlag) -> RewriteStep {
    RewriteStep::Rewrite {
        pattern: Pattern::new(re, false).unwrap_or_else(|e| panic!("{re}: {e}")),
        replacement: t(replacement),
        flag,
        origin: "test".into(),
    }
}

fn ret(code: u16, body: Option<&str>) -> RewriteStep {
    RewriteStep::Return {
        code,
        body: body.map(t),
    }
}

fn server(config: LocationConfig, locations: Vec<Location>, named: Vec<Location>) -> Server {
    Server {
        listens: vec![Listen {
            addr: ListenAddr::Tcp(LOCAL.parse().unwrap_or_else(|_| unreachable!())),
            protocol: ListenProtocol::Http,
            default_server: false,
            backlog: None,
            reuseport: false,
        }],
        names: vec![ServerName::Exact("localhost".into())],
        rewrites: Vec::new(),
        locations,
        named,
        config: Arc::new(config),
        origin: "test".into(),
    }
}

fn handler(server: Server, tree: &Tree) -> SiteHandler {
    let site = Site {
        servers: vec![server],
        ..Site::default()
    };
    SiteHandler::new(Arc::new(site), tree.path().to_path_buf(), Vec::new())
}

/// A finished answer with its body collected.
struct Answer {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn collect(response: Response) -> Answer {
    let body = match response.body {
        ResponseBody::Empty => Vec::new(),
        ResponseBody::Full(b) => b.to_vec(),
        ResponseBody::File { file, offset, len } => {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0; len as usize];
            let _ = file.read_exact_at(&mut buf, offset);
            buf
        }
        ResponseBody::Stream(mut rx) => {
            let mut all = Vec::new();
            while let Ok(item) = rx.try_recv() {
                if let StreamItem::Data(d) = item {
                    all.extend_from_slice(&d);
                }
            }
            all
        }
    };
    Answer {
        status: response.status,
        reason: String::from_utf8_lossy(&response.reason).into_owned(),
        headers: response
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn block_on(future: HandlerFuture) -> Response {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
        .block_on(future)
}

/// Send `raw` (head and body) from 10.0.0.1 to the test listen address.
fn send_from(handler: &dyn Handler, raw: &str, peer: &str) -> Answer {
    let peer: Option<SocketAddr> = peer.parse().ok();
    let request = Request::from_http_bytes(raw.as_bytes(), peer, LOCAL.parse().ok())
        .unwrap_or_else(|| panic!("unparsable test request {raw:?}"));
    collect(block_on(handler.handle(request)))
}

fn send(handler: &dyn Handler, raw: &str) -> Answer {
    send_from(handler, raw, "10.0.0.1:5555")
}

fn get(handler: &dyn Handler, target: &str) -> Answer {
    send(
        handler,
        &format!("GET {target} HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
    )
}

fn page(status: &str) -> String {
    format!(
        "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n<center><h1>{status}</h1></center>\r\n<hr><center>portico/{}</center>\r\n</body>\r\n</html>\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn static_tree() -> Tree {
    let tree = Tree::new();
    tree.file("html/index.html", "home")
        .file("html/a.txt", "hello")
        .file("html/page.html", "<p>")
        .file("html/dir/index.html", "dir index")
        .file("html/404.html", "custom 404")
        .dir("html/empty");
    tree
}

#[test]
fn static_files_index_and_errors_answer_as_nginx() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let h = handler(server(base, Vec::new(), Vec::new()), &tree);

    let a = get(&h, "/a.txt");
    assert_eq!((a.status, a.body.as_str()), (200, "hello"));
    assert_eq!(a.header("Content-Type"), Some("text/plain"));
    assert!(a.header("ETag").is_some() && a.header("Last-Modified").is_some());

    let a = get(&h, "/page.html");
    assert_eq!(a.header("Content-Type"), Some("text/html"));

    let a = get(&h, "/missing");
    assert_eq!((a.status, a.reason.as_str()), (404, "Not Found"));
    assert_eq!(a.body, page("404 Not Found"));
    assert_eq!(a.header("Content-Type"), Some("text/html"));

    let a = get(&h, "/dir?x=1");
    assert_eq!(a.status, 301);
    assert_eq!(
        a.header("Location"),
        Some("http://example.com:8080/dir/?x=1")
    );
    assert_eq!(a.body, page("301 Moved Permanently"));

    let a = get(&h, "/dir/");
    assert_eq!((a.status, a.body.as_str()), (200, "dir index"));
    let a = get(&h, "/");
    assert_eq!((a.status, a.body.as_str()), (200, "home"));

    let a = get(&h, "/empty/");
    assert_eq!((a.status, a.body), (403, page("403 Forbidden")));
    let a = get(&h, "/nodir/");
    assert_eq!(a.status, 404);

    let a = send(
        &h,
        "PUT /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!((a.status, a.reason.as_str()), (405, "Not Allowed"));
    let a = send(
        &h,
        "PUT /dir/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(a.status, 405);
    let a = send(
        &h,
        "POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(a.status, 404);
    let a = send(
        &h,
        "POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(a.status, 405);
}

#[test]
fn a_uri_climbing_above_root_is_400() {
    let tree = static_tree();
    let h = handler(
        server(config(&tree.path().join("html")), Vec::new(), Vec::new()),
        &tree,
    );
    let a = get(&h, "/../../etc/passwd");
    assert_eq!((a.status, a.body), (400, page("400 Bad Request")));
}

#[test]
fn alias_replaces_the_prefix_and_refuses_a_climb() {
    let tree = static_tree();
    tree.file("other/x.txt", "aliased")
        .file("html/other/x.txt", "rooted");
    let base = config(&tree.path().join("html"));
    let alias = with(&base, |c| {
        c.root = DocRoot::Alias(Template::literal(&format!(
            "{}/",
            tree.path().join("other").display()
        )))
    });
    let noslash = with(&base, |c| {
        c.root = DocRoot::Alias(Template::literal(&format!(
            "{}/",
            tree.path().join("other").display()
        )))
    });
    let h = handler(
        server(
            base,
            vec![
                location(prefix("/files/"), alias),
                location(prefix("/trav"), noslash),
            ],
            Vec::new(),
        ),
        &tree,
    );
    assert_eq!(get(&h, "/files/x.txt").body, "aliased");
    assert_eq!(get(&h, "/trav../html/a.txt").status, 403);
}

#[test]
fn autoindex_lists_a_directory_without_index() {
    let tree = static_tree();
    tree.file("html/list/b.txt", "bb").dir("html/list/sub");
    let base = config(&tree.path().join("html"));
    let listing = with(&base, |c| c.autoindex = true);
    let h = handler(
        server(base, vec![location(prefix("/list/"), listing)], Vec::new()),
        &tree,
    );
    let a = get(&h, "/list/");
    assert_eq!(a.status, 200);
    assert_eq!(a.header("Content-Type"), Some("text/html"));
    assert!(a.body.starts_with(
        "<html>\r\n<head><title>Index of /list/</title></head>\r\n<body>\r\n<h1>Index of /list/</h1><hr><pre><a href=\"../\">../</a>\r\n<a href=\"sub/\">sub/</a> "
    ), "{}", a.body);
    assert!(a.body.contains("<a href=\"b.txt\">b.txt</a>"));
}

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
    let h = handler(
        server(base, vec![text, moved, empty, teapot], Vec::new()),
        &tree,
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
fn try_files_tests_files_then_falls_back() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let spa = with(&base, |c| {
        c.try_files = Some(TryFiles {
            files: vec![t("$uri"), t("$uri/")],
            fallback: TryFallback::Uri(t("/index.html")),
        })
    });
    let code = with(&base, |c| {
        c.try_files = Some(TryFiles {
            files: vec![t("/nope")],
            fallback: TryFallback::Code(404),
        })
    });
    let named = with(&base, |c| {
        c.try_files = Some(TryFiles {
            files: vec![t("/nope")],
            fallback: TryFallback::Named("app".into()),
        })
    });
    let mut app = location(LocationMatch::Named("app".into()), Arc::new(base.clone()));
    app.rewrites = vec![ret(200, Some("app $uri $args"))];
    let h = handler(
        server(
            base,
            vec![
                location(prefix("/"), spa),
                location(prefix("/code/"), code),
                location(prefix("/named/"), named),
            ],
            vec![app],
        ),
        &tree,
    );
    assert_eq!(get(&h, "/a.txt").body, "hello");
    assert_eq!(get(&h, "/dir/").body, "dir index");
    assert_eq!(get(&h, "/deep/link?x=1").body, "home");
    assert_eq!(get(&h, "/code/x").status, 404);
    assert_eq!(get(&h, "/named/x?q=1").body, "app /named/x q=1");
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

/// The vars and body an upstream was given.
type Seen = (Vec<(String, String)>, Bytes);

/// An upstream that records the request it was given.
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    status: u16,
}

impl Handler for Recorder {
    fn handle(&self, mut request: Request) -> HandlerFuture {
        let vars = match &request.source {
            RequestSource::Uwsgi(p) => p
                .vars
                .iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            RequestSource::Http(_) => Vec::new(),
        };
        let body = match request.body.try_next() {
            crate::body::TryNext::Data(d) => d,
            _ => Bytes::new(),
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((vars, body));
        }
        let mut response = Response::plain(self.status, "X", "from app");
        response.reason = Bytes::from_static(b"X");
        Box::pin(std::future::ready(response))
    }
}

#[test]
fn uwsgi_pass_sends_params_then_headers_to_the_upstream() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let target = UpstreamTarget::Unix("/run/app.sock".into());
    let app_config = with(&base, |c| {
        c.uwsgi_params = vec![
            UwsgiParam {
                key: "REQUEST_METHOD".into(),
                value: t("$request_method"),
                if_not_empty: false,
            },
            UwsgiParam {
                key: "QUERY_STRING".into(),
                value: t("$query_string"),
                if_not_empty: false,
            },
            UwsgiParam {
                key: "CONTENT_TYPE".into(),
                value: t("$content_type"),
                if_not_empty: true,
            },
            UwsgiParam {
                key: "CONTENT_LENGTH".into(),
                value: t("$content_length"),
                if_not_empty: false,
            },
            UwsgiParam {
                key: "PATH_INFO".into(),
                value: t("$document_uri"),
                if_not_empty: false,
            },
        ];
        c.client_max_body_size = 8;
        c.error_pages = vec![ErrorPage {
            codes: vec![503],
            answer: ErrorPageAnswer::Original,
            target: ErrorPageTarget::Uri(t("/404.html")),
        }];
    });
    let intercept = with(&app_config, |c| c.uwsgi_intercept_errors = true);
    let mut app = location(prefix("/app"), app_config);
    app.content = Content::Uwsgi(target.clone());
    let mut caught = location(prefix("/caught"), intercept);
    caught.content = Content::Uwsgi(target.clone());
    let site = Site {
        servers: vec![server(base, vec![app, caught], Vec::new())],
        ..Site::default()
    };
    let ok = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        status: 200,
    });
    let h = SiteHandler::new(
        Arc::new(site.clone()),
        tree.path().to_path_buf(),
        vec![(target.clone(), ok.clone() as Arc<dyn Handler>)],
    );
    let a = send(
        &h,
        "POST /app/x%20y?a=1 HTTP/1.1\r\nHost: example.com\r\nAccept: a\r\nX-Under_score: no\r\nContent-Length: 4\r\naccept: b\r\n\r\nbody",
    );
    assert_eq!((a.status, a.body.as_str()), (200, "from app"));
    let seen = ok.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let (vars, body) = &seen[0];
    let want: Vec<(String, String)> = [
        ("REQUEST_METHOD", "POST"),
        ("QUERY_STRING", "a=1"),
        ("CONTENT_LENGTH", "4"),
        ("PATH_INFO", "/app/x y"),
        ("HTTP_HOST", "example.com"),
        ("HTTP_ACCEPT", "a, b"),
        ("HTTP_CONTENT_LENGTH", "4"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(vars, &want);
    assert_eq!(body.as_ref(), b"body");

    let a = send(
        &h,
        "POST /app/c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!(a.status, 200);
    let seen = ok.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let (vars, body) = &seen[1];
    assert_eq!(body.as_ref(), b"abcde", "a chunked body is read whole");
    assert!(
        vars.contains(&("CONTENT_LENGTH".into(), "5".into())),
        "{vars:?}"
    );

    let a = send(
        &h,
        "POST /app/c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n",
    );
    assert_eq!(a.status, 413, "a chunked body past client_max_body_size");

    let failing = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        status: 503,
    });
    let h = SiteHandler::new(
        Arc::new(site),
        tree.path().to_path_buf(),
        vec![(target, failing as Arc<dyn Handler>)],
    );
    let a = get(&h, "/app/x");
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "from app"),
        "not intercepted"
    );
    let a = get(&h, "/caught/x");
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "custom 404"),
        "intercepted"
    );
}

#[test]
fn a_missing_upstream_is_502() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let mut app = location(prefix("/app"), Arc::new(base.clone()));
    app.content = Content::Uwsgi(UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port: 9,
    });
    let h = handler(server(base, vec![app], Vec::new()), &tree);
    let a = get(&h, "/app/");
    assert_eq!((a.status, a.body), (502, page("502 Bad Gateway")));
}
