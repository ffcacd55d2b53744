"""HTTP/2 over TLS (issue 13): ALPN `h2` offered on TLS listeners with HTTP/2
(`--https` with `--http2`, nginx.conf `listen ... ssl http2`), HTTP/1.1 still
chosen by clients that ask for it, and plain TLS listeners without HTTP/2
offering only `http/1.1`. curl --http2 and h2load against the WSGI app and
static files; the app sees HTTPS and SERVER_PROTOCOL HTTP/2.
"""

import json
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tls_pki import Pki

APP = Path(__file__).resolve().parent / "apps" / "h2_app.py"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki-h2"))
    p.rsa = p.leaf("localhost", kind="rsa")
    return p


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; scripts/test.sh installs it (apt-get)", pytrace=False)
    return path


def curl_tls(pki, url, *args):
    """curl over TLS trusting the test root: (status, http_version, body)."""
    out = subprocess.run(
        [tool("curl"), "-sS", "--cacert", str(pki.root), "-o", "-", "-w", "\n%{http_code} %{http_version}",
         *args, url], capture_output=True, timeout=30, check=True).stdout
    body, _, tail = out.rpartition(b"\n")
    status, version = tail.decode().split()
    return int(status), version, body


def alpn_of(port, offered):
    """The protocol the server picks from `offered` by ALPN (None: none)."""
    import socket
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(offered)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.selected_alpn_protocol()


class Https:
    """A portico with `--http` (h2c) and `--https` (h2 by ALPN) under `--http2`."""

    def __init__(self, server):
        self.server = server
        self.plain_port = server.addresses[0][1]
        self.port = server.addresses[1][1]

    def wait_for_line(self, pattern):
        return self.server.wait_for_line(pattern)


@pytest.fixture
def https_h2(portico_server, pki, tmp_path):
    (tmp_path / "hello.txt").write_text("hello over h2 and TLS\n")
    return Https(portico_server(
        "--http", "127.0.0.1:0", "--https", f"127.0.0.1:0,{pki.rsa.chain},{pki.rsa.key}",
        "--http2", "--wsgi-file", APP, "--threads", "2", "--static-map", f"/static={tmp_path}",
        listeners=2))


def test_alpn_offers_h2_with_http2_and_only_http11_without(https_h2, portico_server, pki):
    assert alpn_of(https_h2.port, ["h2", "http/1.1"]) == "h2"
    assert alpn_of(https_h2.port, ["http/1.1"]) == "http/1.1"
    plain = portico_server("--http", "127.0.0.1:0",
                           "--https", f"127.0.0.1:0,{pki.rsa.chain},{pki.rsa.key}",
                           "--wsgi-file", APP, listeners=2)
    assert alpn_of(plain.addresses[1][1], ["h2", "http/1.1"]) == "http/1.1"


def test_curl_http2_over_tls_reaches_the_app_and_static_files(https_h2, pki):
    base = f"https://localhost:{https_h2.port}"
    status, version, body = curl_tls(pki, f"{base}/who", "--http2", "--resolve",
                                     f"localhost:{https_h2.port}:127.0.0.1")
    seen = json.loads(body)
    assert (status, version) == (200, "2")
    assert seen["protocol"] == "HTTP/2"
    assert seen["scheme"] == "https" and seen["https"] == "on"
    status, version, body = curl_tls(pki, f"{base}/static/hello.txt", "--http2", "--resolve",
                                     f"localhost:{https_h2.port}:127.0.0.1")
    assert (status, version, body) == (200, "2", b"hello over h2 and TLS\n")
    # A client that wants HTTP/1.1 still gets it.
    status, version, body = curl_tls(pki, f"{base}/who", "--http1.1", "--resolve",
                                     f"localhost:{https_h2.port}:127.0.0.1")
    assert (status, version) == (200, "1.1") and json.loads(body)["protocol"] == "HTTP/1.1"


def test_the_same_process_speaks_h2c_on_its_plain_listener(https_h2):
    out = subprocess.run([tool("curl"), "-sS", "--http2-prior-knowledge",
                          f"http://127.0.0.1:{https_h2.plain_port}/who"],
                         capture_output=True, timeout=30, check=True).stdout
    assert json.loads(out)["protocol"] == "HTTP/2"
    https_h2.wait_for_line(r"GET /who => .*\(HTTP/2\.0 200\)")


def test_h2load_over_tls(https_h2):
    out = subprocess.run([tool("h2load"), "-n", "300", "-c", "2", "-m", "10",
                          f"https://127.0.0.1:{https_h2.port}/static/hello.txt"],
                         capture_output=True, text=True, timeout=120).stdout
    assert "300 succeeded" in out and "300 2xx" in out, out
    assert "Application protocol: h2" in out, out


SITE = """
server {
    listen 127.0.0.1:{port} ssl http2;
    server_name localhost;
    ssl_certificate {rsa_chain};
    ssl_certificate_key {rsa_key};
    root {root}/html;
    location /v { return 200 "proto=$server_protocol http2=$http2 scheme=$scheme\\n"; }
}
"""

TREE = {
    "html/index.html": "<h1>h2 over TLS</h1>\n",
    "html/a.css": "p { margin: 0 }\n" * 100,
}


@pytest.fixture(scope="module")
def pair(pki):
    import nginx_diff
    subs = {"rsa_chain": str(pki.rsa.chain), "rsa_key": str(pki.rsa.key)}
    with nginx_diff.DiffPair(SITE, TREE, subs=subs) as p:
        yield p


@pytest.mark.parametrize("target", ["/", "/a.css", "/missing", "/v"])
def test_listen_ssl_http2_answers_as_nginx(pair, pki, target):
    """nginx 1.22 and Portico on the same `listen ... ssl http2` config: curl
    negotiates h2 with both, and the answers match (status, type, length,
    body; error pages up to the server token)."""
    got = {}
    for side in ("nginx", "portico"):
        port = pair.sides[side].ports["port"]
        got[side] = curl_tls(pki, f"https://localhost:{port}{target}", "--http2",
                             "--resolve", f"localhost:{port}:127.0.0.1")
    token = lambda body: re.sub(rb"<center>(nginx|portico)(/[0-9.]+)?</center>", b"SERVER", body)
    (ns, nv, nb), (ps, pv, pb) = got["nginx"], got["portico"]
    assert nv == pv == "2"
    assert ns == ps
    assert token(nb) == token(pb)
