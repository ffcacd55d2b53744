"""A small HTTPS client for the TLS tests, on Python's `ssl`: one request per
connection (`Connection: close`), with control over SNI, protocol version,
TLS 1.2 cipher, client certificate and session resumption, and the facts of
the handshake in the answer.

    r = tls_get(port, cafile=pki.root, sni="localhost")
    r.status, r.body, r.version, r.cipher, r.peer_der, r.session, r.reused
"""

import socket
import ssl
from collections import namedtuple

TlsAnswer = namedtuple("TlsAnswer", "status head body version cipher peer_der session reused")


def context(cafile=None, cert=None, version=None, ciphers=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile=str(cafile))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if version:
        ctx.minimum_version = version
        ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def read_all(sock):
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError, ssl.SSLZeroReturnError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def dechunk(body):
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def tls_get(port, path="/", *, sni="localhost", host=None, ctx=None, session=None, timeout=10.0,
            **ctx_args):
    """GET `path` over TLS on 127.0.0.1:`port`; `sni=None` sends no SNI (and skips the
    name check); `host=""` sends an HTTP/1.0 request without Host. Raises
    ssl.SSLError when the handshake fails."""
    if ctx is None:
        if sni is None:
            ctx_args.setdefault("verify", False)
        ctx = context(**ctx_args)
    if host == "":
        request = f"GET {path} HTTP/1.0\r\n\r\n"
    else:
        host = host or sni or "localhost"
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni, session=session) as s:
            s.sendall(request.encode())
            data = read_all(s)
            head, _, body = data.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
            if b"transfer-encoding: chunked" in head.lower():
                body = dechunk(body)
            return TlsAnswer(status, head.decode("latin-1"), body, s.version(), s.cipher()[0],
                             s.getpeercert(binary_form=True), s.session, s.session_reused)
