"""Portico behind a real nginx (Debian's /usr/sbin/nginx, started here with
its own prefix on free loopback ports; tests/e2e/nginxctl.py), speaking the
uwsgi protocol over TCP and unix sockets: the seeds' deployments and what a
browser sends through them.

nginx missing = FAIL, not skip (scripts/test.sh installs it).
"""

import concurrent.futures
import hashlib
import json
import os
import re
import runpy

import pytest
import requests

from conftest import APPS, EXAMPLES
from httpraw import Conn, build, chunked
from nginxctl import UWSGI_PARAMS, Nginx, address, portico, public_dir, uwsgi_params

ECHO = APPS / "uw_echo.py"
BIG = runpy.run_path(str(ECHO))["BIG"]  # what uw_echo sends for .../big
SIMPLE_APP = EXAMPLES / "simple_app.py"
WEBPY = EXAMPLES / "webpy_hello.py"

# the seeds' location (000_*.txt), with Debian's params file
SEED_LOCATION = """
location / {
    include %s;
    uwsgi_pass %%s;
}
""" % UWSGI_PARAMS

# the seeds' mount (003_*.txt)
SEED_MOUNT = """
location /myapp {
    include %s;
    uwsgi_param SCRIPT_NAME /myapp;
    uwsgi_pass unix:%%s;
}
""" % UWSGI_PARAMS


@pytest.fixture
def client(http):
    """conftest's `http` session (a `requests` session ignoring proxy settings)."""
    return http


def get(client, url, **kw):
    kw.setdefault("timeout", 15)
    return client.get(url, **kw)


def assert_from_nginx(resp):
    assert resp.headers.get("Server", "").startswith("nginx"), resp.headers


# --- the seeds' deployments ------------------------------------------------------------


@pytest.fixture(scope="module")
def sockets():
    with public_dir() as d:
        yield d


@pytest.fixture(scope="module")
def simple_stack(sockets):
    sock = sockets / "simple.sock"
    with portico("--socket", "127.0.0.1:0", "--socket", sock, "--chmod-socket", "--wsgi-file", SIMPLE_APP) as p:
        host, port = address(p, "uwsgi")
        with Nginx({"tcp": SEED_LOCATION % f"{host}:{port}",
                    "unix": SEED_LOCATION % f"unix:{sock}"}) as ngx:
            yield ngx, p


@pytest.fixture(scope="module")
def webpy_stack(sockets, examples_venv):
    sock = sockets / "webpy.sock"
    with portico("--virtualenv", examples_venv, "--socket", "127.0.0.1:0", "--socket", sock, "--chmod-socket",
                 "--wsgi-file", WEBPY) as p:
        host, port = address(p, "uwsgi")
        with Nginx({"tcp": SEED_LOCATION % f"{host}:{port}",
                    "unix": SEED_LOCATION % f"unix:{sock}"}) as ngx:
            yield ngx, p


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_seed_simple_app_behind_nginx(simple_stack, client, via):
    ngx, p = simple_stack
    for path in ("/", "/hello.htm", "/a/b?c=d"):
        resp = get(client, ngx.url(via, path))
        assert resp.status_code == 200, (resp.text, ngx.log(), p.log())
        assert resp.content == b"Hello world!\n"
        assert resp.headers["Content-Type"] == "text/plain"
        assert_from_nginx(resp)


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_seed_webpy_hello_behind_nginx(webpy_stack, client, via):
    ngx, p = webpy_stack
    for path in ("/", "/hello.htm", "/a/b/c?x=1&y=2"):
        resp = get(client, ngx.url(via, path))
        assert resp.status_code == 200, (resp.text, ngx.log(), p.log())
        assert resp.text == "Welcome to webpy!"
        assert_from_nginx(resp)


def test_unix_socket_is_666_so_nginx_workers_can_connect(simple_stack, sockets):
    mode = os.stat(sockets / "simple.sock").st_mode & 0o777
    assert mode == 0o666
    ngx, _ = simple_stack
    assert "Permission denied" not in ngx.log()


@pytest.fixture(scope="module")
def mount_stack(sockets):
    sock = sockets / "myapp.sock"
    # the seeds' `mount=/myapp=server.py` + `manage-script-name=true`, run from the app's directory
    with portico("--socket", sock, "--chmod-socket", "--mount", "/myapp=uw_server.py", "--manage-script-name",
                 cwd=APPS) as p:
        servers = {
            "seed": SEED_MOUNT % sock,
            # the same, passing the client's Host with its port: nginx sends HTTP_HOST twice
            # (Debian's `$host` from the params file, then this one); the last wins
            "host": SEED_MOUNT.replace("uwsgi_pass", "uwsgi_param HTTP_HOST $http_host;\n    uwsgi_pass") % sock,
        }
        with Nginx(servers) as ngx:
            yield ngx, p


def mount_report(client, ngx, name, path):
    resp = get(client, ngx.url(name, path))
    assert resp.status_code == 200, (resp.status_code, resp.text, ngx.log())
    return resp.json()


@pytest.mark.parametrize(
    "path, path_info",
    [("/myapp/foo/bar?z=9", "/foo/bar"), ("/myapp", ""), ("/myapp/", "/"), ("/myapp/a%20b", "/a b")],
)
def test_seed_mount_splits_script_name(mount_stack, client, path, path_info):
    ngx, _ = mount_stack
    doc = mount_report(client, ngx, "seed", path)
    assert (doc["app"], doc["script_name"], doc["path_info"]) == ("server", "/myapp", path_info)
    # Debian's uwsgi_params sends HTTP_HOST as nginx's $host: lower-cased, port stripped
    port = ngx.ports["seed"]
    host = "127.0.0.1" if re.search(r"HTTP_HOST\s+\$host;", uwsgi_params()) else f"127.0.0.1:{port}"
    assert doc["application_uri"] == f"http://{host}/myapp"
    assert doc["request_uri"] == f"http://{host}{path}"


@pytest.mark.parametrize("path, path_info", [("/myapp/foo/bar?z=9", "/foo/bar"), ("/myapp", "")])
def test_seed_mount_builds_urls_with_the_clients_host_and_port(mount_stack, client, path, path_info):
    ngx, _ = mount_stack
    doc = mount_report(client, ngx, "host", path)
    base = f"http://127.0.0.1:{ngx.ports['host']}"
    assert (doc["script_name"], doc["path_info"]) == ("/myapp", path_info)
    assert doc["application_uri"] == f"{base}/myapp"
    assert doc["request_uri"] == f"{base}{path}"


def test_seed_mount_never_cuts_inside_a_path_segment(mount_stack, client):
    # nginx's `location /myapp` also matches /myappX and sends SCRIPT_NAME=/myapp,
    # PATH_INFO=/myappX: /myapp is not a mount prefix of it at a `/` boundary, so the
    # app must never see PATH_INFO 'X' (uWSGI < 2.0 cut blindly)
    ngx, p = mount_stack
    resp = get(client, ngx.url("seed", "/myappX/y"))
    assert resp.status_code in (200, 404), (resp.status_code, ngx.log(), p.log())
    if resp.status_code == 200:
        doc = resp.json()
        assert doc["path_info"] not in ("X/y", "/y", "X"), doc


# --- requests through nginx to the echo app --------------------------------------------


@pytest.fixture(scope="module")
def echo_stack(sockets):
    sock = sockets / "echo.sock"
    with portico("--socket", sock, "--chmod-socket", "--wsgi-file", ECHO) as p:
        with Nginx({"echo": SEED_LOCATION % f"unix:{sock}"}, http_extra="client_max_body_size 8m;") as ngx:
            yield ngx, p


def env_of(resp):
    assert resp.status_code == 200, (resp.status_code, resp.text[:500])
    return resp.json()


def test_get_environ_through_nginx(echo_stack, client):
    ngx, p = echo_stack
    start = len(p.lines)
    resp = get(client, ngx.url("echo", "/env/x?a=1&b=%20c"), headers={"X-Custom": "yes", "User-Agent": "t/1"})
    doc = env_of(resp)
    env = doc["environ"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/env/x"
    assert env["QUERY_STRING"] == "a=1&b=%20c"
    assert env["REQUEST_URI"] == "/env/x?a=1&b=%20c"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(ngx.ports["echo"])
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["CONTENT_LENGTH"] == "" and env["CONTENT_TYPE"] == "", "nginx's empty values are kept"
    assert env["HTTP_X_CUSTOM"] == "yes" and env["HTTP_USER_AGENT"] == "t/1"
    assert env["SCRIPT_NAME"] == ""
    assert env["wsgi.url_scheme"] == "http"
    assert resp.headers["X-Echo"] == "1"
    assert_from_nginx(resp)
    # Portico's access log names the client nginx reported
    p.wait_for_line(r"\] 127\.0\.0\.1 .*GET /env/x\?a=1&b=%20c .*\(HTTP/1\.1 200\)", start=start)


def test_post_with_content_length(echo_stack, client):
    ngx, _ = echo_stack
    body = os.urandom(300 * 1024)  # over client_body_buffer_size: nginx buffers it to a temp file
    resp = client.post(ngx.url("echo", "/post"), data=body, timeout=15,
                       headers={"Content-Type": "application/octet-stream"})
    doc = env_of(resp)
    assert doc["environ"]["CONTENT_LENGTH"] == str(len(body))
    assert doc["environ"]["CONTENT_TYPE"] == "application/octet-stream"
    assert bytes.fromhex(doc["body_hex"]) == body
    assert doc["after"] == "b''"


def test_small_form_post(echo_stack, client):
    ngx, _ = echo_stack
    resp = client.post(ngx.url("echo", "/form"), data={"a": "1", "b": "é"}, timeout=15)
    doc = env_of(resp)
    assert doc["environ"]["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert bytes.fromhex(doc["body_hex"]) == b"a=1&b=%C3%A9"


def test_chunked_post_is_dechunked_by_nginx(echo_stack):
    ngx, _ = echo_stack
    pieces = [b"hello ", os.urandom(70000), b"", b"x" * 5, b" world"]
    body = b"".join(pieces)
    with Conn("127.0.0.1", ngx.ports["echo"]) as conn:
        conn.send(build("POST", "/chunked", headers=[("Transfer-Encoding", "chunked")],
                        host=f"127.0.0.1:{ngx.ports['echo']}") + chunked(*pieces))
        resp = conn.read_response()
    assert resp.status == 200, resp
    doc = json.loads(resp.body)
    assert doc["environ"]["CONTENT_LENGTH"] == str(len(body))
    assert bytes.fromhex(doc["body_hex"]) == body
    assert doc["after"] == "b''"


def test_request_headers_over_4k(echo_stack, client):
    ngx, _ = echo_stack
    cookie = "; ".join(f"c{i}={'v' * 60}" for i in range(96))  # ~6 KiB
    assert len(cookie) > 6000
    pads = {f"X-Pad-{i}": chr(ord("a") + i) * 5000 for i in range(3)}
    resp = get(client, ngx.url("echo", "/headers"), headers={"Cookie": cookie, **pads})
    env = env_of(resp)["environ"]
    assert env["HTTP_COOKIE"] == cookie
    for i in range(3):
        assert env[f"HTTP_X_PAD_{i}"] == pads[f"X-Pad-{i}"]


def test_repeated_request_header_last_wins_or_joined(echo_stack):
    # nginx 1.22 sends each repeated header as its own var (Portico keeps the last);
    # nginx >= 1.23 joins them with ", "
    ngx, _ = echo_stack
    with Conn("127.0.0.1", ngx.ports["echo"]) as conn:
        conn.send(build("GET", "/dup", headers=[("X-Dup", "first"), ("X-Dup", "second")]))
        resp = conn.read_response()
    assert json.loads(resp.body)["environ"]["HTTP_X_DUP"] in ("second", "first, second")


def test_non_ascii_path_and_query_percent_encoded(echo_stack, client):
    ngx, _ = echo_stack
    target = "/caf%C3%A9/%E2%9C%93?q=%C3%A9t%C3%A9&r=%20x"
    resp = get(client, ngx.url("echo", target))
    env = env_of(resp)["environ"]
    # PATH_INFO is nginx's decoded $document_uri: UTF-8 bytes, as a latin-1 str (PEP 3333)
    assert env["PATH_INFO"] == "/café/✓".encode("utf-8").decode("latin-1")
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/✓"
    # the query string and REQUEST_URI stay as the client sent them
    assert env["QUERY_STRING"] == "q=%C3%A9t%C3%A9&r=%20x"
    assert env["REQUEST_URI"] == target


def test_non_ascii_raw_bytes_in_path_and_query(echo_stack):
    ngx, _ = echo_stack
    with Conn("127.0.0.1", ngx.ports["echo"]) as conn:
        conn.send(build("GET", "/r\xc3\xa9sum\xc3\xa9?x=\xc3\xa9".encode("latin-1")))
        resp = conn.read_response()
    assert resp.status == 200, resp
    env = json.loads(resp.body)["environ"]
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/résumé"
    assert env["QUERY_STRING"].encode("latin-1") == b"x=\xc3\xa9"


def test_1mib_response_exact_bytes(echo_stack, client):
    ngx, _ = echo_stack
    resp = get(client, ngx.url("echo", "/big"))
    assert resp.status_code == 200
    assert resp.headers["Content-Length"] == str(1 << 20)
    assert len(resp.content) == len(BIG)
    assert hashlib.sha256(resp.content).hexdigest() == hashlib.sha256(BIG).hexdigest()


def test_head_has_no_body_and_the_connection_stays_usable(echo_stack):
    ngx, _ = echo_stack
    with Conn("127.0.0.1", ngx.ports["echo"]) as conn:
        conn.send(build("HEAD", "/head"))
        resp = conn.read_response("HEAD")
        assert resp.status == 200, resp
        assert resp.header("X-Echo") == "1"
        assert conn.read_available(0.3) == b"", "no body after a HEAD response"
        # the next request on the same client connection is answered normally
        conn.send(build("GET", "/after-head"))
        resp = conn.read_response()
        assert resp.status == 200 and json.loads(resp.body)["environ"]["PATH_INFO"] == "/after-head"


def test_app_exception_is_a_500_not_a_502(echo_stack, client):
    ngx, p = echo_stack
    start = len(p.lines)
    resp = get(client, ngx.url("echo", "/raise"))
    assert resp.status_code == 500, (resp.status_code, resp.text, ngx.log())
    assert resp.content, "a body"
    assert "Bad Gateway" not in resp.text
    assert "upstream prematurely closed" not in ngx.log()
    p.wait_for_line(r"RuntimeError: uw_echo: deliberate failure", start=start)
    assert env_of(get(client, ngx.url("echo", "/ok")))["environ"]["PATH_INFO"] == "/ok"


def test_many_requests_and_concurrency(echo_stack, client):
    ngx, _ = echo_stack
    for i in range(20):  # one client keep-alive connection, a new uwsgi connection each
        assert env_of(get(client, ngx.url("echo", f"/seq/{i}")))["environ"]["PATH_INFO"] == f"/seq/{i}"

    def one(i):
        s = requests.Session()
        s.trust_env = False
        with s:
            return s.get(ngx.url("echo", f"/par/{i}"), timeout=15).json()["environ"]["PATH_INFO"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(one, range(16))) == sorted(f"/par/{i}" for i in range(16))
    assert "[error]" not in ngx.log() and "[crit]" not in ngx.log(), ngx.log()
