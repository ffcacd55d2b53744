"""Test app for tests/e2e/test_http11.py: one WSGI callable, routed by PATH_INFO.

/hello            "hello world" with Content-Length
/say/WORD         WORD with Content-Length
/echo             the request body as read from wsgi.input, with Content-Length
/port             REMOTE_PORT (to tell connections apart)
/nocl             "abc", "", "def" yielded without Content-Length
/cl/N/M           Content-Length N, then M bytes of "hello world..." in one block
/status/CODE      that status, and a body the server must not send for 204/304
/status-cl/CODE   the same with the app's Content-Length for that body
/slow             yields b"a", sleeps 1 s, yields b"b" (no Content-Length)
/slow-cl          the same with Content-Length: 2
/read3            reads 3 bytes of the request body and answers them
/ignore           never reads the request body, answers "ignored"
"""

import time

PATTERN = b"hello world" * 10


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    text = [("Content-Type", "text/plain")]

    def fixed(body, status="200 OK"):
        start_response(status, text + [("Content-Length", str(len(body)))])
        return [body]

    if path == "/hello":
        return fixed(b"hello world")
    if path.startswith("/say/"):
        return fixed(path[5:].encode("latin-1"))
    if path == "/echo":
        return fixed(environ["wsgi.input"].read())
    if path == "/port":
        return fixed(environ["REMOTE_PORT"].encode())
    if path == "/nocl":
        start_response("200 OK", text)
        return iter([b"abc", b"", b"def"])
    if path.startswith("/cl/"):
        n, m = (int(x) for x in path[4:].split("/"))
        start_response("200 OK", text + [("Content-Length", str(n))])
        return [PATTERN[:m]]
    if path.startswith("/status-cl/"):
        code = int(path[11:])
        body = b"this body must not be sent"
        start_response(f"{code} Whatever", [("Content-Length", str(len(body)))])
        return [body]
    if path.startswith("/status/"):
        code = int(path[8:])
        reasons = {204: "No Content", 304: "Not Modified"}
        start_response(f"{code} {reasons.get(code, 'Whatever')}", [])
        return [b"this body must not be sent"]
    if path == "/slow":
        start_response("200 OK", text)

        def gen():
            yield b"a"
            time.sleep(1.0)
            yield b"b"

        return gen()
    if path == "/slow-cl":
        start_response("200 OK", text + [("Content-Length", "2")])

        def gen_cl():
            yield b"a"
            time.sleep(1.0)
            yield b"b"

        return gen_cl()
    if path == "/read3":
        return fixed(environ["wsgi.input"].read(3))
    if path == "/ignore":
        return fixed(b"ignored")
    return fixed(b"not found: " + path.encode("latin-1"), "404 Not Found")
