"""A small raw-HTTP/1.x client for the end-to-end tests.

It sends exact bytes and parses what comes back without any leniency a real
client would add: the status line and headers as sent, the body framed by
Content-Length, chunked coding or the connection close, and whether the body
was complete (a response cut short by the server is reported, not hidden).

Also here: `module_server`, a context manager that starts one portico process
for a whole test module (the conftest fixture is per test; starting the
interpreter once per module keeps the suite fast).
"""

import contextlib
import socket
import time

DEFAULT_TIMEOUT = 10.0


class Response:
    """One parsed HTTP response."""

    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []  # [(name, value)] as sent, latin-1 decoded
        self.raw_head = b""
        self.body = b""
        self.framing = ""  # "length" | "chunked" | "close" | "none"
        self.complete = False  # False: the connection ended before the body did
        self.chunks = []  # raw chunk payloads, for chunked bodies
        self.trailers = []
        self.interim = []  # 1xx responses received before this one

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name):
        return bool(self.header_all(name))

    def __repr__(self):
        return (
            f"<Response {self.version} {self.status} {self.reason!r} headers={self.headers!r} "
            f"framing={self.framing} complete={self.complete} body={self.body[:200]!r}>"
        )


class Incomplete(Exception):
    """The peer closed the connection before a complete status line and headers."""

    def __init__(self, data):
        super().__init__(f"connection closed after {len(data)} bytes: {bytes(data[:300])!r}")
        self.data = bytes(data)


class SocketHolder:
    """`with` support for a client holding its connection in `self.sock`:
    leaving the block closes it, an already broken socket included."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Conn(SocketHolder):
    """A client connection with its own read buffer (so pipelined responses parse in order)."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT, sock=None, source=None):
        """`source`: a local address to connect from (e.g. 127.0.5.1, for ip_hash)."""
        if sock is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            if source is not None:
                sock.bind((source, 0))
            sock.connect((host, port))
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    @classmethod
    def to(cls, server, timeout=DEFAULT_TIMEOUT):
        return cls(server.host, server.port, timeout)

    def send(self, data):
        """Send all bytes; return False if the peer already closed (EPIPE/ECONNRESET)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def settimeout(self, timeout):
        self.sock.settimeout(timeout)

    def _fill(self):
        """Read more bytes into the buffer; return False at EOF (or reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_line(self):
        """Return one line including its CRLF; raise Incomplete at EOF."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if not self._fill():
                raise Incomplete(self.buf)

    def read_exact(self, n):
        """Return up to n bytes; fewer only if the connection ended."""
        while len(self.buf) < n:
            if not self._fill():
                break
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_available(self, wait=0.3):
        """Return whatever arrives within `wait` seconds (b"" if nothing or EOF)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            while True:
                if not self._fill():
                    break
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(old)
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_to_eof(self):
        while self._fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def wait_closed(self, timeout=3.0):
        """True if the server closes the connection within `timeout` with no further bytes
        (leftover bytes are kept in self.leftover)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self._fill():
                    break
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)
        self.leftover = bytes(self.buf)
        return self.eof

    def read_head(self):
        """Read a status line and header block; return a Response without a body."""
        resp = Response()
        raw = bytearray()
        line = self.read_line()
        raw += line
        parts = line.rstrip(b"\r\n").split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise AssertionError(f"not an HTTP status line: {line!r} (buffer {bytes(self.buf[:200])!r})")
        resp.version = parts[0].decode("latin-1")
        resp.status = int(parts[1])
        resp.reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
        while True:
            line = self.read_line()
            raw += line
            if line in (b"\r\n", b"\n"):
                break
            name, sep, value = line.rstrip(b"\r\n").partition(b":")
            if not sep:
                raise AssertionError(f"bad header line in response: {line!r}")
            resp.headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        resp.raw_head = bytes(raw)
        return resp

    def read_response(self, method="GET", skip_interim=True):
        """Read one response, framed as RFC 9112 §6.3 says; 1xx responses are collected
        into .interim unless skip_interim is False."""
        interim = []
        while True:
            resp = self.read_head()
            if 100 <= resp.status < 200 and resp.status != 101 and skip_interim:
                interim.append(resp)
                continue
            break
        resp.interim = interim
        self._read_body(resp, method)
        return resp

    def _read_body(self, resp, method):
        te = ",".join(resp.header_all("transfer-encoding")).lower()
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.framing = "none"
            resp.complete = True
            return
        if te:
            if te.replace(" ", "").split(",")[-1] != "chunked":
                raise AssertionError(f"unexpected Transfer-Encoding {te!r}")
            resp.framing = "chunked"
            body = bytearray()
            try:
                while True:
                    size_line = self.read_line()
                    if not size_line.endswith(b"\r\n"):
                        raise AssertionError(f"chunk size line without CRLF: {size_line!r}")
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while True:
                            t = self.read_line()
                            if t == b"\r\n":
                                break
                            resp.trailers.append(t)
                        resp.complete = True
                        break
                    data = self.read_exact(size)
                    body += data
                    resp.chunks.append(data)
                    if len(data) < size:
                        break
                    crlf = self.read_exact(2)
                    if len(crlf) < 2:
                        break
                    if crlf != b"\r\n":
                        raise AssertionError(f"chunk not followed by CRLF: {crlf!r}")
            except Incomplete:
                pass
            resp.body = bytes(body)
            return
        cl = resp.header_all("content-length")
        if cl:
            if len(set(cl)) != 1:
                raise AssertionError(f"several Content-Length values in response: {cl}")
            n = int(cl[0])
            resp.framing = "length"
            resp.body = self.read_exact(n)
            resp.complete = len(resp.body) == n
            return
        resp.framing = "close"
        resp.body = self.read_to_eof()
        resp.complete = True


def build(method="GET", target="/", headers=(), body=b"", version="HTTP/1.1", host="localhost"):
    """Build a request's bytes. `headers` is a list of (name, value) (str or bytes).
    A Host header is added for HTTP/1.1 unless host is None or headers already have one.
    Content-Length is added when there is a body and no framing header was given."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("latin-1")

    lines = [b(method) + b" " + b(target) + b" " + b(version)]
    names = {b(k).lower() for k, _ in headers}
    if host is not None and b"host" not in names and version == "HTTP/1.1":
        lines.append(b"Host: " + b(host))
    for k, v in headers:
        lines.append(b(k) + b": " + b(v))
    if body and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + b(body)


def chunked(*pieces, trailers=b""):
    """Encode pieces as a chunked body (a final zero chunk and optional raw trailer lines)."""
    out = bytearray()
    for p in pieces:
        if p:
            out += b"%x\r\n" % len(p) + p + b"\r\n"
    out += b"0\r\n" + trailers + b"\r\n"
    return bytes(out)


def exchange(server, data, method="GET", timeout=DEFAULT_TIMEOUT):
    """Open a connection, send `data`, read one response; return (response, conn).
    The caller closes conn (use it to check whether the server closed)."""
    conn = Conn.to(server, timeout)
    conn.send(data)
    return conn.read_response(method), conn


def one(server, data, method="GET", timeout=DEFAULT_TIMEOUT):
    """Send `data` on a fresh connection and return the single response."""
    resp, conn = exchange(server, data, method, timeout)
    conn.close()
    return resp


def parse_all(data, method="GET"):
    """Parse every response in a byte string (e.g. everything read until close)."""
    src = _BytesConn(data)
    out = []
    while src.buf:
        out.append(src.read_response(method))
    return out


class _BytesConn(Conn):
    def __init__(self, data):
        self.buf = bytearray(data)
        self.eof = True
        self.reset = False

    def _fill(self):
        return False


@contextlib.contextmanager
def module_server(*args, env=None, cwd=None):
    """Start portico once (plus `--http 127.0.0.1:0`) and stop it at the end."""
    from conftest import Server  # the fixture module; same sys.path entry as this file

    server = Server(["--http", "127.0.0.1:0"] + [str(a) for a in args], env=env, cwd=cwd)
    try:
        server.wait_started()
        yield server
    finally:
        server.stop()
