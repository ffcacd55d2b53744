"""Test app: exercises wsgi.input as the query string says (tests/e2e/test_pep3333.py).

?op=read|read_n|readline|readline_limit|readlines|readlines_hint|iter|mixed&n=N
Answers JSON: the pieces read (latin-1 text), then what read()/read(5)/readline()/
readlines() return after the end of the body and how long those took.
"""

import json
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    op = qs["op"][0]
    n = int(qs.get("n", ["0"])[0])
    inp = environ["wsgi.input"]
    parts = []
    if op == "read":
        parts = [inp.read()]
    elif op == "read_n":
        while True:
            piece = inp.read(n)
            if not piece:
                break
            parts.append(piece)
    elif op == "readline":
        while True:
            line = inp.readline()
            if not line:
                break
            parts.append(line)
    elif op == "readline_limit":
        while True:
            line = inp.readline(n)
            if not line:
                break
            parts.append(line)
    elif op == "readlines":
        parts = inp.readlines()
    elif op == "readlines_hint":
        parts = inp.readlines(n)
        parts.append(b"|REST|" + inp.read())
    elif op == "iter":
        parts = [line for line in inp]
    elif op == "mixed":
        parts = [inp.readline(), inp.read(3), inp.readline(), inp.read(1), inp.read()]
    else:
        raise ValueError(op)
    t0 = time.monotonic()
    after = [inp.read(), inp.read(5), inp.readline()]
    after_lines = inp.readlines()
    elapsed = time.monotonic() - t0
    body = json.dumps(
        {
            "parts": [p.decode("latin-1") for p in parts],
            "types": sorted({type(p).__name__ for p in parts + after}),
            "after": [p.decode("latin-1") for p in after],
            "after_lines": [p.decode("latin-1") for p in after_lines],
            "elapsed": elapsed,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
