"""The app of the compression tests (tests/e2e/test_compression.py): bodies of a
size the path asks for, made of the same deterministic text the test makes
(`text(n)` below), sent whole or in pieces, with or without a length.

    /size/N       text/html, N bytes, one piece, Content-Length
    /pieces/N     text/html, N bytes in 100-byte pieces, no length
    /one/N        text/html, N bytes as one yielded piece, no length
    /json/N       application/json, N bytes, Content-Length
    /etag/N       text/html with a strong ETag and Accept-Ranges
    /encoded/N    already gzipped by the app (Content-Encoding: gzip)
    /auto/N       text/plain marked `uWSGI-Encoding: gzip` (--http-auto-gzip)
    /status/N     status N with a 100-byte text/html body
    /slow/N       text/html: N bytes, then a pause of 2 s, then "end\n"
"""

import gzip
import time


def text(n):
    """n bytes of compressible text, the same every time."""
    line = b"line %06d of the compression test, portico vs nginx\n"
    out = b"".join(line % i for i in range(n // 50 + 1))
    return out[:n]


def application(environ, start_response):
    parts = environ["PATH_INFO"].strip("/").split("/")
    if parts[0] == "app":  # behind `location /app/` in the nginx.conf tests
        parts = parts[1:]
    kind = parts[0]
    n = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    html = ("Content-Type", "text/html; charset=utf-8")
    if kind == "size":
        body = text(n)
        start_response("200 OK", [html, ("Content-Length", str(len(body)))])
        return [body]
    if kind == "pieces":
        body = text(n)
        start_response("200 OK", [html])
        return (body[i:i + 100] for i in range(0, len(body), 100))
    if kind == "one":
        body = text(n)
        start_response("200 OK", [html])
        return iter([body])
    if kind == "json":
        body = text(n)
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if kind == "etag":
        body = text(n)
        start_response("200 OK", [html, ("ETag", '"v1-abc"'), ("Accept-Ranges", "bytes"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if kind == "encoded":
        body = gzip.compress(text(n))
        start_response("200 OK", [html, ("Content-Encoding", "gzip"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if kind == "auto":
        start_response("200 OK", [("Content-Type", "text/plain"), ("uWSGI-Encoding", "gzip")])
        return iter([text(n)])
    if kind == "status":
        body = text(100)
        start_response(f"{n} Whatever", [html, ("Content-Length", str(len(body)))])
        return [body]
    if kind == "slow":
        start_response("200 OK", [html])

        def pieces():
            yield text(n)
            time.sleep(2)
            yield b"end\n"
        return pieces()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such route\n"]
