"""Test app for --threads: a request waits until a second request arrives.

With two Python threads both requests meet at the barrier and answer "met";
a server that runs one request at a time makes the first one time out.
"""

import threading
from wsgiref.validate import validator

BARRIER = threading.Barrier(2)


def app(environ, start_response):
    try:
        BARRIER.wait(timeout=5)
        status, body = "200 OK", b"met\n"
    except threading.BrokenBarrierError:
        BARRIER.reset()
        status, body = "503 Service Unavailable", b"alone\n"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = validator(app)
