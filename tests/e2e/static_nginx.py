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

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import nginxctl

NGINX = "/usr/sbin/nginx"
MIME_TYPES = Path("/etc/nginx/mime.types")
START_TIMEOUT = 10.0

_running = set()


def nginx_binary():
    """The nginx binary (fails the test if missing), and its stock mime.types."""
    path = nginxctl.nginx_binary()
    if not MIME_TYPES.is_file():
        pytest.fail(f"{MIME_TYPES} is missing (it comes with Debian's nginx-common)", pytrace=False)
    return path


# Shared with the uwsgi tests' nginx launcher.
worker_user = nginxctl.worker_user
free_port = nginxctl.free_port
_children = nginxctl._children


class StaticNginx:
    """One nginx master serving `root` under /static/ on a free loopback port."""

    def __init__(self, root):
        self.root = Path(root)
        self.binary = nginx_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="portico-static-nginx-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.log_path = self.dir / "nginx.log"
        self.port = None
        self.proc = None
        self.workers = []

    host = "127.0.0.1"

    def config_text(self):
        user, group = worker_user()
        d = self.dir
        return f"""\
user {user} {group};
daemon off;
master_process on;
worker_processes 1;
error_log stderr;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

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
        for attempt in range(3):
            self.port = free_port()
            (self.dir / "nginx.conf").write_text(self.config_text())
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "-p", f"{self.dir}/", "-c", str(self.dir / "nginx.conf"),
                     "-e", "stderr"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            _running.add(self)
            if self._wait_listening():
                self.workers = _children(self.proc.pid)
                return self
            self.stop()
            if "Address already in use" not in self.log() or attempt == 2:
                report = (
                    "nginx did not start; config:\n" + (self.dir / "nginx.conf").read_text()
                    + "\nlog:\n" + self.log()
                )
                self.close()
                pytest.fail(report, pytrace=False)
        raise AssertionError("unreachable")

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                if s.connect_ex((self.host, self.port)) == 0:
                    break
            time.sleep(0.02)
        else:
            return False
        # the worker (which serves) must exist too, not only the master's socket
        while time.monotonic() < deadline and not _children(self.proc.pid):
            time.sleep(0.02)
        return self.proc.poll() is None and bool(_children(self.proc.pid))

    def stop(self):
        """SIGQUIT (graceful), then SIGKILL to the master and any worker left."""
        _running.discard(self)
        nginxctl.stop_master(self.proc, self.workers)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@atexit.register
def _stop_all():
    for ngx in list(_running):
        ngx.stop()
