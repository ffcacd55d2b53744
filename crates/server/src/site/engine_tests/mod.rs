//! The engine end to end without sockets: sites built by hand, a file
//! tree in a temporary directory, requests made from raw head bytes
//! ([`Request::from_http_bytes`]) and answered by [`SiteHandler`]. The
//! expected answers are nginx 1.22.1's for the same configuration. This
//! file holds the helpers; `files.rs` the static chain, `flow.rs` the
//! rewrite/return/error_page/access/header phases, `upstream.rs` uwsgi_pass,
//! `resolve.rs` the per-location tables of proxy/uwsgi handlers.

mod compress;
mod files;
mod flow;
mod proxy;
mod resolve;
mod upstream;

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

pub(super) const LOCAL: &str = "127.0.0.1:8080";

/// A fresh directory under the system's temp dir, removed on drop.
pub(super) struct Tree(PathBuf);

impl Tree {
    pub(super) fn new() -> Tree {
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

    pub(super) fn file(&self, rel: &str, body: &str) -> &Tree {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(&path, body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self
    }

    pub(super) fn dir(&self, rel: &str) -> &Tree {
        let _ = std::fs::create_dir_all(self.0.join(rel));
        self
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn t(s: &str) -> Template {
    Template::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(super) fn config(root: &Path) -> LocationConfig {
    LocationConfig {
        root: DocRoot::Root(Template::literal(&root.to_string_lossy())),
        ..LocationConfig::default()
    }
}

pub(super) fn with(
    base: &LocationConfig,
    change: impl FnOnce(&mut LocationConfig),
) -> Arc<LocationConfig> {
    let mut c = base.clone();
    change(&mut c);
    Arc::new(c)
}

pub(super) fn prefix(uri: &str) -> LocationMatch {
    LocationMatch::Prefix {
        uri: uri.into(),
        stop_regex: false,
    }
}

pub(super) fn location(matcher: LocationMatch, config: Arc<LocationConfig>) -> Location {
    Location {
        matcher,
        rewrites: Vec::new(),
        locations: Vec::new(),
        content: Content::Static,
        config,
        origin: "test".into(),
    }
}

pub(super) fn rewrite(re: &str, replacement: &str, flag: RewriteFlag) -> RewriteStep {
    RewriteStep::Rewrite {
        pattern: Pattern::new(re, false).unwrap_or_else(|e| panic!("{re}: {e}")),
        replacement: t(replacement),
        flag,
        origin: "test".into(),
    }
}

pub(super) fn ret(code: u16, body: Option<&str>) -> RewriteStep {
    RewriteStep::Return {
        code,
        body: body.map(t),
    }
}

pub(super) fn server(
    config: LocationConfig,
    locations: Vec<Location>,
    named: Vec<Location>,
) -> Server {
    Server {
        listens: vec![Listen {
            addr: ListenAddr::Tcp(LOCAL.parse().unwrap_or_else(|_| unreachable!())),
            protocol: ListenProtocol::Http,
            default_server: false,
            backlog: None,
            reuseport: false,
            ssl: false,
            http2: false,
        }],
        names: vec![ServerName::Exact("localhost".into())],
        rewrites: Vec::new(),
        locations,
        named,
        config: Arc::new(config),
        origin: "test".into(),
        tls: None,
    }
}

pub(super) fn handler(server: Server, tree: &Tree) -> SiteHandler {
    let site = Site {
        servers: vec![server],
        ..Site::default()
    };
    SiteHandler::new(Arc::new(site), tree.path().to_path_buf(), Vec::new())
}

/// A finished answer with its body collected.
pub(super) struct Answer {
    pub status: u16,
    /// The response's `meta.log_tag` (an access_log record waiting).
    pub log_tag: u64,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body's bytes as they are (a compressed one is not text).
    pub bytes: Vec<u8>,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn collect(response: Response) -> Answer {
    let log_tag = response.meta.log_tag;
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
            while let Some(item) = rx.try_next() {
                if let StreamItem::Data(d) = item {
                    all.extend_from_slice(&d);
                }
            }
            all
        }
    };
    Answer {
        status: response.status,
        log_tag,
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
        bytes: body,
    }
}

pub(super) fn block_on(future: HandlerFuture) -> Response {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
        .block_on(future)
}

/// Send `raw` (head and body) from 10.0.0.1 to the test listen address.
pub(super) fn send_from(handler: &dyn Handler, raw: &str, peer: &str) -> Answer {
    let peer: Option<SocketAddr> = peer.parse().ok();
    let request = Request::from_http_bytes(raw.as_bytes(), peer, LOCAL.parse().ok())
        .unwrap_or_else(|| panic!("unparsable test request {raw:?}"));
    collect(block_on(handler.handle(request)))
}

pub(super) fn send(handler: &dyn Handler, raw: &str) -> Answer {
    send_from(handler, raw, "10.0.0.1:5555")
}

pub(super) fn get(handler: &dyn Handler, target: &str) -> Answer {
    send(
        handler,
        &format!("GET {target} HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
    )
}

pub(super) fn page(status: &str) -> String {
    format!(
        "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n<center><h1>{status}</h1></center>\r\n<hr><center>portico/{}</center>\r\n</body>\r\n</html>\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

pub(super) fn static_tree() -> Tree {
    let tree = Tree::new();
    tree.file("html/index.html", "home")
        .file("html/a.txt", "hello")
        .file("html/page.html", "<p>")
        .file("html/dir/index.html", "dir index")
        .file("html/404.html", "custom 404")
        .dir("html/empty");
    tree
}
