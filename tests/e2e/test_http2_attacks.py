"""HTTP/2 limits and the known attacks (issue 13), each driven with raw frames
against the real binary (tests/e2e/h2wire.py): the concurrent-stream limit
(REFUSED_STREAM beyond it), the header list limit and HPACK bombs, rapid reset
(CVE-2023-44487) in its batched and one-by-one forms, the CONTINUATION flood,
SETTINGS and PING floods, and flow-control windows. After every attack a normal
request on a new connection must be answered promptly: the server stays up.
"""

import os
import struct
import time
from pathlib import Path

import pytest

from h2wire import (
    CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, HEADERS, PING,
    REFUSED_STREAM, RST_STREAM, SETTINGS, WINDOW_UPDATE, RawH2, frame, h2_get, settings_frame,
)

APP = Path(__file__).resolve().parent / "apps" / "h2_app.py"


@pytest.fixture
def server(portico_server, tmp_path):
    (tmp_path / "file.bin").write_bytes(bytes(i % 256 for i in range(100_000)))
    return portico_server("--http", "127.0.0.1:0", "--http2", "--wsgi-file", APP,
                          "--threads", "2", "--static-map", f"/static={tmp_path}")


def still_serving(server):
    """A normal request on a new connection is answered within 2 seconds."""
    started = time.monotonic()
    status, _, body = h2_get(server.port, "/static/file.bin", timeout=5)
    assert status == 200 and len(body) == 100_000
    assert time.monotonic() - started < 2.0


def worker_rss_kib(server):
    """Resident memory of the processes of the server (master and workers), KiB."""
    total = 0
    for pid in [server.proc.pid] + children(server.proc.pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_stream_beyond_the_concurrent_limit_is_refused(server):
    """128 streams may be open at once (nginx's default); the app is slow, so
    all are open when the 129th and later arrive: REFUSED_STREAM for those."""
    with RawH2(server.port) as c:
        c.send(b"".join(c.headers(1 + 2 * i, "/slow?0.3") for i in range(140)))
        c.read_frames(5.0, until=lambda f: len([x for x in f if x.type == RST_STREAM]) >= 12)
        resets = c.resets()
        assert len(resets) >= 12, resets
        assert set(resets.values()) == {REFUSED_STREAM}
        assert min(resets) > 2 * 127, "a stream within the limit was refused"
    still_serving(server)


def test_a_huge_header_list_is_refused_and_the_server_stays_up(server):
    """80 KB of headers, split over CONTINUATION frames (the limit is 32 KiB)."""
    with RawH2(server.port) as c:
        block = c.block("/who", extra=[("x-big-%d" % i, "a" * 4000) for i in range(20)])
        pieces = [block[i:i + 16000] for i in range(0, len(block), 16000)]
        data = frame(HEADERS, END_STREAM, 1, pieces[0])
        for n, piece in enumerate(pieces[1:], 1):
            data += frame(CONTINUATION, END_HEADERS if n == len(pieces) - 1 else 0, 1, piece)
        c.send(data)
        c.read_frames(3.0, until=lambda f: any(x.type in (HEADERS, RST_STREAM) for x in f))
        statuses = c.statuses()
        # Refused: 431 (h2 answers it), a reset, or the connection closed; never served.
        assert statuses.get(1) in (None, 431), statuses
        assert statuses.get(1) == 431 or 1 in c.resets() or c.goaway() or c.closed
    assert not any("GET /who" in line for line in server.lines)
    still_serving(server)


def test_an_hpack_bomb_through_the_dynamic_table_is_cut(server):
    """One 4000-byte field put in the dynamic table, then referenced 2000 times
    at one byte each: 8 MB of decoded headers from a 2 KB frame."""
    with RawH2(server.port) as c:
        c.send(c.headers(1, "/", extra=[("x-big", "a" * 4000)]))
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, c.block("/bomb") + bytes([0x80 | 62]) * 2000))
        c.read_frames(3.0, until=lambda f: c.goaway() is not None)
        assert c.goaway() is not None or 3 in c.resets() or c.statuses().get(3) == 431
        assert c.statuses().get(3) in (None, 431)
    still_serving(server)


def test_rapid_reset_batched_gets_goaway(server):
    """Thousands of HEADERS + RST_STREAM pairs in one go (CVE-2023-44487)."""
    with RawH2(server.port) as c:
        data = b"".join(c.headers(1 + 2 * i, "/slow?1") + frame(RST_STREAM, 0, 1 + 2 * i, struct.pack(">I", 8))
                        for i in range(5000))
        c.send(data)
        c.read_frames(5.0, until=lambda f: c.goaway() is not None)
        assert c.goaway() is not None and c.goaway()[1] == ENHANCE_YOUR_CALM, c.goaway()
    still_serving(server)


def test_rapid_reset_one_by_one_gets_goaway(server):
    """Each stream opened, then reset in a separate write once the server has
    started on it: the server notices and closes with ENHANCE_YOUR_CALM, and the
    app is not run for every stream."""
    with RawH2(server.port) as c:
        for i in range(3000):
            sid = 1 + 2 * i
            if not (c.send(c.headers(sid, "/slow?0.5")) and
                    c.send(frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))):
                break
        c.read_frames(5.0, until=lambda f: c.goaway() is not None)
        assert c.goaway() is not None and c.goaway()[1] == ENHANCE_YOUR_CALM, c.goaway()
    still_serving(server)
    served = [line for line in server.lines if "GET /slow" in line]
    assert len(served) < 300, len(served)


def test_a_continuation_flood_is_cut_with_bounded_memory(server):
    """HEADERS without END_HEADERS, then CONTINUATION frames forever."""
    before = worker_rss_kib(server)
    with RawH2(server.port) as c:
        c.send(frame(HEADERS, 0, 1, c.block("/")))
        sent = 0
        for i in range(100_000):
            if not c.send(frame(CONTINUATION, 0, 1, c.encoder.encode([("x-c%d" % i, "v" * 100)]))):
                break
            sent += 1
        c.read_frames(3.0, until=lambda f: c.goaway() is not None)
        assert sent < 100_000, "the server read 10 MB of CONTINUATION without closing"
        assert c.goaway() is not None or c.closed
    assert worker_rss_kib(server) - before < 20_000
    still_serving(server)


@pytest.mark.parametrize("kind", [SETTINGS, PING])
def test_a_control_frame_flood_is_cut(server, kind):
    """SETTINGS (each must be acknowledged) or PING (each echoed), by the
    hundred thousand: the connection is closed with ENHANCE_YOUR_CALM."""
    payload = struct.pack(">HI", 3, 100) if kind == SETTINGS else b"\0" * 8
    with RawH2(server.port) as c:
        sent = 0
        for _ in range(100_000):
            if not c.send(frame(kind, 0, 0, payload) * 10):
                break
            sent += 10
            if sent % 1000 == 0:
                c.read_frames(0.001)
                if c.goaway() is not None or c.closed:
                    break
        c.read_frames(3.0, until=lambda f: c.goaway() is not None)
        assert c.goaway() is not None and c.goaway()[1] == ENHANCE_YOUR_CALM, (sent, c.goaway())
        acks = len([f for f in c.frames if f.type == kind])
        assert acks < 5000, acks
    still_serving(server)


def test_flow_control_windows_are_respected(server):
    """The client announces a 1000-byte stream window: the server sends exactly
    that much of a 100 KB file, then more only as WINDOW_UPDATE allows."""
    with RawH2(server.port, settings=settings_frame(initial_window_size=1000)) as c:
        c.send(c.headers(1, "/static/file.bin"))
        c.read_frames(1.5)
        assert c.statuses().get(1) == 200
        assert c.data_bytes(1) == 1000
        # Open the stream and the connection windows.
        c.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 200_000))
               + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 200_000)))
        c.read_frames(5.0, until=lambda f: any(x.type == DATA and x.flags & END_STREAM for x in f))
        assert c.data_bytes(1) == 100_000
        body = b"".join(f.payload for f in c.frames if f.type == DATA and f.stream == 1)
        assert body == bytes(i % 256 for i in range(100_000))
    still_serving(server)


def test_a_request_body_beyond_the_window_is_a_flow_control_error(server):
    """The server's stream window is 256 KiB: a client sending 400 KB without
    waiting for WINDOW_UPDATE breaks the protocol and is stopped."""
    with RawH2(server.port) as c:
        c.send(c.headers(1, "/echo", end_stream=False, method="POST"))
        chunk = b"z" * 16_000
        for _ in range(25):
            if not c.send(frame(DATA, 0, 1, chunk)):
                break
        c.read_frames(3.0, until=lambda f: c.goaway() is not None or 1 in c.resets())
        assert c.goaway() is not None or 1 in c.resets()
        assert c.statuses().get(1) is None
    still_serving(server)


def test_an_answer_before_the_body_ends_is_complete_then_the_stream_is_ended(portico_server,
                                                                              tmp_path):
    """The app answers without reading the body (streamed to it: --post-buffering 0;
    else the body is received whole first, test_http2_bodies.py): the client gets
    the whole answer (END_STREAM), then RST_STREAM NO_ERROR asks it to stop sending
    (RFC 9113 §8.1), never CANCEL ahead of the answer."""
    (tmp_path / "file.bin").write_bytes(bytes(i % 256 for i in range(100_000)))
    server = portico_server("--http", "127.0.0.1:0", "--http2", "--wsgi-file", APP,
                            "--threads", "2", "--static-map", f"/static={tmp_path}",
                            "--post-buffering", 0)
    with RawH2(server.port) as c:
        c.send(c.headers(1, "/slow?0", end_stream=False, method="POST"))
        c.send(frame(DATA, 0, 1, b"x" * 16_000))
        c.read_frames(3.0, until=lambda f: any(x.type == RST_STREAM for x in f))
        kinds = [(f.type, f.flags & END_STREAM) for f in c.frames if f.stream == 1]
        assert c.statuses().get(1) == 200
        body = b"".join(f.payload for f in c.frames if f.type == DATA and f.stream == 1)
        assert body == b"slow done\n"
        assert kinds.index((DATA, END_STREAM)) < kinds.index((RST_STREAM, 0)), kinds
        assert c.resets() == {1: 0}
    still_serving(server)


LIMITS_CONF = """
http2_recv_buffer_size 100k;
server {
    listen 127.0.0.1:{port} http2;
    http2_max_concurrent_streams 4;
    http2_max_header_size 2k;
    keepalive_timeout 1s;
    location / { return 200 "ok\\n"; }
}
"""


@pytest.fixture(scope="module")
def limited():
    import shutil
    import tempfile

    import nginx_diff
    root = Path(tempfile.mkdtemp(prefix="portico-h2-limits-", dir="/tmp"))
    side = nginx_diff.PorticoSide("h2limits", LIMITS_CONF, root, {})
    try:
        yield side.start()
    finally:
        side.close()
        shutil.rmtree(root, ignore_errors=True)


def server_settings(c):
    """The server's first SETTINGS frame as {id: value}."""
    c.read_frames(2.0, until=lambda f: any(x.type == SETTINGS and not x.flags for x in f))
    f = next(x for x in c.frames if x.type == SETTINGS and not x.flags)
    return {struct.unpack(">H", f.payload[i:i + 2])[0]: struct.unpack(">I", f.payload[i + 2:i + 6])[0]
            for i in range(0, len(f.payload), 6)}


def test_the_nginx_conf_limits_are_announced_and_enforced(limited):
    port = limited.ports["port"]
    with RawH2(port) as c:
        settings = server_settings(c)
        assert settings.get(3) == 4, settings            # MAX_CONCURRENT_STREAMS
        assert settings.get(6) == 2048, settings         # MAX_HEADER_LIST_SIZE
        assert settings.get(4) == 100 * 1024, settings   # INITIAL_WINDOW_SIZE
        # A 3 KB header list is over the 2k limit: refused, never answered 200.
        c.send(c.headers(1, "/", extra=[("x-big", "a" * 3000)]))
        c.read_frames(2.0, until=lambda f: any(x.stream == 1 and x.type in (HEADERS, RST_STREAM)
                                               for x in f) or c.goaway() is not None)
        assert c.statuses().get(1) != 200
    with RawH2(port) as c:
        c.send(c.headers(1, "/"))
        c.read_frames(2.0, until=lambda f: 1 in c.statuses())
        assert c.statuses()[1] == 200


def test_an_idle_connection_gets_goaway_after_keepalive_timeout(limited):
    """After its requests (before the first one, client_header_timeout applies:
    test_http2_bodies.py)."""
    with RawH2(limited.ports["port"]) as c:
        c.send(c.headers(1, "/"))
        c.read_frames(2.0, until=lambda f: 1 in c.statuses())
        started = time.monotonic()
        c.read_frames(5.0, until=lambda f: c.goaway() is not None)
        assert c.goaway() is not None
        assert 0.8 < time.monotonic() - started < 3.0
