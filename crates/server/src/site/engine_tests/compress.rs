//! The gzip and brotli filters in the engine: they run after `add_header`
//! and `expires` on static answers, Portico's own pages and the
//! option-style app's answers; ranges, HEAD and conditional answers as
//! nginx 1.22 (with ngx_brotli) gives them.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use portico_config::site::{AddHeader, CompressSettings, Content, Expires};

use super::*;

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(data).read_to_end(&mut out);
    assert!(read.is_ok(), "not gzip: {read:?}");
    out
}

const TEXT: &str = "<html><body>compress me, compress me, compress me</body></html>\n";

fn gzip_site(tree: &Tree) -> SiteHandler {
    tree.file("html/p.html", TEXT)
        .file("html/tiny.html", "tiny");
    let base = config(&tree.path().join("html"));
    let on = with(&base, |c| {
        c.compress = Arc::new(CompressSettings {
            gzip: true,
            brotli: true,
            ..CompressSettings::default()
        });
        c.gzip_vary = true;
        c.expires = Expires::Max;
        c.add_headers = vec![AddHeader {
            name: "X-Added".into(),
            value: t("yes"),
            always: false,
        }];
    });
    handler(
        server(base, vec![location(prefix("/"), on)], Vec::new()),
        tree,
    )
}

fn ask(h: &SiteHandler, method: &str, target: &str, extra: &str) -> Answer {
    send(
        h,
        &format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
    )
}

#[test]
fn static_answers_are_compressed_after_add_header_and_expires() {
    let tree = Tree::new();
    let h = gzip_site(&tree);
    let a = ask(&h, "GET", "/p.html", "Accept-Encoding: gzip\r\n");
    assert_eq!(a.status, 200);
    assert_eq!(a.header("Content-Encoding"), Some("gzip"));
    assert_eq!(a.header("Content-Length"), None);
    assert_eq!(a.header("Accept-Ranges"), None);
    assert_eq!(a.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(a.header("X-Added"), Some("yes"));
    assert!(a.header("ETag").is_some_and(|e| e.starts_with("W/\"")));
    assert_eq!(gunzip(&a.bytes), TEXT.as_bytes());
    // br first when both are accepted.
    let a = ask(&h, "GET", "/p.html", "Accept-Encoding: gzip, br\r\n");
    assert_eq!(a.header("Content-Encoding"), Some("br"));
    // Short files, other clients: as they are, still varying.
    let a = ask(&h, "GET", "/tiny.html", "Accept-Encoding: gzip\r\n");
    assert_eq!(
        (a.header("Content-Encoding"), a.body.as_str()),
        (None, "tiny")
    );
    let a = ask(&h, "GET", "/p.html", "");
    assert_eq!(a.header("Content-Encoding"), None);
    assert_eq!(a.header("Vary"), Some("Accept-Encoding"));
    assert!(a.header("ETag").is_some_and(|e| e.starts_with('"')));
}

#[test]
fn ranges_conditionals_and_head_are_answered_as_nginx_does() {
    let tree = Tree::new();
    let h = gzip_site(&tree);
    let a = ask(
        &h,
        "GET",
        "/p.html",
        "Accept-Encoding: gzip\r\nRange: bytes=0-3\r\n",
    );
    assert_eq!((a.status, a.body.as_str()), (206, "<htm"));
    assert_eq!(a.header("Content-Encoding"), None);
    let etag = ask(&h, "GET", "/p.html", "")
        .header("ETag")
        .map(str::to_string)
        .unwrap_or_default();
    let a = ask(
        &h,
        "GET",
        "/p.html",
        &format!("Accept-Encoding: gzip\r\nIf-None-Match: {etag}\r\n"),
    );
    assert_eq!((a.status, a.header("Content-Encoding")), (304, None));
    let a = ask(&h, "HEAD", "/p.html", "Accept-Encoding: gzip\r\n");
    assert_eq!(a.header("Content-Encoding"), Some("gzip"));
    assert_eq!(a.header("Content-Length"), None);
    let a = send(
        &h,
        "GET /p.html HTTP/1.0\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    assert_eq!(a.header("Content-Encoding"), None);
}

#[test]
fn portico_own_error_pages_are_compressed_like_nginx_pages() {
    let tree = Tree::new();
    let h = gzip_site(&tree);
    let a = ask(&h, "GET", "/missing.html", "Accept-Encoding: gzip\r\n");
    assert_eq!(
        (a.status, a.header("Content-Encoding")),
        (404, Some("gzip"))
    );
    assert_eq!(
        String::from_utf8_lossy(&gunzip(&a.bytes)),
        page("404 Not Found")
    );
}

struct App;

impl Handler for App {
    fn handle(&self, _request: Request) -> HandlerFuture {
        HandlerFuture::new(move || async {
            Response {
                status: 200,
                reason: Bytes::from_static(b"OK"),
                headers: vec![(
                    Bytes::from_static(b"Content-Type"),
                    Bytes::from_static(b"text/html; charset=utf-8"),
                )],
                body: ResponseBody::Full(Bytes::from_static(TEXT.as_bytes())),
                meta: crate::handler::ResponseMeta::default(),
            }
        })
    }
}

#[test]
fn the_option_style_app_answer_is_compressed() {
    let tree = Tree::new();
    let base = config(tree.path());
    let mut app_location = location(
        prefix("/"),
        with(&base, |c| {
            c.compress = Arc::new(CompressSettings {
                gzip: true,
                ..CompressSettings::default()
            })
        }),
    );
    app_location.content = Content::App;
    let h = handler(server(base, vec![app_location], Vec::new()), &tree).with_app(Arc::new(App));
    let a = ask(&h, "GET", "/", "Accept-Encoding: gzip\r\n");
    assert_eq!(a.header("Content-Encoding"), Some("gzip"));
    assert_eq!(gunzip(&a.bytes), TEXT.as_bytes());
}
