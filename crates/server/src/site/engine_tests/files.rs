//! The static chain: files, index, autoindex, alias, try_files, gzip_static, hosts.

use std::sync::Arc;

use portico_config::site::*;

use super::*;

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
fn hosts_choose_redirect_bases_and_bad_ones_are_400() {
    let tree = static_tree();
    let h = handler(
        server(config(&tree.path().join("html")), Vec::new(), Vec::new()),
        &tree,
    );
    let a = send(&h, "GET /dir HTTP/1.0\r\n\r\n");
    assert_eq!(
        a.header("Location"),
        Some("http://127.0.0.1:8080/dir/"),
        "no Host: the local address"
    );
    let a = send(
        &h,
        "GET http://Abs.Example:81/dir HTTP/1.1\r\nHost: other\r\n\r\n",
    );
    assert_eq!(a.header("Location"), Some("http://abs.example:8080/dir/"));
    for bad in ["bad..host", ""] {
        let a = send(&h, &format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n"));
        assert_eq!(
            (a.status, a.body.clone()),
            (400, page("400 Bad Request")),
            "{bad:?}"
        );
    }
}

#[test]
fn gzip_static_serves_the_sibling_without_ranges() {
    let tree = static_tree();
    tree.file("html/g/p.html", "plain")
        .file("html/g/p.html.gz", "GZ");
    let base = config(&tree.path().join("html"));
    let gz = with(&base, |c| {
        c.gzip_static = true;
        c.gzip_vary = true;
    });
    let h = handler(
        server(base, vec![location(prefix("/g/"), gz)], Vec::new()),
        &tree,
    );
    let ask = |accept: &str| {
        send(
            &h,
            &format!(
                "GET /g/p.html HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\nRange: bytes=0-0\r\n\r\n"
            ),
        )
    };
    let a = ask("gzip, br");
    assert_eq!((a.status, a.body.as_str()), (200, "GZ"));
    assert_eq!(a.header("Content-Encoding"), Some("gzip"));
    assert_eq!(a.header("Content-Type"), Some("text/html"));
    assert_eq!(
        (a.header("Vary"), a.header("Accept-Ranges")),
        (Some("Accept-Encoding"), None)
    );
    let a = ask("gzip;q=0");
    assert_eq!((a.status, a.body.as_str()), (206, "p"));
    assert_eq!(a.header("Vary"), Some("Accept-Encoding"));
}
