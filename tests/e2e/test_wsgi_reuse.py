"""The WSGI bridge's per-worker reuse, through the real binary: one
start_response object serves request after request while nothing else
holds it (crates/wsgi/src/responder.rs), and the environ's caches of header
keys, header values, the client's address and the server's name
(crates/wsgi/src/environ_cache.rs) must never let one request see
another's values. Apps: apps/wsgi_reuse.py, apps/pep_environ.py.
"""

import json

import pytest

from conftest import APPS
from httpraw import Conn, build, module_server


@pytest.fixture(scope="module")
def reuse_server():
    with module_server("--wsgi-file", APPS / "wsgi_reuse.py") as srv:
        yield srv


@pytest.fixture(scope="module")
def env_server():
    with module_server("--wsgi-file", APPS / "pep_environ.py") as srv:
        yield srv


def get(conn, target, **kw):
    conn.send(build("GET", target, **kw))
    return conn.read_response()


def test_a_start_response_kept_past_its_request_cannot_touch_later_ones(reuse_server):
    with Conn.to(reuse_server) as conn:
        # Warm: a few requests so that a spare start_response exists.
        for _ in range(3):
            assert get(conn, "/").body == b"written plain"
        kept = get(conn, "/keep")
        assert kept.status == 200 and kept.body == b"kept"
        for _ in range(3):
            resp = get(conn, "/use-kept")
            assert resp.status == 200, resp
            assert resp.body == b"mine"
            assert resp.header("X-Hijack") is None
            # The kept one belongs to a finished request: a second start is
            # refused, and its write() finds no client.
            assert resp.header("X-Kept-Start") == "AssertionError"
            assert resp.header("X-Kept-Write") == "OSError"
            same = get(conn, "/same")
            assert same.header("X-Same") == "no"
            assert get(conn, "/").body == b"written plain"


def test_each_request_on_one_connection_sees_its_own_header_values(env_server):
    cases = [
        ("a.example", "agent-one", [("Accept", "text/html")], "a.example", "80"),
        ("b.example:8081", "agent-two", [("Accept", "*/*"), ("Accept", "text/plain")], "b.example", "8081"),
        ("a.example", "agent-one", [("X-Only-Here", "1")], "a.example", "80"),
        ("[::1]:9000", "agent-three", [("Cookie", "a=1"), ("Cookie", "b=2")], "::1", "9000"),
        ("a.example", "agent-one", [("Accept", "text/html")], "a.example", "80"),
    ]
    with Conn.to(env_server) as conn:
        for host, agent, extra, name, port in cases * 2:
            headers = [("User-Agent", agent)] + extra
            conn.send(build("GET", "/p?q=1", headers=headers, host=host))
            resp = conn.read_response()
            assert resp.status == 200, resp
            env = json.loads(resp.body)["environ"]
            assert env["HTTP_HOST"] == host
            assert env["HTTP_USER_AGENT"] == agent
            assert env["SERVER_NAME"] == name
            assert env["SERVER_PORT"] == port
            joined = {}
            for key, value in extra:
                sep = "; " if key == "Cookie" else ", "
                k = "HTTP_" + key.upper().replace("-", "_")
                joined[k] = joined[k] + sep + value if k in joined else value
            for k, value in joined.items():
                assert env[k] == value, (k, env)
            # Nothing of an earlier request's headers is left behind.
            for k in ("HTTP_ACCEPT", "HTTP_COOKIE", "HTTP_X_ONLY_HERE"):
                if k not in joined:
                    assert k not in env, (k, env)
            assert env["REQUEST_URI"] == "/p?q=1" and env["PATH_INFO"] == "/p"
            assert env["QUERY_STRING"] == "q=1"
            assert env["REMOTE_ADDR"] == "127.0.0.1"
            assert not [k for k in env if k.startswith("portico.")], env


def test_the_http_environ_has_exactly_the_variables_a_request_sets(env_server):
    # The HTTP template holds a slot for every variable each request sets;
    # a request without a body must not show CONTENT_* and no slot may be
    # left empty.
    with Conn.to(env_server) as conn:
        conn.send(build("GET", "/x", host="h"))
        env = json.loads(conn.read_response().body)["environ"]
    assert "CONTENT_TYPE" not in env and "CONTENT_LENGTH" not in env
    for key in ("REQUEST_METHOD", "REQUEST_URI", "PATH_INFO", "SERVER_PROTOCOL",
                "REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "wsgi.url_scheme"):
        assert env[key], (key, env)
    assert env["QUERY_STRING"] == "" and env["SCRIPT_NAME"] == ""
