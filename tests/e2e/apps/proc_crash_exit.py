"""Test app for tests/e2e/test_process_model.py: the process importing it dies
at once (os._exit(3)). With --lazy-apps every worker does: a crash loop."""

import os

os._exit(3)


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
