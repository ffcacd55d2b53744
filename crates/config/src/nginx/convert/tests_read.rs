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

/// A configuration that uses most of what the conversion knows (checked
/// with `nginx -t` when written), read by the real reader.
const KITCHEN_SINK: &str = r#"worker_processes 2;
events { worker_connections 64; }
http {
    include mime.types;
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    map $host $site {
        hostnames;
        default      main;
        example.com  ex;
        ~^(?<label>[a-z]+)\.test$ $label;
    }
    upstream app {
        least_conn;
        server 127.0.0.1:8001 weight=2;
        server unix:/tmp/app.sock backup;
        keepalive 8;
    }
    log_format timed '$remote_addr "$request" $status $request_time $site';
    server {
        listen 127.0.0.1:8090 default_server;
        listen [::1]:8090;
        server_name example.com *.example.com ~^(?<sub>.+)\.example\.org$;
        root /srv/www;
        access_log logs/timed.log timed;
        add_header X-Site $site always;
        location = / { return 302 /index.html; }
        location ^~ /static/ { expires max; gzip_static on; }
        location ~ "^/img/[0-9]{2}/(?<name>.+)\.png$" { try_files /png/$name.png =404; }
        location ~* \.(css|js)$ { expires 7d; }
        location /api/ {
            include uwsgi_params;
            uwsgi_pass app;
            uwsgi_read_timeout 5m;
            location /api/admin/ { allow 127.0.0.1; deny all; uwsgi_pass app; }
        }
        location /old/ { rewrite ^/old/(.*)$ /new/$1 permanent; }
        location @fallback { return 503 "down: $sub\n"; }
        error_page 502 503 = @fallback;
    }
    server {
        listen 127.0.0.1:8090;
        server_name .other.net;
        location / { autoindex on; }
    }
}
"#;

#[test]
fn a_kitchen_sink_configuration_converts() {
    let dir = TempDir::new("sink");
    let conf = dir.write("nginx.conf", KITCHEN_SINK);
    let site = load(&conf, &dir.0);
    assert_eq!(site.main.worker_processes, Some(2));
    assert_eq!(site.maps.len(), 2);
    assert!(site.maps[1].hostnames);
    assert_eq!(site.upstreams[0].balancer, Balancer::LeastConn);
    assert_eq!(site.upstreams[0].keepalive, Some(8));
    let s = &site.servers[0];
    assert_eq!(s.listens.len(), 2);
    assert_eq!(s.names.len(), 3);
    assert!(matches!(
        &s.config.add_headers[0].value.parts[..],
        [TemplatePart::Var(Variable::Map(1))]
    ));
    let api = &s.locations[4];
    assert!(matches!(&api.content, Content::Uwsgi(UpstreamTarget::Group(g)) if g == "app"));
    assert_eq!(api.config.uwsgi_read_timeout, Duration::from_secs(300));
    let admin = &api.locations[0];
    assert_eq!(admin.config.access.len(), 2);
    assert_eq!(admin.config.uwsgi_read_timeout, Duration::from_secs(300));
    assert!(
        !admin.config.uwsgi_params.is_empty(),
        "params inherited from /api/"
    );
    assert_eq!(s.named.len(), 1);
    assert_eq!(s.config.error_pages[0].answer, ErrorPageAnswer::Target);
    let other = &site.servers[1];
    assert!(other.locations[0].config.autoindex);
    assert!(
        matches!(&other.names[..], [ServerName::Exact(a), ServerName::LeadingWildcard(b)] if a == "other.net" && b == ".other.net")
    );
}

/// The uWSGI documentation's Django tutorial site (`mysite_nginx.conf`),
/// with its `include` pointed at the built-in `uwsgi_params`.
const UWSGI_DJANGO_TUTORIAL: &str = r#"
events {}
http {
# the upstream component nginx needs to connect to
upstream django {
    server unix:///path/to/your/mysite/mysite.sock; # for a file socket
    # server 127.0.0.1:8001; # for a web port socket (we'll use this first)
}

# configuration of the server
server {
    # the port your site will be served on
    listen      8000;
    # the domain name it will serve for
    server_name example.com; # substitute your machine's IP address or FQDN
    charset     utf-8;

    # max upload size
    client_max_body_size 75M;   # adjust to taste

    # Django media
    location /media  {
        alias /path/to/your/mysite/media;  # your Django project's media files - amend as required
    }

    location /static {
        alias /path/to/your/mysite/static; # your Django project's static files - amend as required
    }

    # Finally, send all non-media requests to the Django server.
    location / {
        uwsgi_pass  django;
        include     uwsgi_params; # the uwsgi_params file you installed
    }
}
}
"#;

#[test]
fn the_uwsgi_django_tutorial_site_converts() {
    let dir = TempDir::new("django");
    let conf = dir.write("nginx.conf", UWSGI_DJANGO_TUTORIAL);
    let site = load(&conf, &dir.0);
    let s = &site.servers[0];
    assert_eq!(s.config.charset.as_deref(), Some("utf-8"));
    assert_eq!(s.config.client_max_body_size, 75 * 1024 * 1024);
    assert!(
        matches!(&site.upstreams[0].servers[0].target, UpstreamTarget::Unix(p) if p == Path::new("///path/to/your/mysite/mysite.sock"))
    );
    assert!(
        matches!(&s.locations[2].content, Content::Uwsgi(UpstreamTarget::Group(g)) if g == "django")
    );
}
