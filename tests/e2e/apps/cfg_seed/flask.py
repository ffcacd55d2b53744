"""The seeds' XML config loads `<module>flask</module>` with `<callable>app</callable>`
from its `<pythonpath>`: a module literally named `flask` that holds `app`.
This is a plain WSGI stand-in with that name (tests/e2e/test_config.py); it
reports the request as JSON so the test can see what reached it.
"""

import json


def app(environ, start_response):
    body = json.dumps(
        {
            "app": "seed flask module",
            "script_name": environ.get("SCRIPT_NAME", ""),
            "path_info": environ.get("PATH_INFO", ""),
            "memory_report_ok": True,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
