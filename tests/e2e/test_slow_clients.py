"""Issue 16, item 1 and the timeouts, through the real binary: request bodies
are received before the app is called, so clients that stall hold no Python
thread; the body, head and send timeouts; large bodies through the temporary
file; a slow-client matrix with a canary client.

The servers run 2 processes of 1 thread each, as in the issue, unless a test
needs one worker to show that it is freed.
"""

import hashlib
import os
import re
import socket
import statistics
import threading
import time

import pytest

from conftest import APPS, Server, read_until_close
from test_uwsgi import packet

APP = APPS / "slow_body.py"


# --- helpers ---------------------------------------------------------------------------


def start(*args, workers=1):
    """Start portico with exactly `args`; wait until `workers` workers are ready."""
    server = Server([str(a) for a in args])
    listeners = sum(1 for a in map(str, args) if a in ("--http", "--socket"))
    server.wait_started(listeners)
    deadline = time.monotonic() + 30
    while sum(1 for l in list(server.lines) if "ready to serve" in l) < workers:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    return server


@pytest.fixture
def servers():
    started = []

    def run(*args, workers=1):
        server = start(*args, workers=workers)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


def uwsgi_request(method="GET", path="/", body_length=0):
    """A uwsgi packet as nginx's uwsgi_params would send it."""
    return packet(
        [
            ("QUERY_STRING", ""),
            ("REQUEST_METHOD", method),
            ("CONTENT_TYPE", "application/octet-stream" if body_length else ""),
            ("CONTENT_LENGTH", str(body_length) if body_length else ""),
            ("REQUEST_URI", path),
            ("PATH_INFO", path),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SERVER_PORT", "80"),
            ("SERVER_NAME", "localhost"),
            ("HTTP_HOST", "localhost"),
        ]
    )


def http_request(method="GET", path="/", body_length=0, close=True):
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
    if body_length:
        head += f"Content-Length: {body_length}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode()


def request(wire, **kw):
    return http_request(**kw) if wire == "http" else uwsgi_request(**kw)


def addr_of(server, wire):
    """The (host, port) of the server's `wire` listener (http is listed first)."""
    return server.addresses[0 if wire == "http" else -1]


def listen_args(wire):
    return ["--http", "127.0.0.1:0"] if wire == "http" else ["--socket", "127.0.0.1:0"]


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    assert m, f"no status line in {raw[:200]!r}"
    return int(m.group(1))


def body_of(raw):
    return raw.partition(b"\r\n\r\n")[2]


def timed(addr, data, timeout=10.0):
    """Send one request, read to the close; (seconds, raw response)."""
    started = time.monotonic()
    with socket.create_connection(addr, timeout=timeout) as sock:
        sock.sendall(data)
        raw = read_until_close(sock)
    return time.monotonic() - started, raw


def stall(addr, wire, announced=100, sent=b"ab"):
    """A client that announces a body, sends `sent` of it and stops."""
    sock = socket.create_connection(addr, timeout=30)
    sock.sendall(request(wire, method="POST", path="/upload", body_length=announced) + sent)
    return sock


# --- stalled bodies hold no worker -------------------------------------------------------


@pytest.mark.parametrize("wire", ["http", "uwsgi"])
def test_two_stalled_bodies_leave_a_2x1_server_answering_within_100ms(servers, wire):
    server = servers(
        *listen_args(wire), "--wsgi-file", APP, "--master", "--processes", 2, workers=2
    )
    addr = addr_of(server, wire)
    stalled = [stall(addr, wire) for _ in range(2)]
    try:
        time.sleep(0.5)  # both stalled clients are inside the workers
        times = []
        for _ in range(5):
            took, raw = timed(addr, request(wire, path="/canary"))
            assert status_of(raw) == 200 and body_of(raw) == b"ok", raw[:300]
            times.append(took)
        assert statistics.median(times) < 0.1, times
        assert max(times) < 1.0, times
    finally:
        for sock in stalled:
            sock.close()
    assert "read failed" not in server.log(), "a stalled body reached the app"


@pytest.mark.parametrize("wire", ["http", "uwsgi"])
def test_a_stalled_body_gets_408_after_the_body_timeout_and_never_reaches_the_app(servers, wire):
    timeout_flag = "--http-timeout" if wire == "http" else "--socket-timeout"
    server = servers(*listen_args(wire), "--wsgi-file", APP, timeout_flag, 1)
    addr = addr_of(server, wire)
    started = time.monotonic()
    with stall(addr, wire) as sock:
        raw = read_until_close(sock)
    took = time.monotonic() - started
    assert status_of(raw) == 408, raw[:300]
    assert 0.9 < took < 5, took
    assert "read failed" not in server.log()
    _, raw = timed(addr, request(wire, path="/after"))
    assert status_of(raw) == 200


@pytest.mark.parametrize("wire", ["http", "uwsgi"])
def test_post_buffering_0_streams_and_a_stalled_read_raises_in_the_app_freeing_the_worker(
    servers, wire
):
    timeout_flag = "--http-timeout" if wire == "http" else "--socket-timeout"
    server = servers(
        *listen_args(wire), "--wsgi-file", APP, "--post-buffering", 0, timeout_flag, 1
    )
    addr = addr_of(server, wire)
    started = time.monotonic()
    with stall(addr, wire) as sock:
        raw = read_until_close(sock)
    took = time.monotonic() - started
    # The app saw the body as a stream: its read raised an OSError (TimeoutError).
    server.wait_for_line(r"read failed: TimeoutError: client sent no request body data for 1 s")
    assert status_of(raw) == 408, raw[:300]
    assert 0.9 < took < 5, took
    # The single Python thread is free again.
    took, raw = timed(addr, request(wire, path="/after"))
    assert status_of(raw) == 200 and took < 1.0, (took, raw[:200])


def test_post_buffering_0_still_passes_a_body_that_arrives(servers):
    server = servers("--http", "127.0.0.1:0", "--wsgi-file", APP, "--post-buffering", 0)
    data = os.urandom(300_000)
    _, raw = timed(server.addresses[0], http_request("POST", "/upload", len(data)) + data)
    assert body_of(raw).decode() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


# --- the request head ------------------------------------------------------------------


def test_a_head_not_complete_within_the_header_timeout_gets_408(servers):
    server = servers("--http", "127.0.0.1:0", "--wsgi-file", APP, "--http-timeout", 1)
    started = time.monotonic()
    with socket.create_connection(server.addresses[0], timeout=10) as sock:
        # One deadline for the whole head: trickling bytes does not extend it.
        sock.sendall(b"GET / HTTP/1.1\r\n")
        for _ in range(6):
            time.sleep(0.25)
            try:
                sock.sendall(b"X-Slow: y\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        raw = read_until_close(sock)
    took = time.monotonic() - started
    assert status_of(raw) == 408, raw[:300]
    assert 0.9 < took < 3, took


# --- large bodies through the temporary file ---------------------------------------------


def chunked(data, size=100_000):
    out = bytearray()
    for i in range(0, len(data), size):
        piece = data[i : i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return bytes(out) + b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["length", "chunked", "uwsgi"])
def test_large_bodies_reach_the_app_intact_through_the_temporary_file(servers, framing):
    wire = "uwsgi" if framing == "uwsgi" else "http"
    server = servers(*listen_args(wire), "--wsgi-file", APP)
    data = os.urandom(6 * 1024 * 1024 + 7)
    if framing == "chunked":
        sent = (
            b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + chunked(data)
        )
    else:
        sent = request(wire, method="POST", path="/upload", body_length=len(data)) + data
    _, raw = timed(addr_of(server, wire), sent, timeout=30)
    assert status_of(raw) == 200, raw[:300]
    assert body_of(raw).decode() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def test_limit_post_refuses_a_chunked_body_that_grows_past_it_with_413(servers):
    server = servers("--http", "127.0.0.1:0", "--wsgi-file", APP, "--limit-post", 1000)
    sent = (
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunked(b"z" * 5000, 700)
    )
    _, raw = timed(server.addresses[0], sent)
    assert status_of(raw) == 413, raw[:300]
    # Whole with its head, and streamed to the app (--post-buffering 0): 413 too.
    small = (
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunked(b"z" * 1500, 500)
    )
    _, raw = timed(server.addresses[0], small)
    assert status_of(raw) == 413, raw[:300]
    streaming = servers(
        "--http", "127.0.0.1:0", "--wsgi-file", APP, "--limit-post", 1000, "--post-buffering", 0
    )
    with socket.create_connection(streaming.addresses[0], timeout=10) as sock:
        sock.sendall(small[: small.index(b"\r\n\r\n") + 4])
        time.sleep(0.2)
        sock.sendall(small[small.index(b"\r\n\r\n") + 4 :])
        raw = read_until_close(sock)
    assert status_of(raw) == 413, raw[:300]
    _, raw = timed(
        server.addresses[0],
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunked(b"z" * 900, 700),
    )
    assert body_of(raw).decode().startswith("900 "), raw[:300]


# --- the slow-client matrix --------------------------------------------------------------


class Attackers:
    """Slow clients of every kind, run in threads until stopped."""

    def __init__(self, addr):
        self.addr = addr
        self.stop = threading.Event()
        self.socks = []
        self.threads = []

    def connect(self, rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(30)
        sock.connect(self.addr)
        self.socks.append(sock)
        return sock

    def trickle(self, first, each, interval):
        def run():
            try:
                sock = self.connect()
                sock.sendall(first)
                while not self.stop.wait(interval):
                    sock.sendall(each)
            except OSError:
                pass

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)

    def start(self):
        for _ in range(3):  # header trickle: a byte of header every 0.2 s
            self.trickle(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", b"a", 0.2)
        for _ in range(3):  # body trickle: a byte of a 100 KB body every 0.2 s
            self.trickle(http_request("POST", "/upload", 100_000, close=False), b"b", 0.2)
        for _ in range(3):  # body stall
            self.socks.append(stall(self.addr, "http"))
        for _ in range(2):  # reads nothing of an 8 MiB response
            self.connect(rcvbuf=4096).sendall(http_request("GET", "/big", close=False))
        for _ in range(50):  # silent connections
            self.connect()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(2)
        for sock in self.socks:
            sock.close()


def test_slow_client_matrix_leaves_the_default_server_answering_a_canary(servers, capsys):
    server = servers(
        "--http", "127.0.0.1:0", "--wsgi-file", APP, "--master", "--processes", 2, workers=2
    )
    addr = server.addresses[0]
    attackers = Attackers(addr)
    attackers.start()
    try:
        time.sleep(0.5)
        latencies = []
        for i in range(40):
            took, raw = timed(addr, http_request("GET", f"/canary/{i}"))
            assert status_of(raw) == 200 and body_of(raw) == b"ok", raw[:300]
            latencies.append(took)
            time.sleep(0.05)
    finally:
        attackers.close()
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    with capsys.disabled():
        print(
            f"\ncanary under the slow-client matrix: {len(latencies)} requests answered, "
            f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
        )
    assert "read failed" not in server.log(), "a slow body reached the app"
    assert p50 < 0.1, latencies


# --- nginx.conf's names ------------------------------------------------------------------


def test_nginx_conf_client_header_and_body_timeouts_are_acted_on(tmp_path):
    from nginxctl import portico
    from ports import free_port

    port = free_port()
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""
pid {tmp_path}/nginx.pid;
error_log stderr;
events {{}}
http {{
    access_log off;
    client_header_timeout 1s;
    client_body_timeout 1s;
    client_body_buffer_size 1k;
    client_body_temp_path {tmp_path}/body;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
    )
    (tmp_path / "body").mkdir()
    with portico("-c", conf, "-p", f"{tmp_path}/"):
        addr = ("127.0.0.1", port)
        started = time.monotonic()
        with socket.create_connection(addr, timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            raw = read_until_close(sock)
        assert status_of(raw) == 408 and 0.9 < time.monotonic() - started < 3, raw[:200]
        started = time.monotonic()
        with stall(addr, "http") as sock:
            raw = read_until_close(sock)
        assert status_of(raw) == 408 and 0.9 < time.monotonic() - started < 3, raw[:200]
        # A body past client_body_buffer_size goes through the temp path and is answered.
        data = os.urandom(50_000)
        _, raw = timed(addr, http_request("POST", "/", len(data)) + data)
        assert status_of(raw) == 200, raw[:200]
