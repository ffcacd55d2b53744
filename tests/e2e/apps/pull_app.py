"""Test app for tests/e2e/test_wsgi_pull.py: iterables that are not lists,
which a worker with one Python thread pulls on the connection's thread.

Every close() and every /record call appends a line to $PULL_LOG
("close TAG", "start TAG"); the tag comes from ?tag=. ?cl=1 adds a
Content-Length header where the route says so.

/slow           b"first-piece", then 1 s, then b"second-piece" (cl: 23)
/closing        a ClosingIterator-like object over one JSON piece, with Content-Length
/raise-first    the iterator raises before its first piece
/raise-after    b"partial", then the iterator raises (cl: Content-Length 100)
/endless        64 KiB pieces every 10 ms for up to 10 s (cl: Content-Length 1 GiB)
/sleepy         b"one", 1 s, b"two", 1 s, b"three" (chunked)
/record         records "start TAG", answers b"recorded"
/write-in-gen   a generator that calls write() between its pieces: b"abcd"
/write-then-gen write(b"a") in the app, then a generator: b"abcde"
"""

import os
import time
from urllib.parse import parse_qs

LOG = os.environ["PULL_LOG"]


def record(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")


class Pieces:
    """An iterator over `pieces` (callables are called instead: a sleep, a
    raise) that records its close()."""

    def __init__(self, tag, pieces):
        self.tag = tag
        self.pieces = iter(pieces)

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            piece = next(self.pieces)
            if callable(piece):
                piece()
                continue
            return piece

    def close(self):
        record(f"close {self.tag}")


class ClosingIterator:
    """What Werkzeug's ClosingIterator does: wraps an iterable and calls
    its callbacks on close()."""

    def __init__(self, iterable, callbacks):
        self._next = iter(iterable).__next__
        self._callbacks = callbacks

    def __iter__(self):
        return self

    def __next__(self):
        return self._next()

    def close(self):
        for callback in self._callbacks:
            callback()


def boom():
    raise RuntimeError("pull-app-next-raised-marker")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    tag = qs.get("tag", ["untagged"])[0]
    cl = bool(qs.get("cl"))
    text = [("Content-Type", "text/plain")]

    if path == "/slow":
        first, second = b"first-piece", b"second-piece"
        start_response("200 OK", text + ([("Content-Length", "23")] if cl else []))
        return Pieces(tag, [first, lambda: time.sleep(1.0), second])
    if path == "/sleepy":
        start_response("200 OK", text)
        nap = lambda: time.sleep(1.0)  # noqa: E731
        return Pieces(tag, [b"one", nap, b"two", nap, b"three"])
    if path == "/closing":
        body = b'{"message": "Hello, World!"}'
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return ClosingIterator([body], [lambda: record(f"close {tag}")])
    if path == "/raise-first":
        start_response("200 OK", text)
        return Pieces(tag, [boom])
    if path == "/raise-after":
        start_response("200 OK", text + ([("Content-Length", "100")] if cl else []))
        return Pieces(tag, [b"partial", boom])
    if path == "/endless":
        start_response("200 OK", text + ([("Content-Length", str(1 << 30))] if cl else []))
        start = time.monotonic()

        def pieces():
            while time.monotonic() - start < 10:
                yield b"x" * 65536
                time.sleep(0.01)

        return Pieces(tag, pieces())
    if path == "/record":
        record(f"start {tag}")
        start_response("200 OK", text + [("Content-Length", "8")])
        return [b"recorded"]
    if path == "/write-in-gen":
        write = start_response("200 OK", text)

        def gen():
            write(b"a")
            yield b"b"
            write(b"c")
            yield b"d"

        return gen()
    if path == "/write-then-gen":
        write = start_response("200 OK", text)
        write(b"a")

        def gen():
            yield b"b"
            write(b"c")
            yield b"d"
            yield b"e"

        return gen()
    start_response("404 Not Found", text)
    return [b"no route"]
