"""Issue 16's slow-client tests: an app that reads whole request bodies.

/upload   read wsgi.input to its end; answer "<length> <sha256>"; a read that
          raises (a client that stalled a streamed body) is logged as
          "read failed: <exception type>" and answered 500.
/big      an 8 MiB response in one piece (the Python thread is done with it
          at once; the connection writes it).
anything  "ok" (the canary).
"""

import hashlib
import sys

BIG = b"x" * (8 * 1024 * 1024)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/upload":
        digest = hashlib.sha256()
        size = 0
        stream = environ["wsgi.input"]
        try:
            while True:
                piece = stream.read(65536)
                if not piece:
                    break
                size += len(piece)
                digest.update(piece)
        except OSError as e:
            print(f"read failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"read failed\n"]
        body = f"{size} {digest.hexdigest()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [BIG]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
