"""Issue 16 item 9, through the real binary: a panic loses the request it
happened in, never the worker. The test-only hook (`PORTICO_TEST_PANIC=1`,
crates/server/src/test_hooks.rs) panics in a request's connection task for
/__portico_test_panic/connection and in the Python thread running it for
/__portico_test_panic/python. Before the fix (`panic = "abort"`) either one
killed the process and every request in flight in it.
"""

import time

from conftest import APPS
from httpraw import Conn, Incomplete, build

APP = APPS / "proc_app.py"
HOOKS = {"PORTICO_TEST_PANIC": "1"}
CONNECTION_PANIC = "/__portico_test_panic/connection"
PYTHON_PANIC = "/__portico_test_panic/python"
CONTAINED = r"the panic above ended one request only; this worker goes on"


def sleeping(server, count, timeout=10.0):
    """Wait until `count` /sleep requests have reached the app (the app's
    threads print at once, so two notices may share a line)."""
    deadline = time.monotonic() + timeout
    while sum(l.count("proc_app: pid") for l in list(server.lines)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} sleeping:\n{server.log()}"
        time.sleep(0.02)


def pid_of(server):
    with Conn.to(server, timeout=10) as conn:
        conn.send(build("GET", "/pid"))
        resp = conn.read_response()
    assert resp.status == 200, resp
    return int(resp.body)


def test_a_panic_in_a_connection_loses_that_connection_only(portico_server):
    server = portico_server("--wsgi-file", APP, "--threads", "4", env=HOOKS)
    pid = pid_of(server)
    in_flight = [Conn.to(server, timeout=15) for _ in range(3)]
    try:
        for conn in in_flight:
            conn.send(build("GET", "/sleep?1.5"))
        sleeping(server, 3)
        with Conn.to(server, timeout=10) as doomed:
            doomed.send(build("GET", CONNECTION_PANIC))
            try:
                resp = doomed.read_response()
            except Incomplete as e:
                assert e.data == b"", e.data  # closed without a byte of answer
            else:
                raise AssertionError(f"the panicking request was answered: {resp}")
        server.wait_for_line(CONTAINED)
        assert server.proc.poll() is None, server.log()
        for conn in in_flight:
            resp = conn.read_response()
            assert resp.status == 200 and int(resp.body) == pid, resp
    finally:
        for conn in in_flight:
            conn.close()
    assert pid_of(server) == pid, "the same worker keeps serving"
    assert any("panicked at" in l for l in server.lines), server.log()
    assert any("a panic in this request's connection task" in l for l in server.lines)


def test_a_panic_in_the_python_thread_is_a_500_and_the_thread_goes_on(portico_server):
    # One Python thread: if the panic took the thread with it, the request
    # queued behind it would wait for ever.
    server = portico_server("--wsgi-file", APP, "--threads", "1", env=HOOKS)
    pid = pid_of(server)
    first, doomed, after = (Conn.to(server, timeout=15) for _ in range(3))
    try:
        first.send(build("GET", "/sleep?1"))
        sleeping(server, 1)
        doomed.send(build("GET", PYTHON_PANIC))
        after.send(build("GET", "/pid"))
        resp = first.read_response()
        assert resp.status == 200 and int(resp.body) == pid, resp
        resp = doomed.read_response()
        assert resp.status == 500, resp
        resp = after.read_response()
        assert resp.status == 200 and int(resp.body) == pid, resp
    finally:
        for conn in (first, doomed, after):
            conn.close()
    server.wait_for_line(CONTAINED)
    assert pid_of(server) == pid
    assert server.proc.poll() is None


def test_the_panic_hooks_are_off_unless_asked_for(portico_server):
    server = portico_server("--wsgi-file", APP)
    for path in (CONNECTION_PANIC, PYTHON_PANIC):
        with Conn.to(server, timeout=10) as conn:
            conn.send(build("GET", path))
            resp = conn.read_response()
        assert resp.status == 200, resp  # the app's answer: no hook ran
    assert not any("panicked" in l for l in server.lines), server.log()
