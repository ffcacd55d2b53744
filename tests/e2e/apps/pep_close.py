"""Test app: records every close() call of its response iterables (tests/e2e/test_pep3333.py).

Each close() appends "<tag>\n" to the file named by $PEP_CLOSE_LOG; the tag
comes from ?tag=. Routes:
/normal      three blocks, then the end
/raise       one block, then an exception mid-stream
/raise-first an exception before the first block
/endless     64 KiB blocks every 10 ms for up to 12 s (the client hangs up)
/slow-start  the same after 0.5 s without a byte (the client hangs up before the headers)
/file        wsgi.file_wrapper around a file-like object whose close() is recorded
             (?path=FILE&cl=1 to set Content-Length)
/filewrapper-exists   "yes" if wsgi.file_wrapper is callable
"""

import os
import time
from urllib.parse import parse_qs

LOG = os.environ["PEP_CLOSE_LOG"]


def record(tag):
    with open(LOG, "a") as f:
        f.write(tag + "\n")


class Body:
    def __init__(self, tag, blocks, fail=False, delay=0.0, limit=None, first_delay=0.0):
        self.tag, self.blocks, self.fail, self.delay, self.limit = tag, blocks, fail, delay, limit
        self.first_delay = first_delay

    def __iter__(self):
        start = time.monotonic()
        time.sleep(self.first_delay)
        for block in self.blocks:
            yield block
            if self.delay:
                time.sleep(self.delay)
            if self.limit and time.monotonic() - start > self.limit:
                return
        if self.fail:
            raise RuntimeError("pep-close-mid-stream-marker")

    def close(self):
        record(self.tag)


class RecordingFile:
    """A file-like object (read/fileno/seek/tell/close) that records close() calls."""

    def __init__(self, path, tag):
        self.f = open(path, "rb")
        self.tag = tag

    def read(self, *args):
        return self.f.read(*args)

    def fileno(self):
        return self.f.fileno()

    def seek(self, *args):
        return self.f.seek(*args)

    def tell(self):
        return self.f.tell()

    def close(self):
        record(self.tag)
        self.f.close()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    tag = qs.get("tag", ["untagged"])[0]
    text = [("Content-Type", "text/plain")]

    if path == "/normal":
        start_response("200 OK", text)
        return Body(tag, [b"one ", b"two ", b"three"])
    if path == "/raise":
        start_response("200 OK", text)
        return Body(tag, [b"partial"], fail=True)
    if path == "/raise-first":
        start_response("200 OK", text)
        return Body(tag, [], fail=True)
    if path == "/slow-start":
        start_response("200 OK", text)
        return Body(tag, (b"x" * 65536 for _ in range(2000)), delay=0.01, limit=12, first_delay=0.5)
    if path == "/endless":
        start_response("200 OK", text)
        return Body(tag, (b"x" * 65536 for _ in range(2000)), delay=0.01, limit=12)
    if path == "/filewrapper-exists":
        ok = callable(environ.get("wsgi.file_wrapper"))
        start_response("200 OK", text)
        return [b"yes" if ok else b"no"]
    if path == "/file":
        fpath = qs["path"][0]
        headers = list(text)
        if qs.get("cl"):
            headers.append(("Content-Length", str(os.path.getsize(fpath))))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](RecordingFile(fpath, tag), 32768)
    if path == "/file-plain":
        fpath = qs["path"][0]
        start_response("200 OK", text + [("Content-Length", str(os.path.getsize(fpath)))])
        return environ["wsgi.file_wrapper"](open(fpath, "rb"))
    start_response("404 Not Found", text)
    return [b"no route"]
