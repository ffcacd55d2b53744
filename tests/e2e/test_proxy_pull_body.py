"""A proxied response body streamed with `proxy_buffering off` is pulled from the
upstream socket as the client takes it (crates/proxy/src/pump.rs): the upstream
connection goes back to its keep-alive pool at the end of the body, and a client
that goes away mid-body closes it (never pooled). Both as nginx 1.22 does, run
against nginx first, then Portico, on the same config and the same echo backends
(echo_backend.py: its answer starts with a JSON record naming the backend's
connection number `conn` and the request's place on it `nth`; `X-Echo-Size` pads
it with spaces to a big body).
"""

import json
import socket
import time

import pytest

import nginx_diff
from echo_backend import EchoBackends
from nginx_diff import DiffPair

pytestmark = nginx_diff.proxy_live_mark()

KA = 'proxy_http_version 1.1; proxy_set_header Connection "";'
CONF = f"""
upstream kept {{ server {{kept}}; keepalive 8; }}
upstream gone {{ server {{gone}}; keepalive 8; }}
server {{
    listen 127.0.0.1:{{port}};
    location /kept/ {{ proxy_buffering off; proxy_pass http://kept; {KA} }}
    location /gone/ {{ proxy_buffering off; proxy_pass http://gone; {KA} }}
}}
"""
SIDES = ("nginx", "portico")


@pytest.fixture(scope="module")
def backends():
    with EchoBackends("kept", "gone") as bs:
        yield bs


@pytest.fixture(scope="module")
def pair(backends):
    with DiffPair(CONF, subs=backends.subs()) as p:
        yield p


def record(body):
    """The echo backend's JSON record at the start of a (padded) body."""
    return json.JSONDecoder().raw_decode(body.decode("latin-1"))[0]


@pytest.mark.parametrize("side", SIDES)
def test_the_connection_is_pooled_at_the_end_of_a_streamed_body(pair, side):
    size = 300_000  # far more than one read: the body is streamed, not in the head's read
    first = pair.fetch(side, "GET", "/kept/a", {"X-Echo-Size": str(size)})
    assert first.status == 200 and len(first.body) == size and first.complete, first
    second = pair.fetch(side, "GET", "/kept/b")
    assert second.status == 200, second
    a, b = record(first.body), record(second.body)
    assert (b["conn"], b["nth"]) == (a["conn"], a["nth"] + 1), (a, b)


def open_connections(backend):
    with backend._lock:
        return set(backend._open)


@pytest.mark.parametrize("side", SIDES)
def test_a_client_gone_mid_body_closes_the_upstream_connection(pair, backends, side):
    gone = backends["gone"]
    already = open_connections(gone)  # the other side's pooled one, say
    conns_before = gone.conns
    with socket.create_connection(("127.0.0.1", pair.sides[side].ports["port"]), 10) as s:
        s.sendall(b"GET /gone/x HTTP/1.1\r\nHost: localhost\r\nX-Echo-Size: 67108864\r\n\r\n")
        got = b""
        while len(got) < 256 * 1024:
            chunk = s.recv(65536)
            assert chunk, got[:300]
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got[:300]
        # Gone with 64 MiB unread: a reset, as a closed browser tab.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert gone.conns == conns_before + 1
    deadline = time.monotonic() + 5
    while open_connections(gone) - already and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not open_connections(gone) - already, f"{side} kept the upstream connection (pooled?)"
    after = pair.fetch(side, "GET", "/gone/y")
    assert after.status == 200 and record(after.body)["nth"] == 1, after
    assert gone.conns == conns_before + 2, "a new connection: the old one was not pooled"
