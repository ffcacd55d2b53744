"""A slow client does not hold the upstream: with `proxy_buffering on` (the default),
a client reading 1 byte per second of a 1 MiB response leaves the upstream free at
once; the upstream sees its whole response consumed in well under a second
(measured in the backend: echo_backend's `writes`, the time from the first byte of
the head to the last byte of the body accepted by the kernel, with a 16 KiB send
buffer so a write ends only when the proxy has read nearly all of it).

The control, `proxy_buffering off`, shows the measure means something: there the
backend's write is still blocked after two seconds, as long as the client reads
slowly. It needs `listen ... sndbuf=16k` (honoured by both sides): without it,
Linux grows the proxy's send buffer to the client past 1 MiB on loopback and
the kernel alone would swallow the response (observed with nginx: 0.15 s,
unbuffered). Run against nginx first, then against the other side, same config.

Skipped (nginx_diff.proxy_live_mark) only while `portico -t` refuses proxy_pass.
"""

import socket
import time

import pytest

import nginx_diff
from echo_backend import EchoBackends
from nginx_diff import DiffPair

pytestmark = nginx_diff.proxy_live_mark()

MIB = 1024 * 1024
SNDBUF = 16 * 1024  # the backend's send buffer: a write ends only as the proxy reads
RCVBUF = 4 * 1024  # the slow client's receive buffer: the proxy cannot park the body there
FREED_WITHIN = 0.5  # "well under a second": the whole 1 MiB taken (nginx: ~0.2 s, loaded box)
HELD_FOR = 2.0  # the control: still writing after this long

CONF = """
server {
    listen 127.0.0.1:{port} sndbuf=16k;
    location /buffered/ { proxy_pass http://{big}; }
    location /unbuffered/ {
        proxy_buffering off;
        proxy_pass http://{big};
    }
}
"""


@pytest.fixture(scope="module")
def big():
    with EchoBackends("big") as bs:
        b = bs["big"]
        b.size = MIB
        b.sndbuf = SNDBUF
        yield b


@pytest.fixture(scope="module")
def pair(big):
    with DiffPair(CONF, subs={"big": big.addr}) as p:
        yield p


class SlowClient:
    """A client with a tiny receive buffer that reads one byte per second."""

    def __init__(self, port, target):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        self.got = b""

    def read_one(self):
        self.got += self.sock.recv(1)

    def close(self):
        self.sock.close()


def slow_read(pair, side, backend, target, seconds):
    """Start a slow client on `side`; read 1 byte/s for `seconds`; return the backend's
    write time for this response (None if still writing) and the bytes read."""
    backend.writes.clear()
    client = SlowClient(pair.sides[side].ports["port"], target)
    started = time.monotonic()
    try:
        client.read_one()
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
            client.read_one()
        return (backend.writes[0] if backend.writes else None), client.got
    finally:
        client.close()
        time.sleep(0.2)  # the backend's blocked write ends with the closed connection


@pytest.mark.parametrize("side", ["nginx", "portico"])
def test_buffered_slow_client_frees_the_upstream(pair, big, side):
    written, got = slow_read(pair, side, big, "/buffered/slow", 1.5)
    assert len(got) >= 2 and b"HTTP/1.1 200 OK".startswith(got), got  # 1 byte a second
    assert written is not None, f"{side}: the backend was still writing after 1.5 s"
    assert written < FREED_WITHIN, f"{side}: the backend needed {written:.3f} s to write 1 MiB"


@pytest.mark.parametrize("side", ["nginx", "portico"])
def test_unbuffered_slow_client_holds_the_upstream(pair, big, side):
    """The control: without buffering the upstream waits for the client."""
    written, got = slow_read(pair, side, big, "/unbuffered/slow", HELD_FOR)
    assert len(got) >= 2 and b"HTTP/1.1 200 OK".startswith(got), got  # 1 byte a second
    assert written is None, f"{side}: unbuffered, yet the backend wrote 1 MiB in {written:.3f} s"
