"""An HTTP/1.x upstream for the reverse-proxy tests: it answers with its own name and
echoes what it received, so a test sees exactly what nginx or Portico sent it.

    with EchoBackends("a", "b", "c") as bs:   # three backends on free loopback ports
        bs["a"].addr                           # "127.0.0.1:PORT", for an upstream block
        ... requests through a proxy ...
        bs["a"].seen                           # every request it received, in order

Each answer is JSON: {"name", "request_line", "method", "target", "version",
"headers": [[name, value], ...] (in wire order, as sent), "body_length",
"body_sha1", "conn" (a per-backend connection number), "nth" (requests on that
connection so far, 1-based), "peer" (the proxy's source address)}, with
`Content-Type: application/json`, `X-Backend: NAME`, `Server: echo-backend` and a
fixed `Date` (so the proxy's own Server/Date are told apart from passed ones).

Behaviour, set on the backend (attributes) or per request by a request header
(the header wins; the headers reach the backend only through the proxy, so a test
can steer one request without touching the URI):

| attribute     | header          | effect |
|---------------|-----------------|--------|
| `status`      | X-Echo-Status   | answer with this status (default 200) |
| `delay`       | X-Echo-Delay    | seconds to wait before answering |
| `close`       | X-Echo-Close    | "head": read the request, close without answering; "body": send the head and half the body, then close |
| `slow_read`   | X-Echo-Slow-Read| seconds to wait after the head before reading the request body |
| `size`        | X-Echo-Size     | pad the body with spaces to this many bytes (big responses) |
| `sndbuf`      | -               | SO_SNDBUF of accepted connections (small: a write ends only when the proxy reads) |
| -             | X-Echo-Header   | "Name: value", an extra response header (repeatable) |

`writes` records, per answer, the seconds from the first byte of the head to the
last byte of the body handed to the kernel (the slow-client test reads it).
HTTP/1.1 connections are kept alive unless `Connection: close`; HTTP/1.0 ones are
closed after the answer (keep-alive for 1.0 is not offered).

Run alone: `python echo_backend.py NAME HOST:PORT` (serves until killed).
"""

import hashlib
import json
import socket
import sys
import threading
import time

HEAD_LIMIT = 64 * 1024  # bytes of request head accepted; more is answered 431
IO_TIMEOUT = 30.0  # an idle keep-alive connection is closed after this long
FIXED_DATE = "Thu, 01 Jan 2015 00:00:00 GMT"
REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
           302: "Found", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden",
           404: "Not Found", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class _Closed(Exception):
    """The peer closed the connection (or it timed out) before a whole request."""


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self):
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout, OSError):
            data = b""
        if not data:
            raise _Closed()
        self.buf += data

    def head(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i])
                del self.buf[: i + 4]
                return head
            if len(self.buf) > HEAD_LIMIT:
                raise _Closed()
            self.fill()

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.find(b"\r\n")
        data = bytes(self.buf[:i])
        del self.buf[: i + 2]
        return data

    def chunked(self):
        body = bytearray()
        while True:
            size = int(self.line().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.line():
                    pass
                return bytes(body)
            body += self.exact(size)
            self.exact(2)


class EchoBackend:
    """One backend (see the module doc)."""

    def __init__(self, name, host="127.0.0.1", port=0):
        self.name = name
        self.status = 200
        self.delay = 0.0
        self.close = None
        self.slow_read = 0.0
        self.size = None
        self.sndbuf = None
        self.seen = []
        self.writes = []
        self.conns = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(256)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stopped = False
        self._open = set()
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"echo-{name}")

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopped = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._lock:
            for conn in list(self._open):
                try:
                    conn.close()
                except OSError:
                    pass

    def reset(self):
        """Back to the defaults, records cleared (between test cases)."""
        with self._lock:
            self.status, self.delay, self.close, self.slow_read, self.size = 200, 0.0, None, 0.0, None
            self.seen.clear()
            self.writes.clear()

    def names_seen(self):
        return [r["name"] for r in self.seen]

    # --- serving ------------------------------------------------------------------------

    def _accept(self):
        while not self._stopped:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return
            if self.sndbuf:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            with self._lock:
                self.conns += 1
                number = self.conns
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn, peer, number), daemon=True).start()

    def _serve(self, conn, peer, number):
        conn.settimeout(IO_TIMEOUT)
        reader = _Reader(conn)
        nth = 0
        try:
            while not self._stopped:
                nth += 1
                if not self._one(conn, reader, peer, number, nth):
                    break
        except (_Closed, OSError):
            pass
        finally:
            with self._lock:
                self._open.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _one(self, conn, reader, peer, number, nth):
        """Serve one request; False when the connection must end."""
        head = reader.head()
        lines = head.split(b"\r\n")
        request_line = lines[0].decode("latin-1")
        headers = []
        for raw in lines[1:]:
            k, _, v = raw.decode("latin-1").partition(":")
            headers.append([k, v.strip(" \t")])
        parts = request_line.split(" ")
        method, target, version = (parts + ["", "", ""])[:3]
        get = lambda name: next((v for k, v in headers if k.lower() == name), None)  # noqa: E731
        extra = [v for k, v in headers if k.lower() == "x-echo-header"]
        status = int(get("x-echo-status") or self.status)
        delay = float(get("x-echo-delay") or self.delay)
        close = get("x-echo-close") or self.close
        slow_read = float(get("x-echo-slow-read") or self.slow_read)
        size = int(get("x-echo-size") or self.size or 0)

        if slow_read:
            time.sleep(slow_read)
        te = (get("transfer-encoding") or "").lower()
        if "chunked" in te:
            body = reader.chunked()
        else:
            body = reader.exact(int(get("content-length") or 0))
        record = {
            "name": self.name, "request_line": request_line, "method": method,
            "target": target, "version": version, "headers": headers,
            "body_length": len(body), "body_sha1": hashlib.sha1(body).hexdigest(),
            "conn": number, "nth": nth, "peer": peer[0], "at": time.monotonic(),
        }
        with self._lock:
            self.seen.append(record)
        if delay:
            time.sleep(delay)
        if close == "head":
            return False

        shown = {k: v for k, v in record.items() if k != "at"}
        payload = json.dumps(shown, sort_keys=True).encode() + b"\n"
        if size > len(payload):
            payload += b" " * (size - len(payload))
        conn_hdr = (get("connection") or "").lower()
        keep = version == "HTTP/1.1" and "close" not in conn_hdr
        out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
               "Server: echo-backend", f"Date: {FIXED_DATE}",
               "Content-Type: application/json", f"Content-Length: {len(payload)}",
               f"X-Backend: {self.name}"]
        out += extra
        if not keep:
            out.append("Connection: close")
        data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        if method == "HEAD" or status in (204, 304):
            payload = b""
        started = time.monotonic()
        if close == "body":
            conn.sendall(data + payload[: len(payload) // 2])
            return False
        conn.sendall(data + payload)
        with self._lock:
            self.writes.append(time.monotonic() - started)
        return keep


class EchoBackends:
    """Several EchoBackend by name, started together, stopped at the end of the block."""

    def __init__(self, *names, host="127.0.0.1"):
        self.backends = {n: EchoBackend(n, host) for n in names}

    def __enter__(self):
        for b in self.backends.values():
            b.start()
        return self

    def __exit__(self, *exc):
        for b in self.backends.values():
            b.stop()

    def __getitem__(self, name):
        return self.backends[name]

    def __iter__(self):
        return iter(self.backends.values())

    def subs(self):
        """{name: "127.0.0.1:PORT"} for DiffPair subs (placeholders `{NAME}`)."""
        return {n: b.addr for n, b in self.backends.items()}

    def reset(self):
        for b in self.backends.values():
            b.reset()


def main(argv):
    name, addr = argv[1], argv[2]
    host, _, port = addr.rpartition(":")
    backend = EchoBackend(name, host or "0.0.0.0", int(port)).start()
    print(f"echo backend {name} on {backend.addr}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        backend.stop()


if __name__ == "__main__":
    main(sys.argv)
