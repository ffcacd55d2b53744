"""Test app: start_response, write() and body edge cases (tests/e2e/test_pep3333.py).

Routed by PATH_INFO; see ROUTES. Bad start_response calls are not caught, so
the server sees them (it must answer 500 and send nothing the app injected).
"""

import sys

TEXT = ("Content-Type", "text/plain")

HOP_BY_HOP = {
    "connection": ("Connection", "close"),
    "transfer-encoding": ("Transfer-Encoding", "chunked"),
    "keep-alive": ("Keep-Alive", "timeout=5"),
    "upgrade": ("Upgrade", "websocket"),
    "proxy-connection": ("Proxy-Connection", "keep-alive"),
    "proxy-authenticate": ("Proxy-Authenticate", "Basic"),
    "proxy-authorization": ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
    "te": ("TE", "trailers"),
    "trailer": ("Trailer", "X-Checksum"),
}

BAD_START = {
    "status-bytes": (b"200 OK", [TEXT]),
    "status-int": (200, [TEXT]),
    "status-bare": ("200", [TEXT]),
    "status-no-code": ("OK", [TEXT]),
    "status-short-code": ("20 OK", [TEXT]),
    "headers-tuple-not-list": ("200 OK", (TEXT,)),
    "header-value-int": ("200 OK", [TEXT, ("X-Number", 1)]),
    "header-name-bytes": ("200 OK", [TEXT, (b"X-Bytes", "v")]),
    "header-value-bytes": ("200 OK", [TEXT, ("X-Bytes", b"v")]),
    "header-three-items": ("200 OK", [TEXT, ("X-A", "b", "c")]),
    "header-value-crlf": ("200 OK", [TEXT, ("X-Evil", "a\r\nSet-Cookie: pwned=1")]),
    "header-value-lf": ("200 OK", [TEXT, ("X-Evil", "a\nX-Injected: pwned")]),
    "header-value-cr": ("200 OK", [TEXT, ("X-Evil", "a\rX-Injected: pwned")]),
    "header-name-crlf": ("200 OK", [TEXT, ("X-Evil\r\nX-Injected", "pwned")]),
    "header-name-colon": ("200 OK", [TEXT, ("X-Evil: pwned\r\nX", "y")]),
    "header-value-non-latin1": ("200 OK", [TEXT, ("X-Euro", "\u20ac pwned")]),
    "status-crlf": ("200 OK\r\nX-Injected: pwned", [TEXT]),
    "status-100": ("100 Continue", [TEXT]),
    "status-101": ("101 Switching Protocols", [TEXT]),
    "status-103": ("103 Early Hints", [TEXT]),
    "header-content-length-abc": ("200 OK", [TEXT, ("Content-Length", "abc")]),
    "header-content-length-negative": ("200 OK", [TEXT, ("Content-Length", "-1")]),
    "header-two-content-lengths": ("200 OK", [TEXT, ("Content-Length", "2"), ("Content-Length", "3")]),
    "header-status": ("200 OK", [TEXT, ("Status", "200 OK")]),
}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    name = path.strip("/")

    if name in BAD_START:
        status, headers = BAD_START[name]
        start_response(status, headers)
        return [b"should not be sent"]

    if name.startswith("hop/"):
        start_response("200 OK", [TEXT, HOP_BY_HOP[name[4:]]])
        return [b"should not be sent"]

    if name == "exc-before-output":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Before", "1")])
        try:
            raise ValueError("something went wrong")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/html")], sys.exc_info())
        return [b"replaced"]

    if name == "exc-after-output":
        start_response("200 OK", [TEXT])

        def gen():
            yield b"partial"
            try:
                raise ValueError("pep-exc-after-output-marker")
            except ValueError:
                start_response("500 Internal Server Error", [TEXT], sys.exc_info())
            yield b"must not be reached"

        return gen()

    if name == "second-start-response":
        start_response("200 OK", [TEXT])
        try:
            start_response("201 Created", [TEXT])
        except Exception as e:  # the PEP requires an error here
            return [b"raised " + type(e).__name__.encode()]
        return [b"did not raise"]

    if name == "write":
        write = start_response("200 OK", [TEXT])
        write(b"first-")
        write(b"second-")
        return [b"third-", b"fourth"]

    if name == "write-only":
        write = start_response("200 OK", [TEXT, ("Content-Length", "10")])
        write(b"write-only")
        return []

    if name == "str-chunk":
        start_response("200 OK", [TEXT])
        return ["h\u00e9llo w\u00f6rld"]

    if name == "latin1-header":
        start_response("200 OK", [TEXT, ("X-Latin", "caf\u00e9")])
        return [b"ok"]

    start_response("404 Not Found", [TEXT])
    return [b"no route " + path.encode("latin-1")]
