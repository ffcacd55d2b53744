"""App for tests/e2e/test_new_conn_under_load.py.

Every answer is "PID SEQ": the worker's pid and how many requests that
worker's app had been called for, this one included, so a client can tell
in which order one worker served its requests without reading any clock.

/busy   about 1 ms of CPU in the app (a Flask request's order of size, and
        well over the 50 µs after which a connection lets others run)
/quick  no work
"""

import os
import time

SEQ = 0


def application(environ, start_response):
    global SEQ
    SEQ += 1
    seq = SEQ
    if environ["PATH_INFO"] == "/busy":
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass
    body = f"{os.getpid()} {seq}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
