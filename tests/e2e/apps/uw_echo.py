"""Test app for the uwsgi/nginx tests (tests/e2e/test_uwsgi.py, test_nginx.py).

Routed on the last segment of PATH_INFO:
  .../big     1 MiB of deterministic bytes (BIG), with Content-Length
  .../raise   raises before start_response
  .../short   says Content-Length: 5 and yields 10 bytes
  .../sleep   sleeps 0.5 s, then echoes
  .../notfound  the app's own 404 (text/plain "no such page: PATH_INFO")
  .../mutate  changes its environ (adds X_APP_ADDED, replaces REMOTE_PORT, deletes
              SERVER_NAME), then echoes
  anything else: JSON {"pid": the worker's pid, "environ": {str values, latin-1 kept}, "types": {...},
                       "body_hex": the body read with read(), "after": repr of a second read(),
                       "app": "echo"}
The body is read per CONTENT_LENGTH with read(n + 100) then read(); a HEAD
request still gets a body from the app (the server must drop it).
"""

import json
import os
import time

BIG = bytes((i * 7 + i // 251) & 0xFF for i in range(1 << 20))


def application(environ, start_response):
    last = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
    if last == "big":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(BIG)))])
        return [BIG[i:i + 65536] for i in range(0, len(BIG), 65536)]
    if last == "raise":
        raise RuntimeError("uw_echo: deliberate failure before start_response")
    if last == "short":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"12345", b"67890"]
    if last == "notfound":
        text = ("no such page: " + environ.get("PATH_INFO", "")).encode("latin-1")
        start_response("404 Not Found", [("Content-Type", "text/plain"),
                                         ("Content-Length", str(len(text)))])
        return [text]
    if last == "sleep":
        time.sleep(0.5)
    if last == "mutate":
        environ["X_APP_ADDED"] = "1"
        environ["REMOTE_PORT"] = "changed-by-the-app"
        del environ["SERVER_NAME"]
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    stream = environ["wsgi.input"]
    body = stream.read(n + 100) if n else stream.read()
    after = stream.read()
    out, types = {}, {}
    for key, value in environ.items():
        types[key] = type(value).__name__
        if isinstance(value, str):
            out[key] = value
    payload = json.dumps({
        "app": "echo",
        "pid": os.getpid(),
        "environ": out,
        "types": types,
        "body_hex": body.hex(),
        "after": repr(after),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Echo", "1")])
    return [payload]
