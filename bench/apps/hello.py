"""WSGI hello world for bench/: the same file for every server.

Returns b"Hello, World!" as text/plain with an explicit Content-Length.
Exposed as `application` (uWSGI's / Portico's default callable name) and
as `app` (for `hello:app` targets of Granian and gunicorn).
"""

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


app = application
