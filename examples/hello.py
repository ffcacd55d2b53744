"""The smallest WSGI application: `portico --http :8000 --wsgi-file examples/hello.py`."""

BODY = b"Hello, World!\n"


def application(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]
