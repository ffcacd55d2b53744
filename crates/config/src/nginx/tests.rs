//! The reader end to end on files in a temp directory: every error message
//! nginx 1.22 gives at the syntax level (wording and line checked against
//! the real nginx), includes and globs, fragments, `-g`, `-T`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory with the given files in it.
fn dir_with(files: &[(&str, &str)]) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("portico-nginx-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
    dir
}

/// The error for a main file `text` as `MESSAGE @FILE:LINE` (FILE relative to
/// the temp dir), or `ok`.
fn check(files: &[(&str, &str)], globals: Option<&str>) -> String {
    let dir = dir_with(files);
    let out = match read_conf(&dir.join("nginx.conf"), globals) {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            let file = e
                .file
                .as_deref()
                .map(|f| f.strip_prefix(&dir).unwrap_or(f).display().to_string());
            let message = e.message.replace(&dir.display().to_string(), "DIR");
            match (file, e.line) {
                (Some(f), Some(l)) => format!("{message} @{f}:{l}"),
                (Some(f), None) => format!("{message} @{f}"),
                _ => message,
            }
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn main_only(text: &str) -> String {
    check(&[("nginx.conf", text)], None)
}

#[test]
fn every_syntax_error_has_nginx_words_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "events {}\nhttp {\n  foo bar;\n}\n",
            "unknown directive \"foo\" @nginx.conf:3",
        ),
        (
            "server {}\nevents {}\n",
            "\"server\" directive is not allowed here @nginx.conf:1",
        ),
        (
            "events {}\nhttp { listen 80; }\n",
            "\"listen\" directive is not allowed here @nginx.conf:2",
        ),
        (
            "events {}\nhttp { server { location / { server_name x; } } }\n",
            "\"server_name\" directive is not allowed here @nginx.conf:2",
        ),
        (
            "events {}\nhttp { upstream u { listen 80; } }\n",
            "\"listen\" directive is not allowed here @nginx.conf:2",
        ),
        ("events {}\n}\n", "unexpected \"}\" @nginx.conf:2"),
        (
            "events {}\nhttp {\n",
            "unexpected end of file, expecting \"}\" @nginx.conf:3",
        ),
        (
            "events {}\nhttp { server {}",
            "unexpected end of file, expecting \"}\" @nginx.conf:2",
        ),
        (
            "events {}\nhttp { sendfile on",
            "unexpected end of file, expecting \";\" or \"}\" @nginx.conf:2",
        ),
        (
            "events {}\nhttp { sendfile on {} }\n",
            "directive \"sendfile\" is not terminated by \";\" @nginx.conf:2",
        ),
        (
            "events {}\nhttp { server; }\n",
            "directive \"server\" has no opening \"{\" @nginx.conf:2",
        ),
        (
            "events;\n",
            "directive \"events\" has no opening \"{\" @nginx.conf:1",
        ),
        (
            "events {}\nhttp { sendfile; }\n",
            "invalid number of arguments in \"sendfile\" directive @nginx.conf:2",
        ),
        (
            "events {}\nhttp { server { listen; } }\n",
            "invalid number of arguments in \"listen\" directive @nginx.conf:2",
        ),
        (
            "events {}\nhttp { upstream {} }\n",
            "invalid number of arguments in \"upstream\" directive @nginx.conf:2",
        ),
        (
            "events {}\nhttp { sendfile yes; }\n",
            "invalid value \"yes\" in \"sendfile\" directive, it must be \"on\" or \"off\" @nginx.conf:2",
        ),
        (
            "events {}\nhttp { sendfile on;\n sendfile off; }\n",
            "\"sendfile\" directive is duplicate @nginx.conf:3",
        ),
        (
            "events {}\nhttp { server { root /a; root /b; } }\n",
            "\"root\" directive is duplicate @nginx.conf:2",
        ),
        (
            "events {}\nhttp { server { location / { alias /a/; root /b; } } }\n",
            "\"root\" directive is duplicate, \"alias\" directive was specified earlier @nginx.conf:2",
        ),
        (
            "events {}\nevents {}\n",
            "\"events\" directive is duplicate @nginx.conf:2",
        ),
        (
            "worker_processes 1;\nworker_processes 2;\nevents {}\n",
            "\"worker_processes\" directive is duplicate @nginx.conf:2",
        ),
        (
            "events {}\nhttp {}\nhttp {}\n",
            "\"http\" directive is duplicate @nginx.conf:3",
        ),
        ("http {}\n", "no \"events\" section in configuration"),
        ("", "no \"events\" section in configuration"),
        (
            "events {}\nhttp { add_header X \"v\"x; }\n",
            "unexpected \"x\" @nginx.conf:2",
        ),
        ("events {}\n;\n", "unexpected \";\" @nginx.conf:2"),
        (
            "events {}\nhttp { server { location ~ ^/a{2}$ { } } }\n",
            "unknown directive \"2}$\" @nginx.conf:2",
        ),
        (
            "events {}\nhttp { types { text/html html; a { } } }\n",
            "unexpected \"{\" @nginx.conf:2",
        ),
        (
            "events {}\nhttp { types { include; } }\n",
            "invalid number of arguments in \"include\" directive @nginx.conf:2",
        ),
        (
            "events {}\nhttp { map $a $b { a b c; } }\n",
            "invalid number of the map parameters @nginx.conf:2",
        ),
        (
            "events {}\nhttp { server { if ($a) { if ($b) { } } } }\n",
            "\"if\" directive is not allowed here @nginx.conf:2",
        ),
        (
            "events {}\nhttp { server { location / { limit_except GET { root /x; } } } }\n",
            "\"root\" directive is not allowed here @nginx.conf:2",
        ),
        // the line is where the `;` is
        (
            "events {}\nhttp {\n  foo\n    bar;\n}\n",
            "unknown directive \"foo\" @nginx.conf:4",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(main_only(text), *want, "config {text:?}");
    }
}

#[test]
fn good_configs_read_clean() {
    let cases: &[&str] = &[
        "events {}\n",
        "worker_processes auto;\nevents { worker_connections 512; }\nhttp {\n  types { text/html html htm; }\n  map $uri $x { default 1; ~^/a 2; hostnames; }\n  upstream u { server 127.0.0.1:1 weight=2; ip_hash; keepalive 8; }\n  server { listen 80; server_name a; location / { if ($x) { return 404; } limit_except GET { deny all; } } location = /b { alias /x; } }\n}\n",
        "events {}\nhttp { server { location ~ \"^/a{2}$\" { } set $a ${b}c; } }\n",
        "events {}\nhttp { sendfile ON; }\n",
    ];
    for text in cases {
        assert_eq!(main_only(text), "ok", "config {text:?}");
    }
}

#[test]
fn a_tree_keeps_names_args_quotes_lines_and_children() {
    let dir = dir_with(&[(
        "nginx.conf",
        "events {}\nhttp {\n  server {\n    listen 8080;\n    add_header X \"a b\";\n  }\n}\n",
    )]);
    let tree = read_conf(&dir.join("nginx.conf"), None).expect("reads");
    let http = &tree.main[1];
    assert_eq!(http.name, "http");
    let server = &http.children.as_ref().expect("block")[0];
    let kids = server.children.as_ref().expect("block");
    assert_eq!(kids[0].name, "listen");
    assert_eq!(kids[0].line, 4);
    assert_eq!(
        kids[1].args[1],
        Arg {
            value: "a b".into(),
            quoted: true
        }
    );
    assert_eq!(
        kids[0].origin(),
        format!("{}:4", dir.join("nginx.conf").display())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn include_is_relative_to_the_main_file_sorted_and_globbed() {
    let files = [
        (
            "nginx.conf",
            "events {}\nhttp {\n  include conf.d/*.conf;\n  include extra;\n}\n",
        ),
        ("conf.d/b.conf", "server { listen 2; }\n"),
        ("conf.d/a.conf", "server { listen 1; }\n"),
        ("conf.d/.hidden.conf", "bogus;\n"),
        ("extra", "sendfile on;\n"),
    ];
    let dir = dir_with(&files);
    let tree = read_conf(&dir.join("nginx.conf"), None).expect("reads");
    let http = tree.main[1].children.as_ref().expect("block");
    let listens: Vec<String> = http
        .iter()
        .filter(|d| d.name == "server")
        .map(|s| s.children.as_ref().expect("block")[0].args[0].value.clone())
        .collect();
    assert_eq!(listens, ["1", "2"]);
    assert_eq!(http[0].file.as_path(), dir.join("conf.d/a.conf"));
    assert_eq!(http[2].name, "sendfile");
    let names: Vec<PathBuf> = tree.files.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        names,
        [
            dir.join("nginx.conf"),
            dir.join("conf.d/a.conf"),
            dir.join("conf.d/b.conf"),
            dir.join("extra")
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn include_errors_name_the_including_line() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("nginx.conf", "events {}\nhttp {\ninclude nope.conf;\n}\n")],
            "open() \"DIR/nope.conf\" failed (2: No such file or directory) @nginx.conf:3",
        ),
        (
            &[("nginx.conf", "events {}\nhttp { include none/*.conf; }\n")],
            "ok",
        ),
        (
            &[
                ("nginx.conf", "events {}\nhttp {\ninclude a.conf;\n}\n"),
                ("a.conf", "server {\n"),
            ],
            "unexpected end of file, expecting \"}\" @a.conf:2",
        ),
        (
            &[
                ("nginx.conf", "events {}\nhttp {\ninclude a.conf;\n}\n"),
                ("a.conf", "}\n"),
            ],
            "unexpected \"}\" @a.conf:1",
        ),
        (
            &[
                ("nginx.conf", "events {}\nhttp {\ninclude a.conf;\n}\n"),
                ("a.conf", "\n\nbogus;\n"),
            ],
            "unknown directive \"bogus\" @a.conf:3",
        ),
        (
            &[
                ("nginx.conf", "events {}\nhttp { include a.conf; }\n"),
                ("a.conf", "include a.conf;\n"),
            ],
            "include \"a.conf\" nested more than 64 levels deep @a.conf:1",
        ),
    ];
    for (files, want) in cases {
        assert_eq!(check(files, None), *want, "files {files:?}");
    }
}

#[test]
fn missing_params_files_fall_back_to_the_built_in_copies() {
    let files = [(
        "nginx.conf",
        "events {}\nhttp { include mime.types;\n server { location / { include uwsgi_params; include snippets/proxy_params; } } }\n",
    )];
    let dir = dir_with(&files);
    let tree = read_conf(&dir.join("nginx.conf"), None).expect("reads");
    let names: Vec<String> = tree
        .files
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(
        &names[1..],
        [
            "(portico built-in)/mime.types",
            "(portico built-in)/uwsgi_params",
            "(portico built-in)/proxy_params"
        ]
    );
    assert_eq!(tree.notes.len(), 3);
    assert!(builtin_file("uwsgi_params").is_some_and(|t| t.contains("uwsgi_param  QUERY_STRING")));
    assert!(builtin_file("fastcgi_params").is_none());
    // an absolute path is taken at its word
    let abs = format!(
        "events {{}}\nhttp {{ include {}/uwsgi_params; }}\n",
        dir.display()
    );
    assert!(main_only(&abs).starts_with("open() "));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fragment_of_server_blocks_is_read_inside_http_with_a_notice() {
    let dir = dir_with(&[(
        "site.conf",
        "server {\n  listen 8080;\n}\nupstream u { server 127.0.0.1:1; }\n",
    )]);
    let tree = read_conf(&dir.join("site.conf"), None).expect("reads");
    assert_eq!(
        tree.main
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["events", "http"]
    );
    assert_eq!(tree.main[1].children.as_ref().map(Vec::len), Some(2));
    assert_eq!(
        tree.notes,
        [format!(
            "[notice] \"{}\" has server blocks at top level: read as if inside http {{}}",
            dir.join("site.conf").display()
        )]
    );
    // http without events stays nginx's error
    assert_eq!(
        main_only("http { server {} }\n"),
        "no \"events\" section in configuration"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn global_directives_come_first_and_err_in_command_line() {
    let conf = [("nginx.conf", "events {}\n")];
    let cases: &[(&str, &str)] = &[
        ("daemon off; worker_processes 2;", "ok"),
        (
            "daemon off",
            "unexpected end of parameter, expecting \";\" @command line",
        ),
        ("bogus 1;", "unknown directive \"bogus\" @command line"),
        (
            "events {}",
            "block directives are not supported in -g option @command line",
        ),
        (
            "sendfile on;",
            "\"sendfile\" directive is not allowed here @command line",
        ),
        ("}", "unexpected \"}\" @command line"),
    ];
    for (globals, want) in cases {
        assert_eq!(check(&conf, Some(globals)), *want, "-g {globals:?}");
    }
    // a duplicate of a -g directive is found in the file
    let dup = [("nginx.conf", "events {}\npid a.pid;\n")];
    assert_eq!(
        check(&dup, Some("pid b.pid;")),
        "\"pid\" directive is duplicate @nginx.conf:2"
    );
    let dir = dir_with(&conf);
    let tree = read_conf(&dir.join("nginx.conf"), Some("daemon off;")).expect("reads");
    assert_eq!(tree.main[0].name, "daemon");
    assert_eq!(tree.main[0].origin(), "command line");
    assert_eq!(
        NginxError::at(&tree.main[0], "x").to_string(),
        "[emerg] x in command line"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_main_file_is_an_open_error_without_a_place() {
    let err = read_conf(Path::new("/nonexistent/portico/nginx.conf"), None).err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some(
            "[emerg] open() \"/nonexistent/portico/nginx.conf\" failed (2: No such file or directory)"
        )
    );
}

#[test]
fn dump_prints_each_file_once_with_nginx_headers() {
    let dir = dir_with(&[
        (
            "nginx.conf",
            "events {}\nhttp { include a.conf; include a.conf; }",
        ),
        ("a.conf", "sendfile off;\n"),
    ]);
    let tree = read_conf(&dir.join("nginx.conf"), None);
    // the same file twice is a duplicate sendfile: use a fresh pair instead
    assert!(tree.is_err());
    std::fs::write(
        dir.join("nginx.conf"),
        "events {}\nhttp { include a.conf; }",
    )
    .expect("write");
    let tree = read_conf(&dir.join("nginx.conf"), None).expect("reads");
    let d = dir.display();
    assert_eq!(
        dump(&tree),
        format!(
            "# configuration file {d}/nginx.conf:\nevents {{}}\nhttp {{ include a.conf; }}\n# configuration file {d}/a.conf:\nsendfile off;\n\n"
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}
