"""`$gzip_ratio` in `log_format`, against the real nginx 1.22 (issue 13).

One nginx.conf served by nginx and by `portico -c` (nginx_diff.DiffPair), an
access log per side written with `log_format ratio '$uri $gzip_ratio'`. nginx
logs the gzip filter's bytes in over bytes out (the 10-byte header and the
8-byte trailer counted) with two decimals, the third rounding half up, and
`-` for an answer it did not gzip (no Accept-Encoding, `gzip off`, below
`gzip_min_length`, a 304). The ratios themselves differ between the sides
(nginx's zlib and Portico's zlib-rs cut blocks differently at the same level),
so each side's value is checked against the body that side sent, and the
`-` cases must be the same.
"""

import gzip
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from nginx_diff import DiffPair

CONF = """
log_format ratio '$uri $gzip_ratio';
gzip on;
gzip_types text/plain;
gzip_min_length 20;
gzip_comp_level 1;
server {
    listen {port};
    root html;
    access_log {log} ratio;
    location /off/ { gzip off; }
}
"""


def text(n):
    line = b"line %06d of the gzip ratio test, portico vs nginx\n"
    return b"".join(line % i for i in range(n // 50 + 1))[:n]


TREE = {
    "html/page.html": text(5000),
    "html/big.txt": text(200_000),
    "html/tiny.html": text(10),
    "html/off/page.html": text(5000),
}

CASES = [
    ("/page.html", {"Accept-Encoding": "gzip"}),
    ("/big.txt", {"Accept-Encoding": "gzip"}),
    ("/page.html", {}),
    ("/tiny.html", {"Accept-Encoding": "gzip"}),
    ("/off/page.html", {"Accept-Encoding": "gzip"}),
    ("/page.html", {"Accept-Encoding": "gzip", "If-None-Match": 'W/"5e0d5da5-1388"'}),
]


def nginx_ratio(zin, zout):
    """ngx_http_gzip_ratio_variable's arithmetic."""
    whole, frac = zin // zout, (zin * 100 // zout) % 100
    if (zin * 1000 // zout) % 10 > 4:
        frac += 1
        if frac > 99:
            whole, frac = whole + 1, 0
    return f"{whole}.{frac:02d}"


@pytest.fixture(scope="module")
def pair():
    logs = Path(tempfile.mkdtemp(prefix="portico-gzip-ratio-", dir="/tmp"))
    os.chmod(logs, 0o777)
    subs = {"log": str(logs / "nginx.log")}
    with DiffPair(CONF, TREE, subs, portico_subs={"log": str(logs / "portico.log")}) as p:
        yield p, logs
    shutil.rmtree(logs, ignore_errors=True)


def log_lines(path, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"{path} has fewer than {count} lines")


def test_gzip_ratio_is_logged_as_nginx_logs_it(pair):
    p, logs = pair
    answers = {"nginx": [], "portico": []}
    for target, headers in CASES:
        for side in answers:
            answers[side].append(p.fetch(side, "GET", target, dict(headers)))
    for side, log in (("nginx", "nginx.log"), ("portico", "portico.log")):
        lines = log_lines(logs / log, len(CASES))[-len(CASES):]
        for (target, _), answer, line in zip(CASES, answers[side], lines):
            uri, ratio = line.split(" ")
            assert uri == target, (side, line)
            if answer.headers.get("content-encoding") == "gzip":
                original = TREE["html" + target]
                assert gzip.decompress(answer.body) == original
                assert ratio == nginx_ratio(len(original), len(answer.body)), (side, line)
            else:
                assert ratio == "-", (side, target, line, answer.status)
    gzipped = {side: [a.headers.get("content-encoding") for a in answers[side]]
               for side in answers}
    assert gzipped["nginx"] == gzipped["portico"]
    assert gzipped["nginx"][:2] == ["gzip", "gzip"], "the ratio cases were compressed"
