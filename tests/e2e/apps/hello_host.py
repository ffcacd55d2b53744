"""Test app for tests/e2e/test_proxy_scale_out.py: one app host of the scale-out test.

Answers every request with `hello from NAME` (NAME: $HELLO_HOST, the host it runs
on), so the client can tell which app host served it.
"""

import os

NAME = os.environ.get("HELLO_HOST", "unnamed").encode()


def application(environ, start_response):
    body = b"hello from " + NAME + b"\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("X-Host", NAME.decode())])
    return [body]
