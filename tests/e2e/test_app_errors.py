"""Application errors: before the response starts → 500 and a traceback in the log;
after bytes went out → the connection is cut so the client sees the truncation;
the process keeps serving either way. App: tests/e2e/apps/pep_errors.py.
"""

import pytest

from conftest import APPS
from httpraw import Conn, build, module_server


@pytest.fixture(scope="module")
def server():
    with module_server("--wsgi-file", APPS / "pep_errors.py") as srv:
        yield srv


def still_serving(server):
    with Conn.to(server, timeout=5) as conn:
        conn.send(build("GET", "/ok"))
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"ok"), resp


@pytest.mark.parametrize("path", ["/before-start-response", "/after-start-response", "/before-first-block"])
def test_exception_before_the_first_body_byte_gives_500(server, path):
    start = len(server.lines)
    with Conn.to(server, timeout=5) as conn:
        conn.send(build("GET", path))
        resp = conn.read_response()
    assert resp.status == 500, resp
    assert resp.complete and resp.body, "a 500 needs a body"
    assert not resp.has_header("x-app"), "the app's headers must not leak into the 500"
    assert b"portico-app-error-marker" not in resp.body, "the traceback belongs in the log, not the response"
    where = path.strip("/")
    server.wait_for_line(rf"RuntimeError: portico-app-error-marker-{where}", timeout=5, start=start)
    assert "Traceback" in "\n".join(server.lines[start:])
    still_serving(server)


@pytest.mark.parametrize("path", ["/mid-stream", "/mid-stream-cl"])
def test_exception_mid_stream_cuts_the_connection(server, path):
    start = len(server.lines)
    with Conn.to(server, timeout=5) as conn:
        conn.send(build("GET", path))
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.body == b"partial"
        assert not resp.complete, f"truncation hidden from the client ({resp.framing})"
        assert conn.eof
    where = path.strip("/")
    server.wait_for_line(rf"RuntimeError: portico-app-error-marker-{where}", timeout=5, start=start)
    still_serving(server)


def test_app_returning_none_gives_500(server):
    with Conn.to(server, timeout=5) as conn:
        conn.send(build("GET", "/returns-none"))
        resp = conn.read_response()
    assert resp.status == 500, resp
    still_serving(server)


def test_traceback_text_is_logged(server):
    start = len(server.lines)
    with Conn.to(server, timeout=5) as conn:
        conn.send(build("GET", "/before-start-response"))
        assert conn.read_response().status == 500
    server.wait_for_line(r"RuntimeError: portico-app-error-marker-before-start-response", timeout=5, start=start)
    log = "\n".join(server.lines[start:])
    assert "Traceback (most recent call last):" in log
    assert "pep_errors.py" in log and "in fail" in log, log
    # the access line for the failed request records the 500
    server.wait_for_line(r"GET /before-start-response => generated .*\(HTTP/1\.1 500\)", timeout=5, start=start)
