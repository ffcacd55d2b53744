"""App for the observability tests: hello, slow, failing, POST echo, any status."""

import time


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "2"))
    elif path == "/error":
        raise RuntimeError("obs_app fails on purpose")
    elif path == "/post":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        out = b"got %d bytes" % len(body)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
        return [out]
    elif path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        start_response(f"{code} Whatever", [("Content-Type", "text/plain")])
        return [b"status"]
    body = b"Hello World"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
