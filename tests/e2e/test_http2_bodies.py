"""HTTP/2 request bodies and connection limits (issues 13 and 16), with raw frames
(h2wire.py) against the real binary, and side by side with the real nginx 1.22
(`listen ... http2`, h2c by prior knowledge) where nginx has the behaviour:

- an h2 request body is received before the app is called, as HTTP/1.1's: a
  stalled body holds no Python worker (a normal request is answered within 100 ms)
  and its stream is reset with PROTOCOL_ERROR after `client_body_timeout`, as
  nginx does; bodies of every size (one through the temporary file) reach the app
  intact;
- a body over the limit gets 413: a Content-Length over it without reading, a body
  growing past it as it comes (`--limit-post`, `client_max_body_size`);
- `keepalive_requests` limits the streams of a connection (GOAWAY, then the close
  once those in flight are done), `keepalive_timeout` closes an idle connection and
  `client_header_timeout` one that never sends a request, as nginx 1.19.7+.
"""

import hashlib
import json
import os
import socket
import statistics
import struct
import time
from pathlib import Path

import pytest

import nginx_diff
from echo_backend import EchoBackends
from h2wire import (
    DATA, END_STREAM, GOAWAY, HEADERS, NO_ERROR, PROTOCOL_ERROR, RST_STREAM, WINDOW_UPDATE, RawH2,
    frame,
    h2_get, h2_request_many,
)

APP = Path(__file__).resolve().parent / "apps" / "h2_app.py"


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def open_files(pid):
    """Paths of the files `pid` and its children have open."""
    out = []
    for p in [pid] + children(pid):
        fds = Path(f"/proc/{p}/fd")
        try:
            for fd in fds.iterdir():
                try:
                    out.append(os.readlink(fd))
                except OSError:
                    pass
        except OSError:
            pass
    return out


def stalled_post(c, stream=1, announced=100, sent=b"ab"):
    """HEADERS of a POST announcing `announced` bytes, then `sent` of them, no end."""
    c.send(c.headers(stream, "/upload", end_stream=False, method="POST",
                     extra=[("content-length", str(announced))] if announced is not None else [])
           + frame(DATA, 0, stream, sent))


def stream_end(c, stream):
    """Wait for stream `stream` to be answered (HEADERS) or reset; return the frames
    of that stream."""
    c.read_frames(10.0, until=lambda fs: any(
        f.stream == stream and (f.type == RST_STREAM or f.type == DATA and f.flags & END_STREAM)
        for f in fs))
    return [f for f in c.frames if f.stream == stream]


def stall_until_reset(c):
    """A stalled POST on stream 1 (`stalled_post`), waited on until the stream ends:
    (seconds it took, its frames)."""
    started = time.monotonic()
    stalled_post(c)
    frames = stream_end(c, 1)
    return time.monotonic() - started, frames


def length_over_the_limit(port):
    """A POST announcing 5000 bytes and sending none on stream 1: (status, reset code
    after the answer, the connection's frames)."""
    with RawH2(port) as c:
        c.send(c.headers(1, "/upload", end_stream=False, method="POST",
                         extra=[("content-length", "5000")]))
        stream_end(c, 1)
        c.read_frames(0.5, until=lambda fs: 1 in c.resets())
        return c.statuses().get(1), c.resets().get(1), c.frames


def body_growing_past_the_limit(port):
    """A POST with no length sending 3000 bytes on stream 1: (status, its frames)."""
    with RawH2(port) as c:
        c.send(c.headers(1, "/upload", end_stream=False, method="POST")
               + frame(DATA, 0, 1, b"x" * 3000))
        frames = stream_end(c, 1)
        return c.statuses().get(1), frames


def assert_echoed(body, data):
    """The app's /echo answer `body` says it read exactly `data`; the parsed answer."""
    doc = json.loads(body)
    assert doc["length"] == len(data)
    assert doc["sha256"] == hashlib.sha256(data).hexdigest()
    return doc


def seconds_until_closed(port, *steps):
    """Connect over plain TCP, run `steps` (bytes: send them; a number: sleep that
    long), read until the server closes: seconds from the connect to the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=8) as s:
        started = time.monotonic()
        for step in steps:
            if isinstance(step, bytes):
                s.sendall(step)
            else:
                time.sleep(step)
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return time.monotonic() - started


# --- the option style: the worker is never held ---------------------------------------


def test_a_stalled_h2_body_holds_no_worker_and_is_reset_after_the_body_timeout(portico_server):
    # One process, one thread: a body that reached the app would hold the only thread.
    server = portico_server("--http", "127.0.0.1:0", "--http2", "--wsgi-file", APP,
                            "--http-timeout", 2)
    with RawH2(server.port) as c:
        started = time.monotonic()
        stalled_post(c)
        time.sleep(0.3)
        times = []
        for _ in range(5):
            t = time.monotonic()
            status, _, body = h2_get(server.port, "/canary", timeout=5)
            times.append(time.monotonic() - t)
            assert status == 200 and b'"path": "/canary"' in body
        assert statistics.median(times) < 0.1, times
        print(f"\ncanary beside a stalled h2 body: median {statistics.median(times) * 1000:.1f} ms, "
              f"max {max(times) * 1000:.1f} ms (new h2c connection each)")
        # The stalled stream: reset with PROTOCOL_ERROR after client_body_timeout, no answer.
        frames = stream_end(c, 1)
        took = time.monotonic() - started
        assert c.resets().get(1) == PROTOCOL_ERROR, frames
        assert not [f for f in frames if f.type == HEADERS], frames
        assert 1.8 < took < 5, took
        # The connection itself is still good.
        c.send(c.headers(3, "/after"))
        c.read_frames(5.0, until=lambda fs: 3 in c.statuses())
        assert c.statuses().get(3) == 200


def test_a_stalled_streamed_h2_body_post_buffering_0_frees_the_worker(portico_server):
    server = portico_server("--http", "127.0.0.1:0", "--http2", "--wsgi-file", APP,
                            "--http-timeout", 1, "--post-buffering", 0)
    with RawH2(server.port) as c:
        took, _ = stall_until_reset(c)
        # The app read the body as it came; the stall still ends with the reset.
        assert c.resets().get(1) == PROTOCOL_ERROR, c.frames
        assert 0.9 < took < 5, took
    t = time.monotonic()
    status, _, _ = h2_get(server.port, "/after", timeout=5)
    assert status == 200 and time.monotonic() - t < 1.0


@pytest.fixture(scope="module")
def body_server(tmp_path_factory):
    """Bodies over 16 KiB go to temporary files in `temp`."""
    from conftest import Server
    temp = tmp_path_factory.mktemp("h2-bodies")
    server = Server(["--http", "127.0.0.1:0", "--http2", "--wsgi-file", str(APP),
                     "--threads", "2"],
                    env={"TMPDIR": str(temp)})
    server.wait_started(1)
    yield server, temp
    server.stop()


@pytest.mark.parametrize("size", [1, 16_384, 16_385, 300_000, 2_500_000])
@pytest.mark.parametrize("with_length", [True, False])
def test_h2_bodies_reach_the_app_intact(body_server, size, with_length):
    server, _ = body_server
    data = os.urandom(size)
    (status, _, body), = h2_request_many(server.port, [("POST", "/echo", data, ())],
                                          lengths=with_length)
    assert status == 200, body[:300]
    doc = assert_echoed(body, data)
    assert doc["content_length"] == (str(size) if with_length else "")


def send_body(c, stream, data, window=65_535):
    """DATA frames of `data` on `stream`, within the flow-control windows (the
    defaults: RawH2 does not acknowledge the server's SETTINGS), waiting for the
    server's WINDOW_UPDATEs. `window`: what is left of both windows."""
    conn_win = stream_win = window
    seen = len(c.frames)
    while data:
        room = min(conn_win, stream_win, 16_384, len(data))
        if room <= 0:
            c.read_frames(2.0, until=lambda fs: any(f.type == WINDOW_UPDATE for f in fs[seen:]))
            new = c.frames[seen:]
            assert any(f.type == WINDOW_UPDATE for f in new), "no WINDOW_UPDATE"
            seen = len(c.frames)
            for f in new:
                if f.type == WINDOW_UPDATE:
                    n = struct.unpack(">I", f.payload)[0] & 0x7FFFFFFF
                    if f.stream == 0:
                        conn_win += n
                    elif f.stream == stream:
                        stream_win += n
            continue
        c.send(frame(DATA, 0, stream, data[:room]))
        data = data[room:]
        conn_win -= room
        stream_win -= room
    return min(conn_win, stream_win)


def test_a_large_h2_body_is_spooled_to_a_temporary_file_before_the_app(body_server):
    server, temp = body_server
    data = os.urandom(200_000)
    with RawH2(server.port) as c:
        c.send(c.headers(1, "/echo", end_stream=False, method="POST",
                         extra=[("content-length", str(len(data)))]))
        left = send_body(c, 1, data[:40_000])
        # Over 16 KiB received: the body is in a temporary file under $TMPDIR.
        deadline = time.monotonic() + 5
        while not any(p.startswith(str(temp)) for p in open_files(server.proc.pid)):
            assert time.monotonic() < deadline, open_files(server.proc.pid)
            time.sleep(0.05)
        send_body(c, 1, data[40_000:], window=left)
        c.send(frame(DATA, END_STREAM, 1, b""))
        frames = stream_end(c, 1)
        body = b"".join(f.payload for f in frames if f.type == DATA)
    assert c.statuses().get(1) == 200, c.frames
    assert_echoed(body, data)
    # The file is gone with the request.
    assert not any(p.startswith(str(temp)) for p in open_files(server.proc.pid))


def test_an_h2_length_over_limit_post_gets_413_without_reading(portico_server):
    server = portico_server("--http", "127.0.0.1:0", "--http2", "--wsgi-file", APP,
                            "--limit-post", 1000)
    status, reset, frames = length_over_the_limit(server.port)
    assert status == 413, frames
    # Then the client is told to stop sending: RST_STREAM NO_ERROR after the answer.
    assert reset == NO_ERROR, frames


def test_an_h2_body_growing_past_limit_post_gets_413(portico_server):
    server = portico_server("--http", "127.0.0.1:0", "--http2", "--wsgi-file", APP,
                            "--limit-post", 1000)
    status, frames = body_growing_past_the_limit(server.port)
    assert status == 413, frames
    status, _, _ = h2_get(server.port, "/after")
    assert status == 200


# --- side by side with nginx 1.22 -----------------------------------------------------

DIFF_CONF = """
client_body_timeout 1s;
client_header_timeout 2s;
keepalive_timeout 3s;
keepalive_requests 3;
client_max_body_size 1k;
server {
    listen 127.0.0.1:{port} http2;
    location / { proxy_pass http://{backend}; }
}
"""


@pytest.fixture(scope="module")
def pair():
    with EchoBackends("up") as backends:
        with nginx_diff.DiffPair(DIFF_CONF, {}, subs={"backend": backends["up"].addr}) as p:
            yield p


SIDES = ("nginx", "portico")


def port(pair, side):
    return pair.sides[side].ports["port"]


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
def test_a_stalled_body_is_reset_with_protocol_error_after_client_body_timeout(pair, side):
    with RawH2(port(pair, side)) as c:
        took, frames = stall_until_reset(c)
        assert c.resets().get(1) == PROTOCOL_ERROR, (side, frames)
        assert 1 not in c.statuses(), side
        assert 0.9 < took < 3, (side, took)
        assert not c.closed and c.goaway() is None, side


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
def test_a_length_over_client_max_body_size_gets_413_then_no_error(pair, side):
    status, reset, frames = length_over_the_limit(port(pair, side))
    assert status == 413, side
    assert reset == NO_ERROR, (side, frames)


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
def test_a_body_growing_past_client_max_body_size_gets_413(pair, side):
    status, frames = body_growing_past_the_limit(port(pair, side))
    assert status == 413, (side, frames)


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
def test_a_body_within_client_max_body_size_reaches_the_upstream(pair, side):
    data = os.urandom(1000)
    (status, _, body), = h2_request_many(port(pair, side), [("POST", "/", data, ())])
    doc = json.loads(body)
    assert status == 200 and doc["body_length"] == 1000, side
    assert doc["body_sha1"] == hashlib.sha1(data).hexdigest()


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("at_once", [False, True])
def test_keepalive_requests_limits_the_streams_of_a_connection(pair, side, at_once):
    with RawH2(port(pair, side)) as c:
        if at_once:
            c.send(b"".join(c.headers(1 + 2 * i, "/") for i in range(5)))
        else:
            for i in range(5):
                c.send(c.headers(1 + 2 * i, "/"))
                c.read_frames(0.3, until=lambda fs, s=1 + 2 * i: s in c.statuses())
        c.read_frames(5.0)
        statuses = c.statuses()
        # Three streams answered, a GOAWAY without error, then the close.
        assert {s: statuses[s] for s in (1, 3, 5) if s in statuses} == {1: 200, 3: 200, 5: 200}, \
            (side, statuses)
        assert 7 not in statuses and 9 not in statuses, (side, statuses)
        goaways = [struct.unpack(">II", f.payload[:8]) for f in c.frames if f.type == GOAWAY]
        assert goaways and goaways[-1][1] == NO_ERROR, (side, goaways)
        assert c.closed, side


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
def test_an_idle_connection_closes_after_keepalive_timeout(pair, side):
    with RawH2(port(pair, side)) as c:
        c.send(c.headers(1, "/"))
        c.read_frames(2.0, until=lambda fs: 1 in c.statuses())
        answered = time.monotonic()
        c.read_frames(8.0)
        took = time.monotonic() - answered
        assert c.statuses().get(1) == 200, side
        assert c.goaway() is not None and c.closed, (side, c.frames)
        assert 2.7 < took < 4.5, (side, took)


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
def test_a_connection_that_sends_no_request_closes_after_client_header_timeout(pair, side):
    with RawH2(port(pair, side)) as c:
        started = time.monotonic()
        c.read_frames(8.0)
        took = time.monotonic() - started
        assert c.closed, side
        assert 1.7 < took < 2.9, (side, took)


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
def test_a_connection_that_stops_inside_its_preface_closes_after_client_header_timeout(pair, side):
    """(A connection that sends nothing at all is held by the kernel's
    TCP_DEFER_ACCEPT on Portico's side: docs/compat.md.)"""
    took = seconds_until_closed(port(pair, side), b"PRI * HTTP/2.0\r\n")
    assert 1.7 < took < 2.9, (side, took)


@nginx_diff.live_mark()
@pytest.mark.parametrize("side", SIDES)
def test_one_client_header_timeout_covers_the_preface_and_the_first_request(pair, side):
    """The preface sent late (1.2 s of the 2 s): the connection still closes 2 s
    after it opened, not 2 s after the preface."""
    took = seconds_until_closed(port(pair, side), b"PRI * HTTP/2.0\r\n", 1.2,
                                b"\r\nSM\r\n\r\n" + frame(0x4, 0, 0))
    assert 1.7 < took < 2.9, (side, took)
