"""A WSGI app that answers with its process's WHOAMI environment variable
(which backend of an upstream group answered) and the method."""

import os

NAME = os.environ.get("WHOAMI", "?").encode()


def application(environ, start_response):
    body = NAME + b" " + environ["REQUEST_METHOD"].encode() + b"\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
