"""The HTTP/2 tests' app: what the request looked like to WSGI, request bodies
hashed, slow and streamed answers."""

import hashlib
import json
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow done\n"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        n = int(environ.get("QUERY_STRING") or "10")
        return (b"%05d " % i + b"x" * 1000 + b"\n" for i in range(n))
    if path == "/big":
        n = int(environ.get("QUERY_STRING") or "100000")
        body = bytes(i % 251 for i in range(n))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    body = environ["wsgi.input"].read()
    out = json.dumps({
        "protocol": environ["SERVER_PROTOCOL"],
        "scheme": environ["wsgi.url_scheme"],
        "https": environ.get("HTTPS", ""),
        "method": environ["REQUEST_METHOD"],
        "path": path,
        "query": environ.get("QUERY_STRING", ""),
        "uri": environ.get("REQUEST_URI", ""),
        "host": environ.get("HTTP_HOST", ""),
        "cookie": environ.get("HTTP_COOKIE", ""),
        "content_length": environ.get("CONTENT_LENGTH", ""),
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]
