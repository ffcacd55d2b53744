"""Hop-by-hop response fields are removed in one place, the response writer, for
every handler (docs/compat.md "Hop-by-hop response fields"): an upstream's
`Connection`, `Keep-Alive`, `Transfer-Encoding`, `TE`, `Trailer`, `Upgrade`,
`Proxy-*` and the names its `Connection` lists never reach the client, and the
client's response carries exactly one framing, Portico's own.

Through `proxy_pass` (an upstream answering chunked with every hop-by-hop field)
and `uwsgi_pass` (a uwsgi peer answering with a length and hop-by-hop fields),
side by side with nginx 1.22 on the same config: the fields nginx drops too
(`Connection`, `Keep-Alive`, `Transfer-Encoding`) are asserted on both sides; the
ones nginx passes on and Portico drops are exactly the documented set.
"""

import socket
import threading

import pytest

import nginx_diff
from nginx_diff import SELFTEST, DiffPair

pytestmark = nginx_diff.proxy_live_mark()

HOP_FIELDS = (
    b"Connection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n"
    b"Upgrade: h2c\r\nTrailer: X-Sum\r\nProxy-Foo: x\r\nTE: trailers\r\nX-App: yes\r\n"
)
HTTP_ANSWER = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + HOP_FIELDS
               + b"\r\n5\r\nhello\r\n0\r\n\r\n")
UWSGI_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" + HOP_FIELDS + b"\r\nhello"
# nginx 1.22 passes these on; Portico drops them (docs/compat.md).
PORTICO_ALSO_DROPS = {"x-hop", "upgrade", "trailer", "proxy-foo", "te"}
HOP_NAMES = {"connection", "keep-alive", "x-hop", "upgrade", "trailer", "proxy-foo", "te"}


class RawUpstream:
    """Answers every request (HTTP: per head, keep-alive; uwsgi: per packet, then
    closes) with fixed bytes."""

    def __init__(self, answer, uwsgi=False):
        self.answer = answer
        self.uwsgi = uwsgi
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        buf = b""
        with conn:
            try:
                while True:
                    if self.uwsgi:
                        while len(buf) < 4:
                            buf += self._recv(conn)
                        size = 4 + int.from_bytes(buf[1:3], "little")
                        while len(buf) < size:
                            buf += self._recv(conn)
                        conn.sendall(self.answer)
                        return
                    while b"\r\n\r\n" not in buf:
                        buf += self._recv(conn)
                    buf = buf.split(b"\r\n\r\n", 1)[1]
                    conn.sendall(self.answer)
            except (OSError, EOFError):
                return

    @staticmethod
    def _recv(conn):
        data = conn.recv(65536)
        if not data:
            raise EOFError
        return data

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def pair():
    http = RawUpstream(HTTP_ANSWER)
    uwsgi = RawUpstream(UWSGI_ANSWER, uwsgi=True)
    body = """
        upstream hop { server {h}; keepalive 4; }
        server {
            listen 127.0.0.1:{port};
            location /http/ {
                proxy_pass http://hop;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
            }
            location /uwsgi/ { uwsgi_pass {u}; }
        }
    """
    try:
        with DiffPair(body, subs={"h": http.addr, "u": uwsgi.addr}) as p:
            yield p
    finally:
        http.close()
        uwsgi.close()


def names(answer):
    return [k.lower() for k, _ in answer.raw_headers]


def check_one_framing(answer, framing):
    got = names(answer)
    if framing == "chunked":
        assert got.count("transfer-encoding") == 1 and "content-length" not in got, got
        assert answer.headers["transfer-encoding"] == "chunked" and answer.chunked, answer
    elif framing == "length":
        assert got.count("content-length") == 1 and "transfer-encoding" not in got, got
    else:
        assert "content-length" not in got and "transfer-encoding" not in got, got


@pytest.mark.parametrize("path, framing", [("/http/x", "chunked"), ("/uwsgi/x", "length")])
def test_hop_by_hop_fields_never_reach_the_client_and_one_framing_goes(pair, path, framing):
    a, b = pair.both("GET", path)
    for answer in (a, b):
        assert answer.status == 200 and answer.body == b"hello" and answer.complete, answer
        assert answer.headers.get("x-app") == "yes", answer
        check_one_framing(answer, framing)
        # Only the server's own Connection, if any: nginx says keep-alive, Portico
        # nothing on a kept HTTP/1.1 answer; never the upstream's list.
        assert "keep-alive" not in names(answer), answer
        assert names(answer).count("connection") <= 1, answer
        assert answer.headers.get("connection") in (None, "close", "keep-alive"), answer
    if SELFTEST:
        return
    assert b.headers.get("connection") is None, b
    dropped_by_portico = HOP_NAMES - set(names(b))
    assert dropped_by_portico == HOP_NAMES, names(b)
    # (nginx's own `Connection: keep-alive` is not the upstream's.)
    passed_by_nginx = (HOP_NAMES - {"connection"}) & set(names(a))
    assert passed_by_nginx <= PORTICO_ALSO_DROPS, (passed_by_nginx, names(a))


def test_an_http_1_0_client_gets_the_body_closed_not_chunked(pair):
    for answer in pair.both("GET", "/http/x", version="HTTP/1.0"):
        assert answer.status == 200 and answer.body == b"hello", answer
        check_one_framing(answer, "close")
        assert answer.headers.get("connection") in (None, "close"), answer
    if not SELFTEST:
        assert not (HOP_NAMES - {"connection"}) & set(names(answer)), names(answer)
