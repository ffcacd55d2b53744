"""keepalive_requests and keepalive_timeout, nginx and `portico -c` side by
side on one connection each: the last allowed response says
`Connection: close` and the connection ends; an idle connection is closed
after the timeout; `keepalive_timeout 0` closes after every response.
"""

import socket
import time

import pytest

import nginx_diff

pytestmark = nginx_diff.live_mark()

CONF = """
server {
    listen 127.0.0.1:{port};
    keepalive_requests 3;
    keepalive_timeout 1s;
    location / { return 200 "ka\\n"; }
}
server {
    listen 127.0.0.1:{port2};
    keepalive_timeout 0;
    location / { return 200 "no-ka\\n"; }
}
"""


@pytest.fixture(scope="module")
def pair():
    with nginx_diff.DiffPair(CONF) as p:
        yield p


def exchange_on(sock, n):
    """Send n requests one after another (each after the previous answer):
    the Connection header of each answer, and whether the server then closed."""
    seen = []
    f = sock.makefile("rb")
    for _ in range(n):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status = f.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        conn, length = None, 0
        while True:
            line = f.readline().strip()
            if not line:
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"connection":
                conn = value.strip().lower()
            if name.lower() == b"content-length":
                length = int(value)
        f.read(length)
        seen.append(conn)
    closed = f.read(1) == b""
    return seen, closed


def connect(pair, side, port):
    sock = socket.create_connection(("127.0.0.1", pair.sides[side].ports[port]), timeout=5)
    return sock


@pytest.mark.parametrize("side", ["nginx", "portico"])
def test_keepalive_requests_closes_after_the_last_allowed(pair, side):
    with connect(pair, side, "port") as sock:
        seen, closed = exchange_on(sock, 3)
    assert seen[-1] == b"close"
    assert all(c != b"close" for c in seen[:-1]), seen
    assert closed


@pytest.mark.parametrize("side", ["nginx", "portico"])
def test_keepalive_timeout_zero_closes_after_each_response(pair, side):
    with connect(pair, side, "port2") as sock:
        seen, closed = exchange_on(sock, 1)
    assert seen == [b"close"]
    assert closed


@pytest.mark.parametrize("side", ["nginx", "portico"])
def test_idle_connection_is_closed_after_keepalive_timeout(pair, side):
    with connect(pair, side, "port") as sock:
        assert answered_once(sock)
        started = time.monotonic()
        sock.settimeout(5)
        assert sock.recv(1) == b""
        waited = time.monotonic() - started
    assert 0.5 < waited < 3.0, waited


def answered_once(sock):
    """One request and its whole answer; False if the server closed first."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"ka\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True
