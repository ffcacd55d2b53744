"""Test app for tests/e2e/test_static.py: the app behind the static maps.

Every answer carries `X-App: st_app`, so a test can tell the app's answers
from static ones. Paths in ANSWERED get 200 `st_app: METHOD PATH_INFO`
(the fall-through cases); anything else gets 404 `st_app: not found`.
"""

ANSWERED = {
    "/static/missing.txt",
    "/static/sub/missing.txt",
    "/static/script.py",
    "/static/hello.txt",  # for methods other than GET/HEAD
    "/app",
}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    if path in ANSWERED:
        status, body = "200 OK", f"st_app: {method} {path}".encode()
    else:
        status, body = "404 Not Found", b"st_app: not found"
    start_response(
        status,
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-App", "st_app"),
        ],
    )
    return [body]
