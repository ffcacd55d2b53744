"""Test app for tests/e2e/test_malformed.py: counts the requests it was handed.

Reads the whole body, then appends "METHOD PATH LEN\n" to $HTTP_COUNTER_FILE, so a
request the server should have refused shows up in the file.
"""

import os

COUNTER = os.environ["HTTP_COUNTER_FILE"]


def application(environ, start_response):
    body = environ["wsgi.input"].read()
    with open(COUNTER, "a") as f:
        f.write(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')} {len(body)}\n")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
