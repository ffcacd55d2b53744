"""Start a real nginx (/usr/sbin/nginx, the Debian package) serving a static
directory on loopback, configured as nginx is usually deployed for static
files, so tests/e2e/test_static.py can send the same request to nginx and to
portico and compare the answers.

    with StaticNginx(root) as ngx:
        ngx.port            # nginx listens on 127.0.0.1:ngx.port
        GET /static/FILE    # -> ROOT/FILE  (as `--static-map /static=ROOT`)

The config: `daemon off; master_process on; worker_processes 1;
error_log stderr;` (captured in PREFIX/nginx.log), pid and temp paths under
its own prefix dir, workers as `nobody` (group `nogroup`), `sendfile on;
etag on; if_modified_since exact;` the stock `mime.types` with
`default_type application/octet-stream`, `gzip_static on; gzip_vary on;`
`index index.html`, `expires 1h` for text/css only (what portico's
`--static-expires-type text/css=3600` does), and `location /static/
{ alias ROOT/; }`.

ROOT must be readable by `nobody` (a directory under /tmp with mode 0755 and
files 0644, not pytest's 0700 tmp_path).

A missing nginx, or one that does not start, FAILS the test (never skips).
nginx is stopped with SIGQUIT, then SIGKILL for the master and its workers
(only the processes this module started), when the `with` block ends and,
as a backstop, at interpreter exit.
"""

import textwrap
from pathlib import Path

import pytest

import nginxctl

MIME_TYPES = Path("/etc/nginx/mime.types")


def nginx_binary():
    """The nginx binary (fails the test if missing), and its stock mime.types."""
    path = nginxctl.nginx_binary()
    if not MIME_TYPES.is_file():
        pytest.fail(f"{MIME_TYPES} is missing (it comes with Debian's nginx-common)", pytrace=False)
    return path


# Shared with the uwsgi tests' nginx launcher.
worker_user = nginxctl.worker_user
_children = nginxctl._children


class StaticNginx(nginxctl.NginxMaster):
    """One nginx master serving `root` under /static/ on a free loopback port
    (start, stop and ports: nginxctl.NginxMaster)."""

    host = "127.0.0.1"

    def __init__(self, root):
        nginx_binary()
        super().__init__(dir_prefix="portico-static-nginx-")
        self.root = Path(root)

    def port_names(self):
        return ["main"]

    @property
    def port(self):
        return self.ports.get("main")

    def config_text(self):
        return nginxctl.main_preamble(self.dir / "nginx.pid") + f"""\
http {{
    access_log off;
{textwrap.indent(nginxctl.temp_paths(self.dir), "    ")}
    sendfile on;
    etag on;
    if_modified_since exact;
    include {MIME_TYPES};
    default_type application/octet-stream;
    gzip_static on;
    gzip_vary on;

    map $sent_http_content_type $static_expires {{
        text/css 1h;
        default off;
    }}

    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        location /static/ {{
            alias {self.root}/;
            index index.html;
            expires $static_expires;
        }}
    }}
}}
"""

    def start(self):
        try:
            return super().start()
        except AssertionError as e:
            self.close()
            pytest.fail(str(e), pytrace=False)

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"
