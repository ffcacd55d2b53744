"""Test app: start_response and write() kept past their request
(tests/e2e/test_wsgi_reuse.py). Portico reuses one start_response object
from request to request while nothing else holds it; an app that keeps one
must get a fresh one next time, and the kept one must answer only for its
own (finished) request.

/keep       keeps this request's start_response and write in a global.
/use-kept   answers normally, after calling the kept ones (reporting what
            they raised in X-Kept-* headers).
/same       reports whether this start_response is the kept one.
"""

KEPT = {}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/keep":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        KEPT["start_response"] = start_response
        KEPT["write"] = write
        return [b"kept"]
    if path == "/use-kept":
        outcome = {}
        for name, call in (
            ("start", lambda: KEPT["start_response"]("418 I'm a teapot", [("X-Hijack", "1")])),
            ("write", lambda: KEPT["write"](b"hijacked")),
        ):
            try:
                call()
                outcome[name] = "returned"
            except Exception as e:  # noqa: BLE001 - what it raised is the answer
                outcome[name] = type(e).__name__
        body = b"mine"
        start_response("200 OK", [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Kept-Start", outcome["start"]),
            ("X-Kept-Write", outcome["write"]),
        ])
        return [body]
    if path == "/same":
        same = "yes" if KEPT.get("start_response") is start_response else "no"
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Same", same)])
        return [b"same?"]
    body = b"plain"
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [body]
