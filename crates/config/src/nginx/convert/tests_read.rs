//! Conversion tests on real files through the real reader
//! ([`read_conf`](crate::nginx::read_conf)): the shipped example, a
//! Debian-style layout with `sites-enabled/`, and the seeds' uwsgi_pass
//! locations. Missing `mime.types`/`uwsgi_params` come from the built-ins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::nginx::read_conf;
use crate::site::*;

use super::to_site;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("portico-convert-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("{}: {e}", dir.display());
        }
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(&path, text) {
            panic!("{}: {e}", path.display());
        }
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load(conf: &Path, prefix: &Path) -> Site {
    let tree = match read_conf(conf, None) {
        Ok(t) => t,
        Err(e) => panic!("read: {e}"),
    };
    match to_site(&tree, prefix) {
        Ok(s) => s,
        Err(e) => panic!("convert: {e}"),
    }
}

fn param_keys(c: &LocationConfig) -> Vec<&str> {
    c.uwsgi_params.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn the_shipped_example_converts() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nginx/nginx.conf");
    let site = load(&conf, Path::new("/srv/portico"));
    assert_eq!(site.main.worker_processes, None);
    assert_eq!(site.main.worker_connections, 1024);
    assert_eq!(
        site.main.pid,
        Some(PathBuf::from("/srv/portico/logs/nginx.pid"))
    );
    let s = &site.servers[0];
    assert!(s.listens[0].default_server);
    assert!(matches!(&s.listens[0].addr, ListenAddr::Tcp(a) if a.port() == 8080));
    assert!(matches!(&s.names[..], [ServerName::Exact(n)] if n == "localhost"));
    assert_eq!(s.config.types.lookup("css"), Some("text/css"));
    assert_eq!(s.config.default_type, "application/octet-stream");
    assert_eq!(s.config.keepalive_timeout, Duration::from_secs(65));
    assert_eq!(s.config.client_max_body_size, 10 * 1024 * 1024);
    assert_eq!(
        s.config.access_log,
        vec![AccessLogTarget::File {
            path: "/srv/portico/logs/access.log".into(),
            format: "main".into()
        }]
    );
    assert!(
        matches!(&s.config.root, DocRoot::Root(t) if t.as_literal().as_deref() == Some("/srv/portico/html"))
    );
    let static_loc = &s.locations[0];
    assert!(matches!(static_loc.content, Content::Static));
    assert!(static_loc.config.try_files.is_some());
    let app = &s.locations[1];
    assert!(
        matches!(&app.content, Content::Uwsgi(UpstreamTarget::Tcp { host, port: 8001 }) if host == "127.0.0.1")
    );
    let keys = param_keys(&app.config);
    for k in [
        "QUERY_STRING",
        "REQUEST_METHOD",
        "REQUEST_URI",
        "SERVER_NAME",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    assert_eq!(app.config.error_pages.len(), 1);
    assert!(matches!(&s.locations[2].matcher, LocationMatch::Exact(u) if u == "/50x.html"));
}

#[test]
fn a_debian_layout_with_sites_enabled_converts() {
    let dir = TempDir::new("debian");
    let conf = dir.write(
        "nginx.conf",
        "user www-data;\nworker_processes auto;\npid /run/nginx.pid;\n\
         include modules-enabled/*.conf;\nevents { worker_connections 768; }\n\
         http {\n sendfile on;\n tcp_nopush on;\n types_hash_max_size 2048;\n include mime.types;\n\
         default_type application/octet-stream;\n ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n\
         ssl_prefer_server_ciphers on;\n access_log /var/log/nginx/access.log;\n gzip on;\n\
         include conf.d/*.conf;\n include sites-enabled/*;\n}\n",
    );
    dir.write(
        "sites-enabled/default",
        "server {\n listen 80 default_server;\n listen [::]:80 default_server;\n root /var/www/html;\n\
         index index.html index.htm index.nginx-debian.html;\n server_name _;\n\
         location / {\n  try_files $uri $uri/ =404;\n }\n}\n",
    );
    let site = load(&conf, &dir.0);
    let s = &site.servers[0];
    assert_eq!(s.listens.len(), 2);
    assert!(s.listens.iter().all(|l| l.default_server));
    assert_eq!(s.config.index.len(), 3);
    assert!(s.locations[0].config.try_files.is_some());
    assert_eq!(
        s.locations[0].config.types.lookup("js"),
        Some("application/javascript")
    );
    assert_eq!(site.main.user, Some(("www-data".into(), None)));
}

#[test]
fn the_seeds_app_under_a_prefix_adds_script_name_after_the_included_params() {
    let dir = TempDir::new("seed003");
    let conf = dir.write(
        "nginx.conf",
        "events {}\nhttp {\n server {\n  listen 8081;\n  location /myapp {\n   include uwsgi_params;\n\
         uwsgi_param SCRIPT_NAME /myapp;\n   uwsgi_pass unix:/tmp/uwsgi.sock;\n  }\n\
         location / {\n   include uwsgi_params;\n   uwsgi_pass 127.0.0.1:5000;\n   root html;\n\
         index index.html index.htm;\n  }\n }\n}\n",
    );
    let site = load(&conf, &dir.0);
    let s = &site.servers[0];
    let keys = param_keys(&s.locations[0].config);
    assert_eq!(keys.last(), Some(&"SCRIPT_NAME"));
    assert!(
        matches!(&s.locations[0].content, Content::Uwsgi(UpstreamTarget::Unix(p)) if p == Path::new("/tmp/uwsgi.sock"))
    );
    assert!(!param_keys(&s.locations[1].config).contains(&"SCRIPT_NAME"));
}
