"""Test app whose import waits until the file named by $LOAD_GATE exists (at
most 30 s): with --lazy-apps, a worker loading it is held in its start-up for
as long as a test needs (test_log_reopen_startup.py)."""

import os
import time

GATE = os.environ["LOAD_GATE"]
DEADLINE = time.monotonic() + 30
while not os.path.exists(GATE) and time.monotonic() < DEADLINE:
    time.sleep(0.02)


def application(environ, start_response):
    body = b"loaded\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
