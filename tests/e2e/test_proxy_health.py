"""Active health checks and `server ... resolve` through `portico -c`
(Portico's extensions, nginx Plus syntax) against python backends: a dead
peer is out of the rotation before the first request (no `upstream server
temporarily disabled` warning, `$upstream_addr` never names it) and comes
back on its own once it answers again; a `match` that refuses the status
takes a live peer out; a `resolve` name serves.
"""

import http.server
import json
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import BIN, Server
from ports import free_port, port_taken


class Backend:
    """A threaded HTTP backend answering every GET with `name` (status `status`)."""

    def __init__(self, port, name, status=200):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.paths.append(self.path)
                body = name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.paths = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


CONF = """
worker_processes 1;
error_log stderr;
pid {dir}/portico.pid;
events {{ }}
http {{
    access_log off;
    match not_503 {{ status 200-399; }}
    match only_418 {{ status 418; }}
    upstream backend {{
        server 127.0.0.1:{a};
        server 127.0.0.1:{b};
    }}
    upstream picky {{
        server 127.0.0.1:{a};
        server 127.0.0.1:{c};
    }}
    upstream named {{
        server localhost:{a} resolve;
    }}
    server {{
        listen 127.0.0.1:{port};
        add_header X-Upstream $upstream_addr always;
        location / {{
            proxy_pass http://backend;
            health_check interval=200ms uri=/health match=not_503;
        }}
        location /picky/ {{
            proxy_pass http://picky;
            health_check interval=200ms fails=2 passes=2 match=only_418;
        }}
        location /named/ {{
            proxy_pass http://named;
        }}
    }}
}}
"""


@pytest.fixture
def site():
    """(dir, ports, backends, start): `start(*args)` runs portico -c on CONF (plus
    `args`) until it is ready to serve; when its listening port was taken meanwhile,
    once more on a new one (ports["port"] says which)."""
    d = Path(tempfile.mkdtemp(prefix="portico-health-", dir="/tmp"))
    ports = {k: free_port() for k in ("a", "b", "c", "port")}
    backends = {"a": Backend(ports["a"], "A")}

    def start(*args):
        for attempt in range(2):
            (d / "portico.conf").write_text(CONF.format(dir=d, **ports))
            server = Server(["-p", f"{d}/", "-c", str(d / "portico.conf"), *args])
            try:
                server.wait_for_line(r"ready to serve", timeout=30)
                return server
            except AssertionError:
                server.stop()
                if attempt == 1 or not port_taken(server.log()):
                    raise
                ports["port"] = free_port()
        raise AssertionError("unreachable")

    try:
        yield d, ports, backends, start
    finally:
        for b in backends.values():
            b.stop()
        shutil.rmtree(d, ignore_errors=True)


def get(port, path="/"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("X-Upstream"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("X-Upstream"), e.read().decode()


def test_a_dead_peer_is_out_before_the_first_request_and_comes_back(site):
    d, ports, backends, start = site
    server = start()
    try:
        time.sleep(0.6)  # three check intervals
        dead = f"127.0.0.1:{ports['b']}"
        for _ in range(8):
            status, upstream, body = get(ports["port"])
            assert (status, upstream, body) == (200, f"127.0.0.1:{ports['a']}", "A")
        log = server.log()
        assert "temporarily disabled" not in log, log
        assert re.search(rf"peer is unhealthy .* of peer {re.escape(dead)} in upstream \"backend\"", log), log
        assert "/health" in backends["a"].paths

        backends["b"] = Backend(ports["b"], "B")
        server.wait_for_line(rf"peer is healthy .* of peer {re.escape(dead)}", timeout=5)
        seen = {get(ports["port"])[2] for _ in range(6)}
        assert seen == {"A", "B"}
    finally:
        server.stop()


def test_a_match_that_refuses_the_status_takes_a_live_peer_out(site):
    d, ports, backends, start = site
    backends["c"] = Backend(ports["c"], "C", status=418)
    server = start()
    try:
        # A answers 200 (not 418): out after two failed checks; C (418) stays.
        server.wait_for_line(rf"peer is unhealthy .* of peer 127.0.0.1:{ports['a']} in upstream \"picky\"", timeout=5)
        bodies = {get(ports["port"], "/picky/")[2] for _ in range(4)}
        assert bodies == {"C"}
    finally:
        server.stop()


def test_a_resolve_name_serves(site):
    d, ports, backends, start = site
    server = start()
    try:
        status, upstream, body = get(ports["port"], "/named/")
        assert (status, body) == (200, "A")
        assert upstream.endswith(f":{ports['a']}")
    finally:
        server.stop()


def test_stats_and_metrics_show_each_workers_peers(site):
    d, ports, backends, start = site
    server = start("--stats", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
    try:
        stats = server.wait_for_line(r"Stats server enabled on (\S+):(\d+)").groups()
        metrics = server.wait_for_line(r"Prometheus metrics enabled on (\S+):(\d+)").groups()
        get(ports["port"])
        dead = f"127.0.0.1:{ports['b']}"

        def peers():
            with socket.create_connection((stats[0], int(stats[1])), timeout=5) as s:
                raw = b"".join(iter(lambda: s.recv(65536), b""))
            return {(p["upstream"], p["peer"]): p for p in json.loads(raw)["upstreams"]}

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen = peers()
            if seen.get(("backend", dead), {}).get("state") == "unhealthy" and seen.get(
                ("backend", f"127.0.0.1:{ports['a']}"), {}
            ).get("requests"):
                break
            time.sleep(0.2)
        entry = seen[("backend", dead)]
        assert entry["state"] == "unhealthy", seen
        assert entry["requests"] == 0 and entry["health_checks"]["fails"] >= 1, entry
        assert entry["worker"] == 1
        assert seen[("named", f"127.0.0.1:{ports['a']}")]["state"] == "up", seen
        with urllib.request.urlopen(f"http://{metrics[0]}:{metrics[1]}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert (f'portico_upstream_peer_state{{worker="1",upstream="backend",peer="{dead}",'
                f'state="unhealthy"}} 1') in text, text
    finally:
        server.stop()
