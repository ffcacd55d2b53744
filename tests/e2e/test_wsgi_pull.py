"""A response that is not a list, begun in place (one Python thread), is
pulled by the connection one next() at a time (crates/wsgi/src/pull.rs):
it still streams, close() is called once, exceptions are a 500 before the
first piece and a cut connection after it, write() keeps its order, and a
request arriving meanwhile waits for the unfinished body (the app sees one
request at a time). Apps: tests/e2e/apps/pull_app.py, flask_pull.py.
"""

import socket
import time
import uuid

import pytest

from conftest import APPS, wait_until
from httpraw import Conn, build, module_server


@pytest.fixture(scope="module")
def server(app_log):
    with module_server("--wsgi-file", APPS / "pull_app.py", "--env", f"PULL_LOG={app_log}") as srv:
        yield srv


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("static")
    (path / "a.txt").write_bytes(b"static bytes\n")
    return path


@pytest.fixture(scope="module")
def static_server(app_log, static_dir):
    with module_server("--wsgi-file", APPS / "pull_app.py", "--env", f"PULL_LOG={app_log}",
                       "--static-map", f"/static={static_dir}") as srv:
        yield srv


@pytest.fixture(scope="module")
def flask_server(app_log, examples_venv):
    with module_server("--virtualenv", examples_venv, "--wsgi-file", APPS / "flask_pull.py",
                       "--env", f"PULL_LOG={app_log}") as srv:
        yield srv


def lines(path):
    return path.read_text().splitlines()


def assert_closed_once(path, *tags):
    """close() of each tagged response logged exactly once (after a moment for a second)."""
    for tag in tags:
        wait_until(lambda: f"close {tag}" in lines(path), what=f"close() of {tag}")
    time.sleep(0.3)
    for tag in tags:
        assert lines(path).count(f"close {tag}") == 1, f"close() of {tag} called more than once"


def read_piece(conn, resp):
    """The next piece of a response body: one chunk, or what a length-framed
    body has sent so far (at least one byte)."""
    if resp.header("transfer-encoding"):
        size = int(conn.read_line().split(b";")[0], 16)
        data = conn.read_exact(size)
        assert conn.read_exact(2) == b"\r\n"
        return data
    data = conn.read_available(0.05)
    while not data:
        data = conn.read_available(0.05)
    return data


def tag():
    return uuid.uuid4().hex


def tagged_gets(conn, path, tags):
    """GET PATH?tag=T on `conn` for each of `tags` in turn, yielding each response
    before the next request is sent."""
    for t in tags:
        conn.send(build("GET", f"{path}?tag={t}"))
        yield conn.read_response()


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cl", [False, True], ids=["chunked", "content-length"])
def test_a_slow_generator_sends_its_first_piece_before_it_ends(server, app_log, cl):
    t = tag()
    with Conn.to(server) as conn:
        started = time.monotonic()
        conn.send(build("GET", f"/slow?tag={t}" + ("&cl=1" if cl else "")))
        resp = conn.read_head()
        assert resp.status == 200
        first = read_piece(conn, resp)
        first_at = time.monotonic() - started
        assert first == b"first-piece", first
        assert first_at < 0.7, f"the first piece came after {first_at:.2f} s: it waited for the second"
        rest = conn.read_exact(12) if cl else read_piece(conn, resp)
        assert rest == b"second-piece"
        assert time.monotonic() - started >= 0.9
        if not cl:
            assert conn.read_line() == b"0\r\n" and conn.read_line() == b"\r\n"
        # the connection goes on
        conn.send(build("GET", "/record?tag=after-slow"))
        assert conn.read_response().body == b"recorded"
    assert_closed_once(app_log, t)


def test_a_closing_iterator_is_closed_once_per_request_on_a_kept_alive_connection(server, app_log):
    tags = [tag() for _ in range(5)]
    with Conn.to(server) as conn:
        for resp in tagged_gets(conn, "/closing", tags):
            assert (resp.status, resp.body) == (200, b'{"message": "Hello, World!"}'), resp
            assert resp.header("content-length") == "28"
    assert_closed_once(app_log, *tags)


def test_pipelined_closing_iterators_answer_in_order(server, app_log):
    tags = [tag() for _ in range(4)]
    with Conn.to(server) as conn:
        conn.send(b"".join(build("GET", f"/closing?tag={t}") for t in tags))
        for _ in tags:
            assert conn.read_response().body == b'{"message": "Hello, World!"}'
    assert_closed_once(app_log, *tags)


def test_a_slow_iterator_goes_to_the_python_thread_and_frees_the_event_loop(static_server, app_log):
    t = tag()
    with Conn.to(static_server) as slow, Conn.to(static_server) as other:
        slow.send(build("GET", f"/sleepy?tag={t}"))
        resp = slow.read_head()
        assert read_piece(slow, resp) == b"one"
        assert read_piece(slow, resp) == b"two"  # its next() took 1 s: the rest is handed off
        # The iterator now sleeps 1 s before b"three", on the Python thread:
        # the worker's event loop still serves a static file at once.
        started = time.monotonic()
        other.send(build("GET", "/static/a.txt"))
        answer = other.read_response()
        took = time.monotonic() - started
        assert (answer.status, answer.body) == (200, b"static bytes\n")
        assert took < 0.5, f"a static file took {took:.2f} s while a slow generator ran"
        assert read_piece(slow, resp) == b"three"
        assert slow.read_line() == b"0\r\n"
    assert_closed_once(app_log, t)


# --- exceptions --------------------------------------------------------------------------------


def test_an_exception_before_the_first_piece_gives_500_and_closes_once(server, app_log):
    t = tag()
    with Conn.to(server) as conn:
        conn.send(build("GET", f"/raise-first?tag={t}"))
        resp = conn.read_response()
        assert resp.status == 500, resp
        # a 500 keeps the connection usable
        conn.send(build("GET", "/record?tag=after-500"))
        assert conn.read_response().body == b"recorded"
    assert_closed_once(app_log, t)
    assert "pull-app-next-raised-marker" in server.log()


@pytest.mark.parametrize("cl", [False, True], ids=["chunked", "content-length"])
def test_an_exception_after_the_first_piece_cuts_the_connection_and_closes_once(server, app_log, cl):
    t = tag()
    with Conn.to(server) as conn:
        conn.send(build("GET", f"/raise-after?tag={t}" + ("&cl=1" if cl else "")))
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.body == b"partial" and not resp.complete, resp
        assert conn.wait_closed(), "the connection was not cut"
    assert_closed_once(app_log, t)
    wait_until(lambda: server.log().count("pull-app-next-raised-marker") >= 1, what="the traceback")


# --- the client going away ---------------------------------------------------------------------


@pytest.mark.parametrize("cl", [False, True], ids=["chunked", "content-length"])
def test_the_client_leaving_mid_body_closes_the_iterator_once(server, app_log, cl):
    t = tag()
    conn = Conn.to(server)
    conn.send(build("GET", f"/endless?tag={t}" + ("&cl=1" if cl else "")))
    assert conn.read_head().status == 200
    assert len(conn.read_exact(200_000)) == 200_000
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()  # a reset: the next write fails at once
    assert_closed_once(app_log, t)
    with Conn.to(server) as conn:
        conn.send(build("GET", "/record?tag=after-leave"))
        assert conn.read_response().body == b"recorded"


# --- one request at a time ---------------------------------------------------------------------


def test_a_request_waits_for_an_unfinished_pulled_body(server, app_log):
    a, b = tag(), tag()
    with Conn.to(server) as first, Conn.to(server) as second:
        first.send(build("GET", f"/slow?tag={a}"))
        resp = first.read_head()
        assert read_piece(first, resp) == b"first-piece"
        # The app is between the two pieces of the first response: the
        # second request must not run until that body is over.
        second.send(build("GET", f"/record?tag={b}"))
        answer = second.read_response()
        assert answer.body == b"recorded"
        assert read_piece(first, resp) == b"second-piece"
    log = lines(app_log)
    assert f"close {a}" in log and f"start {b}" in log, log
    assert log.index(f"close {a}") < log.index(f"start {b}"), \
        "the second request ran while the first one's body was unfinished"


# --- write() -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path,body", [("/write-in-gen", b"abcd"), ("/write-then-gen", b"abcde")])
def test_write_data_keeps_its_place_among_the_pieces(server, path, body):
    with Conn.to(server) as conn:
        conn.send(build("GET", path))
        resp = conn.read_response()
        assert (resp.status, resp.body, resp.complete) == (200, body, True), resp
        conn.send(build("GET", "/record?tag=after-write"))
        assert conn.read_response().body == b"recorded"


# --- Flask -------------------------------------------------------------------------------------


def test_flask_json_responses_close_once_each_on_a_kept_alive_connection(flask_server, app_log):
    tags = [tag() for _ in range(5)]
    with Conn.to(flask_server) as conn:
        for resp in tagged_gets(conn, "/json", tags):
            assert resp.status == 200, flask_server.log()
            assert resp.body.strip() == b'{"message":"Hello, World!"}'
            assert resp.header("content-length") == str(len(resp.body))
        conn.send(build("HEAD", "/json"))
        head = conn.read_response("HEAD")
        assert head.status == 200 and head.header("content-length")
        assert conn.read_available(0.2) == b""
    assert_closed_once(app_log, *tags)


def test_a_flask_stream_sends_its_first_piece_before_it_ends(flask_server, app_log):
    t = tag()
    with Conn.to(flask_server) as conn:
        started = time.monotonic()
        conn.send(build("GET", f"/stream?tag={t}"))
        resp = conn.read_head()
        assert resp.status == 200
        assert read_piece(conn, resp) == b"first\n"
        assert time.monotonic() - started < 0.7
        assert read_piece(conn, resp) == b"second\n"
        assert time.monotonic() - started >= 0.9
    assert_closed_once(app_log, t)


def test_flask_stream_with_context_sees_its_request(flask_server):
    with Conn.to(flask_server) as conn:
        conn.send(build("GET", "/ctx"))
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"path=/ctx"), resp


def test_a_failing_flask_view_answers_500_and_the_worker_goes_on(flask_server, app_log):
    t = tag()
    with Conn.to(flask_server) as conn:
        conn.send(build("GET", f"/fail?tag={t}"))
        assert conn.read_response().status == 500
        conn.send(build("GET", "/json"))
        assert conn.read_response().status == 200
    assert_closed_once(app_log, t)
    assert "flask-view-raised-marker" in flask_server.log()
