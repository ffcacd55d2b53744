"""Test app for tests/e2e/test_app_errors.py: fails at each point of a response.

/before-start-response   raises before start_response
/after-start-response    raises right after start_response (nothing returned)
/before-first-block      start_response, then the iterable raises before any block
/mid-stream              yields a block (no Content-Length), then raises
/mid-stream-cl           Content-Length 100, yields 7 bytes, then raises
/returns-none            calls start_response and returns None
/ok                      "ok"
Every message carries a distinctive marker for the log checks.
"""

import time


def fail(where):
    raise RuntimeError(f"portico-app-error-marker-{where}")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    text = [("Content-Type", "text/plain")]
    if path == "/before-start-response":
        fail("before-start-response")
    if path == "/after-start-response":
        start_response("200 OK", text)
        fail("after-start-response")
    if path == "/before-first-block":
        start_response("200 OK", text + [("X-App", "1")])

        def gen():
            fail("before-first-block")
            yield b"never"

        return gen()
    if path == "/mid-stream":
        start_response("200 OK", text)

        def gen():
            yield b"partial"
            time.sleep(0.05)
            fail("mid-stream")

        return gen()
    if path == "/mid-stream-cl":
        start_response("200 OK", text + [("Content-Length", "100")])

        def gen():
            yield b"partial"
            time.sleep(0.05)
            fail("mid-stream-cl")

        return gen()
    if path == "/returns-none":
        start_response("200 OK", text)
        return None
    start_response("200 OK", text + [("Content-Length", "2")])
    return [b"ok"]
