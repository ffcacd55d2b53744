"""The seeds' `server.py`, mounted at /myapp by tests/e2e/configs/seed_mount.ini
(tests/e2e/test_config.py): reports SCRIPT_NAME and PATH_INFO as JSON."""

import json


def application(environ, start_response):
    body = json.dumps(
        {"script_name": environ.get("SCRIPT_NAME", ""), "path_info": environ.get("PATH_INFO", "")}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
