"""HTTP/2 (issue 13): h2c by prior knowledge beside HTTP/1.1 on `--http2`
listeners and nginx.conf `listen ... http2` / `http2 on`, with real clients
(curl --http2-prior-knowledge, h2load from nghttp2-client, python-hyper's h2):
WSGI apps see SERVER_PROTOCOL HTTP/2 and their request bodies intact, static
files and proxied routes answer as over HTTP/1.1, 50 streams on one connection
all answer, a graceful stop lets a stream in flight finish, and static files
over h2c match the real nginx 1.22 (`listen ... http2`, prior knowledge).
"""

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import nginx_diff
from echo_backend import EchoBackends
from h2wire import h2_get, h2_request_many

APP = Path(__file__).resolve().parent / "apps" / "h2_app.py"


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; scripts/test.sh installs it (apt-get)", pytrace=False)
    return path


def curl(*args, timeout=30):
    """curl with HTTP/2 by prior knowledge: (status, body bytes)."""
    out = subprocess.run(
        [tool("curl"), "-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code} %{http_version}",
         *map(str, args)],
        capture_output=True, timeout=timeout, check=True).stdout
    body, _, tail = out.rpartition(b"\n")
    status, version = tail.decode().split()
    assert version == "2", f"curl spoke HTTP/{version}"
    return int(status), body


def h2load(url, n=200, c=2, m=10):
    """h2load's counts: (succeeded, 2xx) for n requests."""
    out = subprocess.run([tool("h2load"), "-n", str(n), "-c", str(c), "-m", str(m), url],
                         capture_output=True, text=True, timeout=120).stdout
    done = [l for l in out.splitlines() if l.startswith("requests:")][0]
    codes = [l for l in out.splitlines() if l.startswith("status codes:")][0]
    succeeded = int(done.split("succeeded")[0].split(",")[-1].strip())
    ok = int(codes.split(":")[1].split()[0])
    return succeeded, ok, out


@pytest.fixture(scope="module")
def static_dir():
    d = Path(tempfile.mkdtemp(prefix="portico-h2-static-", dir="/tmp"))
    (d / "hello.txt").write_text("hello over h2\n")
    rnd = random.Random(13)
    (d / "big.bin").write_bytes(bytes(rnd.getrandbits(8) for _ in range(300_000)))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def app_server(portico_server, static_dir):
    return portico_server("--http", "127.0.0.1:0", "--http2", "--wsgi-file", APP,
                          "--threads", "4", "--static-map", f"/static={static_dir}")


def test_a_wsgi_app_sees_server_protocol_http2_and_http11_still_works(app_server, http):
    status, body = curl(f"{app_server.url}/who?x=1", "-H", "Cookie: a=1", "-H", "Cookie: b=2")
    seen = json.loads(body)
    assert status == 200
    assert seen["protocol"] == "HTTP/2"
    assert seen["path"] == "/who" and seen["query"] == "x=1" and seen["uri"] == "/who?x=1"
    assert seen["host"] == f"127.0.0.1:{app_server.port}"
    assert seen["cookie"] == "a=1; b=2"
    # The same listener still speaks HTTP/1.1.
    r = http.get(f"{app_server.url}/who")
    assert r.status_code == 200 and r.json()["protocol"] == "HTTP/1.1"
    # The access log shows the request as HTTP/2.0, as uWSGI and nginx print it.
    app_server.wait_for_line(r"GET /who\?x=1 => .*\(HTTP/2\.0 200\)")


@pytest.mark.parametrize("size", [0, 1, 16_383, 65_536, 1_000_000])
def test_request_bodies_reach_the_app_intact(app_server, size):
    body = random.Random(size).randbytes(size)
    (status, _, answer), = h2_request_many(app_server.port, [("POST", "/echo", body, ())])
    seen = json.loads(answer)
    assert status == 200
    assert seen["length"] == size and seen["content_length"] == str(size)
    assert seen["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_body_without_content_length_reaches_the_app(app_server, tmp_path):
    data = random.Random(7).randbytes(200_000)
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    # curl sends no content-length for a body read from stdin.
    out = subprocess.run([tool("curl"), "-sS", "--http2-prior-knowledge", "--data-binary", "@-",
                          "-H", "Content-Type: application/octet-stream", f"{app_server.url}/echo"],
                         input=data, capture_output=True, timeout=30, check=True).stdout
    seen = json.loads(out)
    assert seen["length"] == len(data)
    assert seen["sha256"] == hashlib.sha256(data).hexdigest()


def test_static_files_and_streamed_answers_over_h2c(app_server, static_dir):
    status, body = curl(f"{app_server.url}/static/big.bin")
    assert status == 200 and body == (static_dir / "big.bin").read_bytes()
    status, body = curl(f"{app_server.url}/stream?200")
    assert status == 200 and len(body) == 200 * 1007
    assert body.startswith(b"00000 ") and b"\n00199 " in body
    status, body = curl(f"{app_server.url}/big?1000000")
    assert status == 200 and body == bytes(i % 251 for i in range(1_000_000))


def test_fifty_concurrent_streams_on_one_connection_all_answer(app_server, static_dir):
    """What a browser does with a page of assets: 50 streams at once."""
    requests = []
    for i in range(50):
        if i % 3 == 0:
            requests.append(("GET", "/static/hello.txt", None, ()))
        elif i % 3 == 1:
            requests.append(("GET", f"/page?{i}", None, ()))
        else:
            requests.append(("GET", "/big?20000", None, ()))
    answers = h2_request_many(app_server.port, requests)
    assert len(answers) == 50
    for i, (status, headers, body) in enumerate(answers):
        assert status == 200, (i, status)
        if i % 3 == 0:
            assert body == b"hello over h2\n"
        elif i % 3 == 1:
            assert json.loads(body)["query"] == str(i)
        else:
            assert body == bytes(j % 251 for j in range(20000))


def test_h2load_against_wsgi_and_static_routes(app_server):
    for path in ("/hello", "/static/hello.txt"):
        succeeded, ok, out = h2load(f"{app_server.url}{path}", n=300, c=2, m=10)
        assert succeeded == 300 and ok == 300, out


def test_a_graceful_stop_lets_a_stream_in_flight_finish(app_server):
    """SIGTERM: GOAWAY to the client, and the stream already running still
    gets its whole answer (curl, which follows GOAWAY as browsers do)."""
    slow = subprocess.Popen(
        [tool("curl"), "-sS", "--http2-prior-knowledge", "-w", "%{http_code}",
         f"{app_server.url}/slow?1.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.7)
    app_server.proc.send_signal(signal.SIGTERM)
    out, err = slow.communicate(timeout=15)
    assert out == b"slow done\n200", (out, err)
    assert app_server.proc.wait(timeout=15) is not None


NGINX_CONF = """
server {
    listen 127.0.0.1:{port} http2;
    root {root}/html;
    location /up/ { proxy_pass http://{backend}/; }
}
"""

# `http2 on;` is nginx 1.25.1+: Portico alone.
HTTP2_ON_CONF = """
http2 on;
server {
    listen 127.0.0.1:{port};
    http2_max_concurrent_streams 64;
    root {root}/html;
}
"""

TREE = {
    "html/index.html": "<h1>index</h1>\n",
    "html/a.css": "body { color: red }\n" * 50,
    "html/big.bin": bytes(random.Random(5).getrandbits(8) for _ in range(200_000)),
    "html/sub/": "",
}


@pytest.fixture(scope="module")
def nginx_pair():
    with EchoBackends("up") as backends:
        with nginx_diff.DiffPair(NGINX_CONF, TREE, subs={"backend": backends["up"].addr}) as pair:
            yield pair, backends


def port_of(pair, side, name="port"):
    return pair.sides[side].ports[name]


@nginx_diff.live_mark()
@pytest.mark.parametrize("target", ["/", "/index.html", "/a.css", "/big.bin", "/missing", "/sub"])
def test_static_files_over_h2c_answer_as_nginx(nginx_pair, target):
    pair, _ = nginx_pair
    answers = {}
    for side in ("nginx", "portico"):
        status, headers, body = h2_get(port_of(pair, side), target)
        answers[side] = (status, {k: v for k, v in headers.items()
                                  if k in ("content-type", "content-length", "etag",
                                           "last-modified", "location")}, body)
    n, p = answers["nginx"], answers["portico"]
    assert n[0] == p[0], target
    n_headers = {k: v.replace(str(port_of(pair, "nginx")), "{port}") for k, v in n[1].items()}
    p_headers = {k: v.replace(str(port_of(pair, "portico")), "{port}") for k, v in p[1].items()}
    if n[0] >= 300:
        # Server-made pages differ in their server token only.
        n_headers.pop("content-length", None)
        p_headers.pop("content-length", None)
    token = re.compile(rb"<center>(nginx|portico)(/[0-9.]+)?</center>")
    assert token.sub(b"SERVER", n[2]) == token.sub(b"SERVER", p[2])
    assert n_headers == p_headers


@nginx_diff.live_mark()
def test_proxied_routes_reach_an_http11_upstream(nginx_pair):
    pair, backends = nginx_pair
    port = port_of(pair, "portico")
    body = b"x" * 50_000
    (status, headers, answer), = h2_request_many(port, [("POST", "/up/post?q=1", body, ())])
    seen = json.loads(answer)
    assert status == 200 and headers.get("x-backend") == "up"
    assert seen["version"] == "HTTP/1.0" or seen["version"] == "HTTP/1.1"
    assert seen["target"] == "/post?q=1"
    assert seen["body_length"] == len(body)
    assert seen["body_sha1"] == hashlib.sha1(body).hexdigest()
    status, raw = curl(f"http://127.0.0.1:{port}/up/get")
    assert status == 200 and json.loads(raw)["method"] == "GET"
    succeeded, ok, out = h2load(f"http://127.0.0.1:{port}/up/load", n=200, c=2, m=10)
    assert succeeded == 200 and ok == 200, out


@nginx_diff.live_mark()
def test_http2_on_and_h2load_against_static_files():
    root = Path(tempfile.mkdtemp(prefix="portico-h2-on-", dir="/tmp"))
    nginx_diff.build_tree(root, TREE)
    side = nginx_diff.PorticoSide("h2on", HTTP2_ON_CONF, root, {})
    try:
        side.start()
        port = side.ports["port"]
        status, body = curl(f"http://127.0.0.1:{port}/a.css")
        assert status == 200 and body == TREE["html/a.css"].encode()
        succeeded, ok, out = h2load(f"http://127.0.0.1:{port}/index.html", n=300, c=2, m=10)
        assert succeeded == 300 and ok == 300, out
        # An HTTP/2 address still answers HTTP/1.1 on Portico (nginx 1.22
        # would not with `listen ... http2`: HTTP/2 only; 1.25+ does both).
        status, _, body = nginx_diff.fetch_port(port, "GET", "/index.html", None, None,
                                                side="portico")
        assert status == 200 and body == TREE["html/index.html"].encode()
    finally:
        side.close()
        shutil.rmtree(root, ignore_errors=True)
