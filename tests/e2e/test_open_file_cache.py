"""`open_file_cache` and `open_file_cache_valid`, against the real nginx 1.22.

One nginx.conf served by nginx and by `portico -c` over one file tree
(nginx_diff.DiffPair). Under `open_file_cache max=N` with
`open_file_cache_valid 2s`, a file replaced on disk is still answered as it
was until its entry is 2 s old, by both; without `open_file_cache` (nginx's
default) the new file is answered at once, by both.
"""

import os
import time

import pytest

from nginx_diff import DiffPair

CONF = """
server {
    listen {port};
    root html;
    location /cached/ { open_file_cache max=100 inactive=20s; open_file_cache_valid 2s; }
}
"""

TREE = {
    "html/cached/a.txt": b"old contents\n",
    "html/plain/a.txt": b"old contents\n",
}


@pytest.fixture(scope="module")
def pair():
    with DiffPair(CONF, TREE) as p:
        yield p


def replace(path, data):
    """A new file renamed over the old one (a deploy), with a new mtime."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def bodies(pair, target):
    a, b = pair.both("GET", target)
    assert a.status == b.status == 200, (a, b)
    return a.body, b.body


def test_a_replaced_file_is_seen_after_open_file_cache_valid_as_in_nginx(pair):
    assert bodies(pair, "/cached/a.txt") == (b"old contents\n", b"old contents\n")
    replace(pair.root / "html/cached/a.txt", b"the new contents\n")
    assert bodies(pair, "/cached/a.txt") == (b"old contents\n", b"old contents\n")
    time.sleep(2.5)
    assert bodies(pair, "/cached/a.txt") == (b"the new contents\n", b"the new contents\n")


def test_without_open_file_cache_a_replaced_file_is_seen_at_once(pair):
    assert bodies(pair, "/plain/a.txt") == (b"old contents\n", b"old contents\n")
    replace(pair.root / "html/plain/a.txt", b"the new contents\n")
    assert bodies(pair, "/plain/a.txt") == (b"the new contents\n", b"the new contents\n")
