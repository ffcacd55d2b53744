"""Differential interop with a REAL uWSGI (issue 15, "Must show": Portico as a
drop-in nginx in front of a real uWSGI): seed 003's config
(configs/nginx/seed_003.conf: `uwsgi_pass` over TCP, with and without
SCRIPT_NAME, and over a unix socket) served by nginx 1.22 and by `portico -c`
(nginx_diff.DiffPair), both in front of one `uwsgi --socket TCP --socket UNIX
--wsgi-file apps/uw_echo.py` (nginxctl.real_uwsgi).

Compared for each request: the answer (status, the headers nginx_diff
compares plus the app's own, the set of header names, the body where it does
not echo the connection) and what the app saw: the environ uw_echo echoes,
every str var identical except REMOTE_PORT, after each side's port numbers
are normalised (SERVER_PORT), and the body it read.

Requests: GET with args (each location, both socket kinds), POST with a body,
chunked POSTs, repeated headers (a deliberate difference, asserted: Portico
joins them as nginx >= 1.23 does, see docs/compat.md), headers with
underscores (dropped by both), the app's own 404, an exception in the app
(uWSGI's 500), a 1 MiB answer, and the app down (uWSGI killed: the same 502
page over TCP and over the stale unix socket).

No uWSGI binary FAILS the test (never skips): tests/requirements.txt installs
it into the test venv scripts/test.sh runs pytest with (nginxctl.uwsgi_binary). Same auto-skip rule as
the other differential suites (nginx_diff.live_mark()); with
NGINX_DIFF_SELFTEST=1 (nginx on both sides) every var must be identical.
"""

import json

import pytest

import nginx_diff
from conftest import APPS
from httpraw import chunked
from nginx_diff import DiffPair, load_config
from nginxctl import public_dir, real_uwsgi

pytestmark = nginx_diff.live_mark()

ECHO = APPS / "uw_echo.py"
TREE = {"html/index.html": "<h1>003 root html index</h1>\n"}

# Headers a front sets itself (connection management, its own identity):
# never compared by name or value.
FRONT_HEADERS = {"date", "server", "connection", "keep-alive", "transfer-encoding",
                 "content-length"}


def upstreams(backend):
    """seed_003.conf's placeholders, all naming the one real uWSGI."""
    return {"app_tcp": backend["tcp"], "app_tcp2": backend["tcp"], "app_sock": backend["unix"]}


@pytest.fixture(scope="module")
def backend():
    with public_dir("portico-interop-") as d, real_uwsgi(ECHO, d) as uw:
        yield uw


@pytest.fixture(scope="module")
def pair(backend):
    with DiffPair(load_config("seed_003.conf"), TREE, upstreams(backend)) as p:
        yield p


# --- what the app saw --------------------------------------------------------------------


def app_saw(answer, ports):
    """(environ, body) as uw_echo echoed them: REMOTE_PORT dropped, the side's own
    port numbers normalised (SERVER_PORT, a Host with a port)."""
    assert answer.status == 200, answer
    seen = json.loads(answer.body)
    env = {k: nginx_diff.normalise_ports(v, ports)
           for k, v in seen["environ"].items() if k != "REMOTE_PORT"}
    return env, bytes.fromhex(seen["body_hex"])


def env_diff(a, b):
    """The vars that differ: {name: (nginx's, portico's)}."""
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def header_names(answer):
    return sorted({k.lower() for k, _ in answer.raw_headers} - FRONT_HEADERS)


def same_answer_then_environ(pair, a, b):
    """Assert two echo answers alike (status, Content-Type, X-Echo, header names: the
    bodies differ by REMOTE_PORT); return what the app saw through each:
    (nginx's (environ, body), portico's (environ, body))."""
    assert a.status == 200, a
    pick = lambda x: (x.status, x.headers.get("content-type"), x.headers.get("x-echo"))  # noqa: E731
    assert pick(b) == pick(a), (a, b)
    assert header_names(b) == header_names(a), (a.raw_headers, b.raw_headers)
    return app_saw(a, pair.nginx.ports), app_saw(b, pair.portico.ports)


# --- the environ, request by request -----------------------------------------------------

FORM = [("Content-Type", "application/x-www-form-urlencoded")]
PLAIN = [("Content-Type", "text/plain")]
TE = [("Transfer-Encoding", "chunked")]

CASES = [
    # id, listener, method, target, headers, body
    ("get-args-myapp", "port", "GET", "/myapp/page?x=1&y=%20z&x=2", [], None),
    ("get-args-root", "port", "GET", "/hello.htm?a=1&b=%20&c", [], None),
    ("get-args-unix", "port2", "GET", "/myapp/unix/p%41th?q=%2F&r=", [], None),
    ("get-myapp-bare", "port", "GET", "/myapp", [], None),
    ("get-encoded-path", "port", "GET", "/myapp/a%20b/%C3%A9?%", [], None),
    ("get-http10", "port", "GET", "/myapp/old?v=1.0", [], None),
    ("head", "port", "HEAD", "/myapp/head", [], None),
    ("post-form", "port", "POST", "/myapp/form?via=post", FORM, b"k=v&seed=003"),
    ("post-form-unix", "port2", "POST", "/myapp/form", FORM, b"k=v&unix=1"),
    ("post-empty", "port", "POST", "/myapp/empty", PLAIN, b""),
    ("put-binary", "port", "PUT", "/myapp/put", [("Content-Type", "application/octet-stream")],
     bytes(range(256)) * 64),
    ("post-chunked", "port", "POST", "/myapp/chunked", PLAIN + TE,
     chunked(b"first,", b"second,", b"x" * 5000)),
    ("post-chunked-unix", "port2", "POST", "/myapp/chunked", FORM + TE, chunked(b"a=1&", b"b=2")),
    ("post-chunked-root", "port", "POST", "/chunked", TE, chunked(b"no type")),
    ("headers-underscores", "port", "GET", "/myapp/u",
     [("X_Under", "dropped"), ("X-Dash", "kept"), ("Under_Score-Mix", "dropped")], None),
    ("headers-many", "port", "GET", "/myapp/h",
     [("User-Agent", "interop/1"), ("Accept", "text/html"), ("Accept-Language", "fr"),
      ("Referer", "http://example.com/x?y"), ("X-Forwarded-For", "10.0.0.9"),
      ("Authorization", "Basic dTpw"), ("If-None-Match", '"abc"'), ("X-Empty", "")], None),
    ("host-with-port", "port", "GET", "/myapp/host", [("Host", "example.com:8080")], None),
    ("host-other-name", "port2", "GET", "/myapp/host", [("Host", "Other.Example")], None),
]


@pytest.mark.parametrize("listener,method,target,headers,body",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_app_sees_the_same_environ(pair, listener, method, target, headers, body):
    kw = {"version": "HTTP/1.0"} if "old" in target else {}
    a, b = pair.both(method, target, headers, body, port=listener, **kw)
    if method == "HEAD":
        # no body to read the environ from: the answer alone
        pair.compare(a, b, nginx_diff.COMPARED + ("x-echo",))
        assert a.status == 200 and header_names(b) == header_names(a), (a, b)
        return
    (env_a, body_a), (env_b, body_b) = same_answer_then_environ(pair, a, b)
    assert env_diff(env_a, env_b) == {}
    assert body_b == body_a


def test_repeated_headers_are_joined_as_nginx_1_23_does(pair):
    """nginx 1.22 sends a repeated header as one var each and uWSGI keeps the last;
    Portico sends one var, the values joined with ", " ("; " for Cookie), as nginx
    1.23+ does (docs/compat.md). Every other var is identical."""
    headers = [("X-Rep", "one"), ("Accept", "text/html"), ("X-Rep", "two"),
               ("Cookie", "a=1"), ("Cookie", "b=2"), ("accept", "*/*")]
    a, b = pair.both("GET", "/myapp/rep", headers)
    (env_a, _), (env_b, _) = same_answer_then_environ(pair, a, b)
    joined = {
        "HTTP_X_REP": ("two", "one, two"),
        "HTTP_COOKIE": ("b=2", "a=1; b=2"),
        "HTTP_ACCEPT": ("*/*", "text/html, */*"),
    }
    assert env_diff(env_a, env_b) == ({} if nginx_diff.SELFTEST else joined)


# --- answers that do not echo --------------------------------------------------------------


@pytest.mark.parametrize("listener,target,status", [
    ("port", "/myapp/notfound?x=1", 404),
    ("port2", "/myapp/notfound", 404),
    ("port", "/notfound", 404),
    ("port", "/myapp/raise", 502),  # uWSGI closes without an answer
], ids=["404-tcp", "404-unix", "404-root", "raise-502"])
def test_app_errors_pass_through(pair, listener, target, status):
    a = pair.check("GET", target, port=listener)
    assert a.status == status, a
    b = pair.fetch("portico", "GET", target, port=listener)
    assert header_names(b) == header_names(a), (a.raw_headers, b.raw_headers)


@pytest.mark.parametrize("listener", ["port", "port2"])
def test_large_answer(pair, listener):
    a = pair.check("GET", "/myapp/big", port=listener)
    assert a.status == 200 and len(a.body) == 1 << 20, a


def test_app_down_is_the_same_502():
    """uWSGI killed (SIGKILL: its unix socket file stays, refusing connections): both
    fronts answer nginx's 502 page, over TCP and over the unix socket."""
    with public_dir("portico-interop-down-") as d, real_uwsgi(ECHO, d) as uw, \
            DiffPair(load_config("seed_003.conf"), TREE, upstreams(uw)) as p:
        a, b = p.both("GET", "/myapp/up", port="port2")
        assert a.status == b.status == 200, (a, b)
        uw["proc"].kill()
        uw["proc"].wait(5)
        for listener, target in (("port", "/myapp/down"), ("port", "/"),
                                 ("port2", "/myapp/down")):
            a = p.check("GET", target, port=listener)
            assert a.status == 502, a
