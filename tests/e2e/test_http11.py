"""HTTP/1.1 connection handling and response framing, through the real binary.

Raw sockets (tests/e2e/httpraw.py) for anything about framing or connection
reuse; `requests` where an ordinary client is the point. The app is
tests/e2e/apps/http_routes.py (one process for the whole module).
"""

import email.utils
import socket
import time
from datetime import datetime, timezone

import pytest
import requests

from httpraw import Conn, Incomplete, build, chunked, module_server, parse_all
from conftest import APPS

APP = APPS / "http_routes.py"


@pytest.fixture(scope="module")
def server():
    with module_server("--wsgi-file", APP) as srv:
        yield srv


@pytest.fixture(scope="module")
def streaming_server():
    """Bodies stream to the app as it reads them (`--post-buffering 0`)."""
    with module_server("--wsgi-file", APP, "--post-buffering", "0") as srv:
        yield srv


def get(target, **kw):
    return build("GET", target, **kw)


# --- keep-alive and pipelining ------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(server):
    with Conn.to(server) as conn:
        client_port = str(conn.sock.getsockname()[1])
        for _ in range(5):
            conn.send(get("/port"))
            resp = conn.read_response()
            assert resp.status == 200, resp
            assert resp.body.decode() == client_port, "request served on another connection"
            assert (resp.header("connection") or "").lower() != "close", resp
    # and an ordinary client reuses the connection too
    with requests.Session() as s:
        ports = {s.get(server.url + "/port", timeout=10).text for _ in range(3)}
    assert len(ports) == 1


def test_pipelined_requests_answered_in_order(server):
    with Conn.to(server) as conn:
        conn.send(get("/say/one") + get("/say/two") + get("/say/three"))
        bodies = []
        for _ in range(3):
            resp = conn.read_response()
            assert resp.status == 200 and resp.complete, resp
            bodies.append(resp.body)
    assert bodies == [b"one", b"two", b"three"]


def test_pipelined_requests_with_bodies_stay_in_sync(server):
    reqs = (
        build("POST", "/echo", body=b"first body")
        + build("POST", "/echo", headers=[("Transfer-Encoding", "chunked")], body=chunked(b"second", b" body"))
        + get("/say/third")
    )
    with Conn.to(server) as conn:
        conn.send(reqs)
        bodies = [conn.read_response().body for _ in range(3)]
    assert bodies == [b"first body", b"second body", b"third"]


# --- chunked request bodies ---------------------------------------------------------------

BIG = bytes(range(256)) * 4096  # 1 MiB

CHUNK_LAYOUTS = {
    "single": (chunked(b"hello"), b"hello"),
    "several": (chunked(b"a", b"bc", b"0123456789abcdef" * 2), b"abc" + b"0123456789abcdef" * 2),
    "uppercase_hex": (b"A\r\n0123456789\r\n1F\r\n" + b"x" * 31 + b"\r\n0\r\n\r\n", b"0123456789" + b"x" * 31),
    "leading_zeros": (b"005\r\nhello\r\n0000\r\n\r\n", b"hello"),
    "extensions": (b"5;name=value\r\nhello\r\n6;flag\r\n world\r\n0;last=\"q\"\r\n\r\n", b"hello world"),
    "trailers": (b"5\r\nhello\r\n0\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n", b"hello"),
    "empty": (b"0\r\n\r\n", b""),
    "binary": (chunked(bytes(range(256))), bytes(range(256))),
    "large": (chunked(*[BIG[i : i + 65536] for i in range(0, len(BIG), 65536)]), BIG),
}


@pytest.mark.parametrize("layout", list(CHUNK_LAYOUTS))
def test_chunked_request_body_is_decoded(server, layout):
    body, expected = CHUNK_LAYOUTS[layout]
    head = build("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
    with Conn.to(server) as conn:
        conn.send(head + body)
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.body == expected
        # the connection is still in sync afterwards
        conn.send(get("/say/after"))
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"after")


def test_chunked_request_body_sent_in_pieces(server):
    head = build("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
    pieces = [head[:10], head[10:], b"5\r", b"\nhel", b"lo\r\n", b"6;e", b"xt\r\n wor", b"ld\r\n0\r", b"\n\r\n"]
    with Conn.to(server) as conn:
        for p in pieces:
            conn.send(p)
            time.sleep(0.02)
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"hello world")


# --- Expect: 100-continue -----------------------------------------------------------------


def test_expect_100_continue_sent_before_the_body(server):
    head = build("POST", "/echo", headers=[("Expect", "100-continue"), ("Content-Length", "11")])
    with Conn.to(server, timeout=5) as conn:
        conn.send(head)  # the body is held back until the server asks for it
        interim = conn.read_head()
        assert (interim.version, interim.status) == ("HTTP/1.1", 100), interim
        assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n")
        conn.send(b"hello world")
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"hello world")


def test_by_default_100_continue_comes_before_the_app_runs_even_if_it_ignores_the_body(server):
    # The body is received whole before the app is called (--post-buffering).
    head = build("POST", "/ignore", headers=[("Expect", "100-continue"), ("Content-Length", "11")])
    with Conn.to(server, timeout=5) as conn:
        conn.send(head)
        interim = conn.read_head()
        assert interim.status == 100, interim.raw_head
        conn.send(b"hello world")
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"ignored")


def test_no_100_continue_when_a_streaming_app_never_reads_the_body(streaming_server):
    server = streaming_server
    head = build("POST", "/ignore", headers=[("Expect", "100-continue"), ("Content-Length", "11")])
    with Conn.to(server, timeout=5) as conn:
        conn.send(head)
        first = conn.read_head()
        assert first.status == 200, f"expected the final response first, got {first.raw_head!r}"


def test_body_sent_after_an_unread_expect_is_never_parsed_as_a_request(streaming_server):
    server = streaming_server
    # paths no other test in this module (same server, same log) uses
    smuggled = b"GET /say/smuggled-after-expect HTTP/1.1\r\nHost: localhost\r\n\r\n"
    head = build("POST", "/ignore", headers=[("Expect", "100-continue"), ("Content-Length", str(len(smuggled)))])
    with Conn.to(server, timeout=5) as conn:
        conn.send(head)
        first = conn.read_response(skip_interim=False)
        assert (first.status, first.body) == (200, b"ignored")
        # the body was never asked for: the server closes rather than guess where it ends
        assert first.header("connection") == "close", first.raw_head
        # a client that gave up waiting for 100 sends the body anyway, then its next request;
        # the send may fail (the server may have closed already), the reading may not
        conn.send(smuggled + get("/say/next-after-expect", headers=[("Connection", "close")]))
        rest = conn.read_to_eof()
    assert rest == b"", f"bytes after the final response were answered: {rest!r}"
    assert not [l for l in server.lines if "-after-expect" in l], "the request body reached the app"


# --- HEAD ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/hello", "/nocl"])
def test_head_sends_headers_but_no_body_and_keeps_the_connection(server, path):
    with Conn.to(server) as conn:
        conn.send(build("HEAD", path))
        resp = conn.read_response("HEAD")
        assert resp.status == 200, resp
        if path == "/hello":
            assert resp.header("content-length") == "11", "the app's Content-Length is kept for HEAD"
        stray = conn.read_available(0.3)
        assert stray == b"", f"body bytes after a HEAD response: {stray!r}"
        conn.send(get("/say/next"))
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"next")


# --- HTTP/1.0 -----------------------------------------------------------------------------


def test_http10_without_keep_alive_is_closed_after_the_response(server):
    with Conn.to(server) as conn:
        conn.send(b"GET /hello HTTP/1.0\r\n\r\n")
        resp = conn.read_response()
        assert resp.version in ("HTTP/1.0", "HTTP/1.1")
        assert (resp.status, resp.body, resp.complete) == (200, b"hello world", True), resp
        assert not resp.has_header("transfer-encoding")
        assert conn.wait_closed(3), "server kept an HTTP/1.0 connection open without keep-alive"


def test_http10_without_content_length_is_close_delimited(server):
    with Conn.to(server) as conn:
        conn.send(b"GET /nocl HTTP/1.0\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert not resp.has_header("transfer-encoding"), "chunked coding sent to an HTTP/1.0 client"
        assert resp.body == b"abcdef"
        assert conn.eof or conn.wait_closed(3)


def test_http10_keep_alive_is_honoured(server):
    with Conn.to(server) as conn:
        for word in ("one", "two"):
            conn.send(f"GET /say/{word} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
            resp = conn.read_response()
            assert (resp.status, resp.body) == (200, word.encode()), resp
            assert (resp.header("connection") or "").lower() == "keep-alive", resp
            assert resp.header("content-length") == str(len(word))
        assert conn.read_available(0.3) == b"" and not conn.eof, "connection closed despite keep-alive"


def test_http10_keep_alive_without_content_length_falls_back_to_close(server):
    with Conn.to(server) as conn:
        conn.send(b"GET /nocl HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 200
        assert not resp.has_header("transfer-encoding"), "chunked coding sent to an HTTP/1.0 client"
        assert resp.body == b"abcdef"
        assert conn.eof or conn.wait_closed(3)


def test_connection_close_request_gets_connection_close_and_eof(server):
    with Conn.to(server) as conn:
        conn.send(get("/hello", headers=[("Connection", "close")]))
        resp = conn.read_response()
        assert (resp.status, resp.body) == (200, b"hello world")
        assert (resp.header("connection") or "").lower() == "close", resp
        assert conn.wait_closed(3)


def test_a_closing_answer_and_the_fin_arrive_as_one_segment(server):
    # The last write of an answer the connection closes after waits
    # (MSG_MORE) for the close, so answer and FIN are one segment: the
    # client receives the SYN-ACK, the ACK of its request and that segment
    # (before: 4, the FIN on its own). The fewest of ten connections: a
    # retransmission on a busy machine adds one.
    counts = []
    for _ in range(10):
        with Conn.to(server) as conn:
            conn.send(get("/hello", headers=[("Connection", "close")]))
            resp = conn.read_response()
            assert (resp.status, resp.body) == (200, b"hello world")
            assert conn.wait_closed(3)
            info = conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 192)
            counts.append(int.from_bytes(info[140:144], "little"))  # tcpi_segs_in
    assert min(counts) <= 3, counts


# --- response framing ---------------------------------------------------------------------


def test_app_content_length_is_used_as_is(server):
    with Conn.to(server) as conn:
        conn.send(get("/hello"))
        resp = conn.read_response()
    assert resp.header_all("content-length") == ["11"]
    assert not resp.has_header("transfer-encoding")
    assert resp.body == b"hello world"


def test_no_content_length_on_http11_is_chunked(server):
    with Conn.to(server) as conn:
        conn.send(get("/nocl"))
        resp = conn.read_response()
        assert resp.status == 200
        assert (resp.header("transfer-encoding") or "").lower() == "chunked", resp
        assert not resp.has_header("content-length")
        assert resp.complete, "chunked body not terminated"
        assert resp.body == b"abcdef", "an empty yield must not end the body"
        conn.send(get("/say/next"))
        assert conn.read_response().body == b"next"


def test_app_content_length_shorter_than_body_sends_exactly_that_many_bytes(server):
    with Conn.to(server) as conn:
        conn.send(get("/cl/5/11") + get("/say/after"))
        resp = conn.read_response()
        assert resp.header("content-length") == "5"
        assert resp.body == b"hello"
        # whatever follows must be the next response (or a close), never the extra bytes
        try:
            nxt = conn.read_response()
        except Incomplete as e:
            assert e.data == b"", f"extra bytes after the Content-Length: {e.data!r}"
        else:
            assert (nxt.status, nxt.body) == (200, b"after"), nxt


def test_app_content_length_longer_than_body_cuts_the_connection(server):
    with Conn.to(server) as conn:
        conn.send(get("/cl/20/5"))
        resp = conn.read_response()
        assert resp.header("content-length") == "20"
        assert resp.body == b"hello"
        assert not resp.complete, "server pretended a short body was complete"
        assert conn.eof


@pytest.mark.parametrize("route", ["/status/", "/status-cl/"], ids=["no-length", "app-length"])
@pytest.mark.parametrize("code", [204, 304])
def test_204_and_304_never_carry_a_body(server, code, route):
    with Conn.to(server) as conn:
        conn.send(get(f"{route}{code}") + get("/say/next"))
        resp = conn.read_response()
        assert resp.status == code
        assert not resp.has_header("transfer-encoding"), resp
        if code == 204:
            assert not resp.has_header("content-length"), "RFC 9110 §8.6: no Content-Length in a 204"
        # the next thing on the wire must be the next response, not the app's body
        nxt = conn.read_response()
        assert (nxt.status, nxt.body) == (200, b"next"), nxt


@pytest.mark.parametrize("path", ["/hello", "/nocl", "/missing"])
def test_date_and_server_headers_on_every_response(server, path):
    with Conn.to(server) as conn:
        conn.send(get(path))
        resp = conn.read_response()
    assert resp.header_all("server") == ["portico"], resp
    dates = resp.header_all("date")
    assert len(dates) == 1, resp
    assert dates[0].endswith(" GMT")
    when = email.utils.parsedate_to_datetime(dates[0])
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 60


# --- unread request bodies on keep-alive --------------------------------------------------

SMUGGLED = b"GET /say/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"


def test_ignored_content_length_body_is_drained_not_parsed(server):
    reqs = build("POST", "/ignore", body=SMUGGLED) + get("/say/second", headers=[("Connection", "close")])
    with Conn.to(server) as conn:
        conn.send(reqs)
        data = conn.read_to_eof()
    responses = parse_all(data)
    assert [(r.status, r.body) for r in responses] == [(200, b"ignored"), (200, b"second")], responses


def test_ignored_chunked_body_is_drained_not_parsed(server):
    reqs = build("POST", "/ignore", headers=[("Transfer-Encoding", "chunked")], body=chunked(SMUGGLED[:10], SMUGGLED[10:]))
    reqs += get("/say/second", headers=[("Connection", "close")])
    with Conn.to(server) as conn:
        conn.send(reqs)
        data = conn.read_to_eof()
    responses = parse_all(data)
    assert [(r.status, r.body) for r in responses] == [(200, b"ignored"), (200, b"second")], responses


def test_unread_body_too_big_to_drain_is_answered_with_connection_close(streaming_server):
    # 3 MiB announced, the app reads none of it: more than the server drains (1 MiB),
    # so the answer must say the connection will not be reused. (With bodies received
    # first, the default, the server would wait for the whole body instead.)
    server = streaming_server
    head = b"POST /ignore HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % (3 << 20)
    with Conn.to(server) as conn:
        conn.send(head + b"x" * 100)
        data = conn.read_to_eof()
    (response,) = parse_all(data)
    assert response.status == 200 and response.body == b"ignored"
    assert response.header("connection") == "close", response


def test_partly_read_bodies_are_drained_not_parsed(server):
    reqs = (
        build("POST", "/read3", body=b"012" + SMUGGLED)
        + build("POST", "/read3", headers=[("Transfer-Encoding", "chunked")], body=chunked(b"ab", b"c" + SMUGGLED))
        + get("/say/last", headers=[("Connection", "close")])
    )
    with Conn.to(server) as conn:
        conn.send(reqs)
        data = conn.read_to_eof()
    assert [r.body for r in parse_all(data)] == [b"012", b"abc", b"last"]


# --- half-close and streaming -------------------------------------------------------------


def test_client_half_close_after_a_full_request_is_answered(server):
    with Conn.to(server) as conn:
        conn.send(get("/hello"))
        conn.sock.shutdown(socket.SHUT_WR)
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"hello world")


@pytest.mark.parametrize("path", ["/slow", "/slow-cl"], ids=["chunked", "content-length"])
def test_yielded_block_is_sent_without_waiting_for_the_next(server, path):
    with Conn.to(server) as conn:
        t0 = time.monotonic()
        conn.send(get(path))
        resp = conn.read_head()
        if path == "/slow":
            assert (resp.header("transfer-encoding") or "").lower() == "chunked"
            first = conn.read_exact(int(conn.read_line(), 16))
            t_first = time.monotonic() - t0
            conn.read_exact(2)
            second = conn.read_exact(int(conn.read_line(), 16))
        else:
            assert resp.header("content-length") == "2"
            first = conn.read_exact(1)
            t_first = time.monotonic() - t0
            second = conn.read_exact(1)
        t_second = time.monotonic() - t0
    assert (first, second) == (b"a", b"b")
    assert t_first < 0.8, f"first block arrived after {t_first:.2f}s (held until the next one?)"
    assert t_second - t_first > 0.5
