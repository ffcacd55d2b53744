"""Static files (issue 7): `--static-map` and friends, answered as nginx answers.

One directory tree under /tmp (mode 0755, files 0644, so nginx's `nobody`
workers can read it) is served by one portico (`--static-map /static=ROOT`)
and one nginx (`location /static/ { alias ROOT/; }`, tests/e2e/static_nginx.py)
for the whole module. Conditional, range, directory, precompressed and
large-file cases send the same request to both and compare the status, the
headers that matter and the body. Options nginx does not have (fall-through
to the app, skip-ext, static-safe, static-map2, check-static) and the
traversal vectors are checked on portico alone.

Every file has the fixed mtime 0x5e0d5da5 (Thu, 02 Jan 2020 03:04:05 GMT),
so the expected ETag is `"5e0d5da5-<hex size>"`. `secret.txt`, which must
never be served, lies in the root's parent and holds a unique marker.
"""

import email.utils
import gzip
import os
import random
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from httpraw import Conn, build, module_server
from static_nginx import StaticNginx

APP = Path(__file__).resolve().parent / "apps" / "st_app.py"

MTIME = 0x5E0D5DA5
MTIME_TEXT = "Thu, 02 Jan 2020 03:04:05 GMT"
GZ_MTIME = MTIME + 0x100  # the .gz siblings: their own validators

# The headers compared between portico and nginx (Date and Server differ).
COMPARED = (
    "Content-Type",
    "Content-Length",
    "ETag",
    "Last-Modified",
    "Content-Range",
    "Accept-Ranges",
    "Content-Encoding",
    "Vary",
)

# For 206 answers: nginx drops Accept-Ranges there, portico keeps it; that one
# difference is pinned by test_partial_content_has_no_accept_ranges_as_nginx
# alone, so the other range comparisons show any other difference.
RANGE_COMPARED = tuple(h for h in COMPARED if h != "Accept-Ranges")

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")
APP_JS = b"console.log('the plain file');\n" * 40
BR_JS = b"console.log('brotli sibling test');\n" * 20
DIGITS = b"0123456789" * 10  # 100 bytes: ranges are easy to read
BIG_SIZE = 3 * 1024 * 1024


def etag_for(size, mtime=MTIME):
    return f'"{mtime:x}-{size:x}"'


# --- the served tree -------------------------------------------------------------------


def _write(path, data, mtime=MTIME):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o644)
    os.utime(path, (mtime, mtime))


@pytest.fixture(scope="module")
def tree():
    base = Path(tempfile.mkdtemp(prefix="portico-static-", dir="/tmp"))
    os.chmod(base, 0o755)
    root = base / "root"
    outside = base / "outside"
    marker = b"TOP-SECRET-" + uuid.uuid4().hex.encode()
    files = {
        "hello.txt": b"hello, static world!!\n",
        "page.html": b"<!doctype html><title>page</title><p>hi</p>\n",
        "style.css": b"body { color: #c00; }\n",
        "app.js": APP_JS,
        "data.json": b'{"static": true}\n',
        "img.png": PNG,
        "icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
        "font.woff2": b"wOF2" + bytes(range(64)),
        "blob.xyz": b"\x00\x01\x02 unknown extension\n",
        "noext": b"no extension at all\n",
        "README.TXT": b"upper-case extension\n",
        "digits.txt": DIGITS,
        "changing.txt": b"v1\n",
        "sub/index.html": b"<p>the index of sub</p>\n",
        "sub/other.txt": b"another file in sub\n",
        "sub/deeper/file.txt": b"deeper\n",
        "empty/keep.txt": b"a directory without an index file\n",
        "br.js": BR_JS,
        "leak.js": b"console.log('leak.js, the plain one');\n",
        "script.py": b"print('never served statically')\n",
        ".env": b"DATABASE_PASSWORD=" + marker + b"\n",
        ".git/config": b"[core]\n\tsecret = " + marker + b"\n",
        "sub/.hidden": marker + b"\n",
    }
    for name, data in files.items():
        _write(root / name, data)
    _write(root / "app.js.gz", gzip.compress(APP_JS, mtime=0), GZ_MTIME)
    _write(root / "br.js.gz", gzip.compress(BR_JS, mtime=0), GZ_MTIME)
    # not real brotli (no brotli module here): the bytes only have to be told apart
    _write(root / "br.js.br", b"BROTLI-STAND-IN:" + BR_JS[:40], GZ_MTIME + 1)
    big = random.Random(7).randbytes(BIG_SIZE)
    _write(root / "big.bin", big)
    # outside the root
    _write(base / "secret.txt", marker + b"\n")
    _write(outside / "shared.txt", b"shared through --static-safe\n")
    # symlinks
    os.symlink("hello.txt", root / "link-in.txt")
    os.symlink("../outside/shared.txt", root / "link-out.txt")
    os.symlink("../secret.txt", root / "link-secret.txt")
    os.symlink(str(base / "secret.txt"), root / "link-secret-abs.txt")
    os.symlink("../outside", root / "outdir")
    os.symlink("../../secret.txt", root / "sub" / "up-secret.txt")
    os.symlink("../secret.txt", root / "leak.js.gz")  # a precompressed sibling pointing out
    (root / "idxout").mkdir()
    os.symlink("../../secret.txt", root / "idxout" / "index.html")
    for d in [root, outside, *[p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()]]:
        os.chmod(d, 0o755)
    yield SimpleNamespace(base=base, root=root, outside=outside, marker=marker, big=big, files=files)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def ngx(tree):
    with StaticNginx(tree.root) as n:
        yield n


PORTICO_ARGS = (
    "--static-index", "index.html",
    "--static-expires-type", "text/css=3600",
    "--static-skip-ext", ".py",
)


@pytest.fixture(scope="module")
def pt(tree):
    with module_server(
        "--wsgi-file", APP, "--static-map", f"/static={tree.root}", *PORTICO_ARGS
    ) as server:
        yield server


# --- requests --------------------------------------------------------------------------


def req(server, target, method="GET", headers=(), body=b""):
    """One request on a fresh connection, Host naming the server's own address."""
    with Conn(server.host, server.port) as conn:
        conn.send(build(method, target, list(headers), body=body, host=f"{server.host}:{server.port}"))
        resp = conn.read_response(method)
        assert resp.complete, resp
        if method == "HEAD" or resp.status == 304:
            resp.extra = conn.read_available(0.05)
        return resp


def both(pt, ngx, target, method="GET", headers=()):
    return req(pt, target, method, headers), req(ngx, target, method, headers)


def assert_same(p, n, names=COMPARED, body=True):
    diffs = []
    if p.status != n.status:
        diffs.append(f"status: portico {p.status}, nginx {n.status}")
    for name in names:
        a, b = p.header_all(name), n.header_all(name)
        if a != b:
            diffs.append(f"{name}: portico {a}, nginx {b}")
    if body and p.body != n.body:
        diffs.append(f"body: portico {p.body[:80]!r} ({len(p.body)}), nginx {n.body[:80]!r} ({len(n.body)})")
    assert not diffs, "portico and nginx differ:\n  " + "\n  ".join(diffs) + f"\nportico: {p!r}\nnginx: {n!r}"


def assert_no_leak(resp, tree):
    """Nothing from outside the root, and no filesystem path, in the answer."""
    everything = resp.raw_head + resp.body
    assert tree.marker not in everything, f"the secret was served: {resp!r}"
    for path in (str(tree.base), str(tree.root), "/tmp/"):
        assert path.encode() not in everything, f"the answer names a filesystem path {path}: {resp!r}"


# --- MIME types, validators ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ctype",
    [
        ("page.html", "text/html"),
        ("style.css", "text/css"),
        ("app.js", "application/javascript"),
        ("data.json", "application/json"),
        ("img.png", "image/png"),
        ("icon.svg", "image/svg+xml"),
        ("font.woff2", "font/woff2"),
        ("hello.txt", "text/plain"),
        ("README.TXT", "text/plain"),
        ("blob.xyz", "application/octet-stream"),
        ("noext", "application/octet-stream"),
    ],
)
def test_file_served_with_nginx_type_and_validators(pt, ngx, tree, name, ctype):
    p, n = both(pt, ngx, f"/static/{name}")
    assert p.status == 200, p
    assert p.header("Content-Type") == ctype
    data = (tree.root / name).read_bytes()
    assert p.body == data
    assert p.header("Content-Length") == str(len(data))
    assert p.header("ETag") == etag_for(len(data))
    assert p.header("Last-Modified") == MTIME_TEXT
    assert p.header("Accept-Ranges") == "bytes"
    assert not p.has_header("X-App")
    assert_same(p, n)


def test_static_answers_are_logged_as_app_minus_one(pt):
    probe = uuid.uuid4().hex
    start = len(pt.lines)
    r = req(pt, f"/static/hello.txt?probe={probe}")
    assert r.status == 200
    pt.wait_for_line(rf"\|app: -1\|.*GET /static/hello\.txt\?probe={probe}", start=start)
    r = req(pt, f"/app?probe={probe}")
    assert r.status == 200 and r.header("X-App") == "st_app"
    pt.wait_for_line(rf"\|app: 0\|.*GET /app\?probe={probe}", start=start)


# --- conditional requests --------------------------------------------------------------

HELLO_ETAG = etag_for(len(b"hello, static world!!\n"))
LATER = "Fri, 03 Jan 2020 03:04:05 GMT"
EARLIER = "Wed, 01 Jan 2020 03:04:05 GMT"

CONDITIONALS = [
    # (id, headers, expected status)
    ("inm-exact", [("If-None-Match", HELLO_ETAG)], 304),
    ("inm-weak", [("If-None-Match", "W/" + HELLO_ETAG)], 304),
    ("inm-list", [("If-None-Match", '"nope-1", ' + HELLO_ETAG + ', "nope-2"')], 304),
    ("inm-star", [("If-None-Match", "*")], 304),
    ("inm-mismatch", [("If-None-Match", '"5e0d5da5-1"')], 200),
    ("ims-exact", [("If-Modified-Since", MTIME_TEXT)], 304),
    ("ims-later", [("If-Modified-Since", LATER)], 200),
    ("ims-earlier", [("If-Modified-Since", EARLIER)], 200),
    ("both-match", [("If-None-Match", HELLO_ETAG), ("If-Modified-Since", MTIME_TEXT)], 304),
    ("ims-match-inm-mismatch", [("If-None-Match", '"x"'), ("If-Modified-Since", MTIME_TEXT)], 200),
    ("inm-match-ims-later", [("If-None-Match", HELLO_ETAG), ("If-Modified-Since", LATER)], 200),
    ("if-match-mismatch", [("If-Match", '"5e0d5da5-1"')], 412),
    ("if-match-weak", [("If-Match", "W/" + HELLO_ETAG)], 412),
    ("if-match-exact", [("If-Match", HELLO_ETAG)], 200),
    ("if-match-star", [("If-Match", "*")], 200),
    ("ius-earlier", [("If-Unmodified-Since", EARLIER)], 412),
    ("ius-exact", [("If-Unmodified-Since", MTIME_TEXT)], 200),
    ("ius-later", [("If-Unmodified-Since", LATER)], 200),
]


@pytest.mark.parametrize("headers, status", [c[1:] for c in CONDITIONALS], ids=[c[0] for c in CONDITIONALS])
def test_conditional_as_nginx(pt, ngx, tree, headers, status):
    p, n = both(pt, ngx, "/static/hello.txt", headers=headers)
    assert p.status == status, p
    if status == 200:
        assert p.body == tree.files["hello.txt"]
        assert_same(p, n)
    elif status == 304:
        assert p.body == b"" and p.extra == b"", p
        assert p.header("ETag") == HELLO_ETAG and p.header("Last-Modified") == MTIME_TEXT
        for gone in ("Content-Type", "Content-Length", "Accept-Ranges", "Content-Encoding"):
            assert not p.has_header(gone), f"304 with {gone}: {p!r}"
        assert_same(p, n)
    else:
        assert n.status == status, n
        assert_no_leak(p, tree)


def test_not_modified_for_the_precompressed_variant(pt, ngx):
    gz_etag = etag_for(len(gzip.compress(APP_JS, mtime=0)), GZ_MTIME)
    headers = [("Accept-Encoding", "gzip"), ("If-None-Match", gz_etag)]
    p, n = both(pt, ngx, "/static/app.js", headers=headers)
    assert p.status == 304, p
    assert p.header("ETag") == gz_etag and p.header("Vary") == "Accept-Encoding"
    assert not p.has_header("Content-Encoding")
    assert_same(p, n)


# --- ranges ----------------------------------------------------------------------------

SINGLE_RANGES = [
    ("bytes=0-4", 206, "bytes 0-4/100", DIGITS[0:5]),
    ("bytes=-5", 206, "bytes 95-99/100", DIGITS[95:]),
    ("bytes=5-", 206, "bytes 5-99/100", DIGITS[5:]),
    ("bytes=90-500", 206, "bytes 90-99/100", DIGITS[90:]),
    ("bytes=0-0", 206, "bytes 0-0/100", DIGITS[:1]),
    ("bytes=99-99", 206, "bytes 99-99/100", DIGITS[99:]),
    ("bytes=-500", 206, "bytes 0-99/100", DIGITS),
    ("bytes=150-,2-3", 206, "bytes 2-3/100", DIGITS[2:4]),
    ("bytes=100-200", 416, "bytes */100", None),
    ("bytes=100-", 416, "bytes */100", None),
    ("bytes=5-2", 416, "bytes */100", None),
    ("bytes=abc", 416, "bytes */100", None),
    ("bytes=0-99,0-99", 200, None, DIGITS),  # ranges summing past the size: ignored
    ("items=0-4", 200, None, DIGITS),
]


@pytest.mark.parametrize("spec, status, content_range, body", SINGLE_RANGES, ids=[r[0] for r in SINGLE_RANGES])
def test_range_as_nginx(pt, ngx, tree, spec, status, content_range, body):
    p, n = both(pt, ngx, "/static/digits.txt", headers=[("Range", spec)])
    assert p.status == status, p
    assert p.header("Content-Range") == content_range
    if status == 416:
        assert n.status == 416 and n.header("Content-Range") == content_range, n
        assert_no_leak(p, tree)
        return
    assert p.body == body
    assert p.header("Content-Length") == str(len(body))
    assert p.header("Content-Type") == "text/plain"
    assert_same(p, n, RANGE_COMPARED)


def test_range_unit_is_case_insensitive_as_in_nginx(pt, ngx):
    # RFC 9110 §14.1: range units are case-insensitive; nginx agrees
    p, n = both(pt, ngx, "/static/digits.txt", headers=[("Range", "Bytes=0-4")])
    assert n.status == 206, n
    assert_same(p, n, RANGE_COMPARED)


@pytest.mark.parametrize("spec", ["bytes=0-4", "bytes=0-4,10-14"])
def test_partial_content_has_no_accept_ranges_as_nginx(pt, ngx, spec):
    p, n = both(pt, ngx, "/static/digits.txt", headers=[("Range", spec)])
    assert p.status == 206 and n.status == 206, (p, n)
    assert p.header_all("Accept-Ranges") == n.header_all("Accept-Ranges") == [], (p, n)


def test_range_in_large_file_as_nginx(pt, ngx, tree):
    p, n = both(pt, ngx, "/static/big.bin", headers=[("Range", "bytes=2000000-2000099")])
    assert p.status == 206, p
    assert p.header("Content-Range") == f"bytes 2000000-2000099/{BIG_SIZE}"
    assert p.body == tree.big[2000000:2000100]
    assert_same(p, n, RANGE_COMPARED)


def parse_multipart(resp):
    """[(content-type, content-range, data)] of a multipart/byteranges body."""
    ctype = resp.header("Content-Type")
    prefix = "multipart/byteranges; boundary="
    assert ctype and ctype.startswith(prefix), resp
    boundary = ctype[len(prefix):]
    body = resp.body
    delim = b"\r\n--" + boundary.encode()
    assert body.startswith(delim + b"\r\n"), body[:100]
    assert body.endswith(delim + b"--\r\n"), body[-100:]
    parts = []
    for chunk in body[: -len(delim + b"--\r\n")].split(delim)[1:]:
        assert chunk.startswith(b"\r\n"), chunk[:50]
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        assert sep, chunk[:100]
        headers = dict(
            (k.strip().lower(), v.strip()) for k, _, v in (l.decode().partition(":") for l in head.split(b"\r\n"))
        )
        parts.append((headers.get("content-type"), headers.get("content-range"), data))
    return boundary, parts


MULTI_RANGES = [
    ("bytes=0-4,10-14", [("bytes 0-4/100", DIGITS[0:5]), ("bytes 10-14/100", DIGITS[10:15])]),
    ("bytes=0-1,-3", [("bytes 0-1/100", DIGITS[0:2]), ("bytes 97-99/100", DIGITS[97:])]),
    ("bytes=90-,0-0", [("bytes 90-99/100", DIGITS[90:]), ("bytes 0-0/100", DIGITS[:1])]),
    ("bytes=1-2,150-160,5-6", [("bytes 1-2/100", DIGITS[1:3]), ("bytes 5-6/100", DIGITS[5:7])]),
]


@pytest.mark.parametrize("spec, expected", MULTI_RANGES, ids=[m[0] for m in MULTI_RANGES])
def test_several_ranges_multipart_as_nginx(pt, ngx, spec, expected):
    p, n = both(pt, ngx, "/static/digits.txt", headers=[("Range", spec)])
    assert p.status == 206 and n.status == 206, (p, n)
    pb, pparts = parse_multipart(p)
    nb, nparts = parse_multipart(n)
    assert len(pb) == 20 and pb.isdigit(), pb  # nginx's scheme: a 20-digit counter
    assert pparts == [("text/plain", cr, data) for cr, data in expected]
    assert pparts == nparts
    assert p.header("Content-Length") == str(len(p.body))
    assert p.header("ETag") == n.header("ETag") and p.header("Last-Modified") == n.header("Last-Modified")


def test_several_ranges_in_large_file_as_nginx(pt, ngx, tree):
    spec = "bytes=0-9,3000000-3000009"
    p, n = both(pt, ngx, "/static/big.bin", headers=[("Range", spec)])
    assert p.status == 206, p
    _, pparts = parse_multipart(p)
    _, nparts = parse_multipart(n)
    assert [d for _, _, d in pparts] == [tree.big[:10], tree.big[3000000:3000010]]
    assert pparts == nparts


IF_RANGES = [
    ("etag-match", HELLO_ETAG, 206),
    ("etag-mismatch", '"5e0d5da5-1"', 200),
    ("etag-weak", "W/" + HELLO_ETAG, 200),
    ("date-match", MTIME_TEXT, 206),
    ("date-mismatch", LATER, 200),
]


@pytest.mark.parametrize("value, status", [i[1:] for i in IF_RANGES], ids=[i[0] for i in IF_RANGES])
def test_if_range_as_nginx(pt, ngx, tree, value, status):
    headers = [("Range", "bytes=0-4"), ("If-Range", value)]
    p, n = both(pt, ngx, "/static/hello.txt", headers=headers)
    assert p.status == status, p
    full = tree.files["hello.txt"]
    assert p.body == (full[:5] if status == 206 else full)
    assert_same(p, n, RANGE_COMPARED if status == 206 else COMPARED)


@pytest.mark.parametrize("name", ["hello.txt", "big.bin", "app.js"])
def test_head_as_nginx(pt, ngx, tree, name):
    p, n = both(pt, ngx, f"/static/{name}", method="HEAD")
    assert p.status == 200, p
    assert p.body == b"" and p.extra == b"", f"HEAD answer has a body: {p.extra[:80]!r}"
    assert p.header("Content-Length") == str((tree.root / name).stat().st_size)
    assert_same(p, n)


# --- directories -----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/static/sub", "/static/empty", "/static/sub/deeper", "/static/sub?x=1&y=2"])
def test_directory_without_slash_redirects_as_nginx(pt, ngx, tree, target):
    p, n = both(pt, ngx, target)
    assert p.status == 301 and n.status == 301, (p, n)
    path, _, query = target.partition("?")
    want = f"http://127.0.0.1:{{}}{path}/" + (f"?{query}" if query else "")
    assert p.header("Location") == want.format(pt.port), p
    assert n.header("Location") == want.format(ngx.port), n
    assert_no_leak(p, tree)


def test_directory_index_as_nginx(pt, ngx, tree):
    p, n = both(pt, ngx, "/static/sub/")
    assert p.status == 200, p
    assert p.body == tree.files["sub/index.html"]
    assert p.header("Content-Type") == "text/html"
    assert_same(p, n)


@pytest.mark.parametrize("target", ["/static/hello.txt/", "/static/sub/other.txt/"])
def test_file_with_a_trailing_slash_is_not_found_as_nginx(pt, ngx, tree, target):
    # nginx: open("…/hello.txt/") fails with ENOTDIR → 404. portico may also let the
    # app answer (a missing file falls through); the file itself is not the answer.
    p, n = both(pt, ngx, target)
    assert n.status == 404, n
    assert p.status == 404, p
    assert p.body not in (tree.files["hello.txt"], tree.files["sub/other.txt"])


@pytest.mark.parametrize("target", ["/static/empty/", "/static/"])
def test_directory_without_index_is_forbidden_as_nginx(pt, ngx, tree, target):
    p, n = both(pt, ngx, target)
    assert p.status == 403 and n.status == 403, (p, n)
    assert b"keep.txt" not in p.body and b"hello.txt" not in p.body, "a directory listing"
    assert_no_leak(p, tree)


def test_directory_without_static_index_option_is_forbidden(portico_server, tree):
    server = portico_server("--wsgi-file", APP, "--static-map", f"/static={tree.root}")
    r = req(server, "/static/sub/")
    assert r.status == 403, r
    assert b"index of sub" not in r.body and b"other.txt" not in r.body


def test_static_index_is_repeatable_first_existing_wins(portico_server, tree):
    root = tree.base / "idx"
    _write(root / "both" / "index.htm", b"the htm index\n")
    _write(root / "both" / "index.html", b"the html index\n")
    _write(root / "html-only" / "index.html", b"only html\n")
    server = portico_server(
        "--wsgi-file", APP, "--static-map", f"/static={root}",
        "--static-index", "index.htm", "--static-index", "index.html",
    )
    assert req(server, "/static/both/").body == b"the htm index\n"
    r = req(server, "/static/html-only/")
    assert r.status == 200 and r.body == b"only html\n" and r.header("Content-Type") == "text/html"


# --- precompressed siblings ------------------------------------------------------------

GZIP_CASES = [
    ("gzip", [("Accept-Encoding", "gzip")], True),
    ("gzip-deflate-list", [("Accept-Encoding", "deflate, gzip;q=0.8")], True),
    ("none", [], False),
    ("identity", [("Accept-Encoding", "identity")], False),
    ("gzip-q0", [("Accept-Encoding", "gzip;q=0")], False),
]


# nginx's gzip_static answers do not allow ranges (no Accept-Ranges, Range
# ignored); portico's do, on the .gz bytes, which is what RFC 9110 says a
# range of a content-coded representation is. An accepted difference, so
# Accept-Ranges is left out when the .gz is served.
GZIP_COMPARED = tuple(h for h in COMPARED if h != "Accept-Ranges")


@pytest.mark.parametrize("headers, gz", [g[1:] for g in GZIP_CASES], ids=[g[0] for g in GZIP_CASES])
def test_gzip_static_as_nginx(pt, ngx, tree, headers, gz):
    p, n = both(pt, ngx, "/static/app.js", headers=headers)
    assert p.status == 200, p
    assert p.header("Content-Type") == "application/javascript"
    assert p.header("Vary") == "Accept-Encoding"
    if gz:
        assert p.header("Content-Encoding") == "gzip"
        assert p.body == (tree.root / "app.js.gz").read_bytes()
        assert gzip.decompress(p.body) == APP_JS
        assert p.header("ETag") == etag_for(len(p.body), GZ_MTIME)
        assert_same(p, n, GZIP_COMPARED)
    else:
        assert not p.has_header("Content-Encoding")
        assert p.body == APP_JS
        assert_same(p, n)


def test_gzip_static_range_is_a_range_of_the_gz(pt, tree):
    # nginx ignores Range here (200, the whole .gz): see GZIP_COMPARED
    gz = (tree.root / "app.js.gz").read_bytes()
    headers = [("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")]
    r = req(pt, "/static/app.js", headers=headers)
    if r.status == 200:  # nginx's answer is fine too
        assert r.body == gz and r.header("Content-Encoding") == "gzip", r
        return
    assert r.status == 206, r
    assert r.header("Content-Range") == f"bytes 0-9/{len(gz)}"
    assert r.header("Content-Encoding") == "gzip" and r.header("Vary") == "Accept-Encoding"
    assert r.header("ETag") == etag_for(len(gz), GZ_MTIME)
    assert r.body == gz[:10]


def test_no_vary_without_a_sibling_as_nginx(pt, ngx):
    p, n = both(pt, ngx, "/static/hello.txt", headers=[("Accept-Encoding", "gzip")])
    assert not p.has_header("Vary") and not p.has_header("Content-Encoding"), p
    assert_same(p, n)


@pytest.mark.parametrize(
    "accept, coding",
    [("br", "br"), ("gzip", "gzip"), ("br, gzip", None), ("", "")],
)
def test_brotli_sibling(pt, tree, accept, coding):
    # nginx has no brotli module here, so this is portico alone.
    headers = [("Accept-Encoding", accept)] if accept else []
    r = req(pt, "/static/br.js", headers=headers)
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/javascript"
    assert r.header("Vary") == "Accept-Encoding"
    served = {
        "br": (tree.root / "br.js.br").read_bytes(),
        "gzip": (tree.root / "br.js.gz").read_bytes(),
        "": BR_JS,
    }
    if coding is None:  # both accepted: either is right, but it must say which
        coding = r.header("Content-Encoding")
        assert coding in ("br", "gzip"), r
    assert r.header("Content-Encoding", "") == coding
    assert r.body == served[coding]
    assert r.header("Content-Length") == str(len(served[coding]))


# --- expiry ----------------------------------------------------------------------------


def test_expires_by_type_as_nginx_expires_1h(pt, ngx):
    p, n = both(pt, ngx, "/static/style.css")
    now = time.time()
    assert p.status == 200, p
    assert p.header("Cache-Control") == "max-age=3600"
    assert p.header("Cache-Control") == n.header("Cache-Control")
    expires = email.utils.parsedate_to_datetime(p.header("Expires")).timestamp()
    assert abs(expires - (now + 3600)) < 10, p.header("Expires")
    n_expires = email.utils.parsedate_to_datetime(n.header("Expires")).timestamp()
    assert abs(expires - n_expires) < 10
    assert_same(p, n)


def test_no_expires_for_other_types_as_nginx(pt, ngx):
    p, n = both(pt, ngx, "/static/hello.txt")
    assert p.status == 200
    for name in ("Cache-Control", "Expires"):
        assert not p.has_header(name), p
        assert not n.has_header(name), n


def test_an_expiry_past_year_9999_shows_its_last_second(portico_server, tree):
    """A date the HTTP format cannot show (the option is any number of seconds):
    the answer is served with the last second of year 9999, as nginx shows it."""
    server = portico_server("--wsgi-file", APP, "--static-map", f"/static={tree.root}",
                            "--static-expires-type", "text/plain=18446744073709551615")
    r = req(server, "/static/hello.txt")
    assert r.status == 200, r
    assert r.header("Expires") == "Fri, 31 Dec 9999 23:59:59 GMT"
    assert r.header("Cache-Control") == "max-age=18446744073709551615"
    assert req(server, "/static/hello.txt").status == 200, "the worker goes on"


# --- what falls through to the app -----------------------------------------------------


@pytest.mark.parametrize("target", ["/static/missing.txt", "/static/sub/missing.txt"])
def test_missing_file_falls_through_to_the_app(pt, target):
    r = req(pt, target)
    assert r.status == 200, r
    assert r.header("X-App") == "st_app"
    assert r.body == f"st_app: GET {target}".encode()


def test_skip_ext_falls_through_to_the_app(pt, tree):
    assert (tree.root / "script.py").is_file()
    r = req(pt, "/static/script.py")
    assert r.status == 200 and r.header("X-App") == "st_app", r
    assert r.body == b"st_app: GET /static/script.py"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_fall_through_to_the_app(pt, method):
    r = req(pt, "/static/hello.txt", method=method, body=b"x=1" if method != "DELETE" else b"")
    assert r.status == 200 and r.header("X-App") == "st_app", r
    assert r.body == f"st_app: {method} /static/hello.txt".encode()


def test_several_static_maps_a_missing_file_tries_the_next(portico_server, tree):
    first, second = tree.base / "map-a", tree.base / "map-b"
    _write(first / "a.txt", b"from the first map\n")
    _write(second / "a.txt", b"shadowed\n")
    _write(second / "b.txt", b"from the second map\n")
    server = portico_server(
        "--wsgi-file", APP, "--static-map", f"/static={first}", "--static-map", f"/static={second}",
    )
    assert req(server, "/static/a.txt").body == b"from the first map\n"
    assert req(server, "/static/b.txt").body == b"from the second map\n"
    r = req(server, "/static/missing.txt")
    assert r.header("X-App") == "st_app", r


def test_static_map2_keeps_the_prefix(portico_server, tree):
    root = tree.base / "m2root"
    _write(root / "static" / "m2.txt", b"static-map2 keeps /static\n")
    _write(root / "m2.txt", b"not this one\n")
    server = portico_server("--wsgi-file", APP, "--static-map2", f"/static={root}", "--offload-threads", "2")
    r = req(server, "/static/m2.txt")
    assert r.status == 200 and r.body == b"static-map2 keeps /static\n", r
    assert r.header("Content-Type") == "text/plain"
    r = req(server, "/static/missing.txt")
    assert r.header("X-App") == "st_app", r


def test_check_static_serves_any_path(portico_server, tree):
    root = tree.base / "csroot"
    _write(root / "robots.txt", b"User-agent: *\n")
    _write(root / "deep" / "x.json", b"{}\n")
    server = portico_server("--wsgi-file", APP, "--check-static", root)
    r = req(server, "/robots.txt")
    assert r.status == 200 and r.body == b"User-agent: *\n" and not r.has_header("X-App"), r
    r = req(server, "/deep/x.json")
    assert r.status == 200 and r.header("Content-Type") == "application/json", r
    r = req(server, "/app")
    assert r.status == 200 and r.header("X-App") == "st_app", r
    r = req(server, "/../secret.txt")
    assert r.status in (400, 403, 404), r
    assert_no_leak(r, tree)


# --- changes on disk, large files, slow clients ----------------------------------------


def test_changed_file_is_noticed_on_the_next_request(pt, ngx, tree):
    path = tree.root / "changing.txt"
    _write(path, b"version one\n", MTIME)
    r1 = req(pt, "/static/changing.txt")
    assert r1.body == b"version one\n" and r1.header("ETag") == etag_for(12), r1
    req(pt, "/static/changing.txt")  # now certainly cached
    _write(path, b"version two, longer\n", MTIME + 5)
    r2 = req(pt, "/static/changing.txt")
    assert r2.body == b"version two, longer\n", r2
    assert r2.header("ETag") == etag_for(20, MTIME + 5) != r1.header("ETag")
    assert r2.header("Content-Length") == "20"
    assert_same(r2, req(ngx, "/static/changing.txt"))
    # same size, new mtime: still noticed
    _write(path, b"version TWO, longer\n", MTIME + 9)
    r3 = req(pt, "/static/changing.txt")
    assert r3.body == b"version TWO, longer\n" and r3.header("ETag") == etag_for(20, MTIME + 9), r3
    # the old validator no longer gives 304
    r4 = req(pt, "/static/changing.txt", headers=[("If-None-Match", r2.header("ETag"))])
    assert r4.status == 200 and r4.body == b"version TWO, longer\n", r4


def test_large_file_as_nginx(pt, ngx, tree):
    p, n = both(pt, ngx, "/static/big.bin")
    assert p.status == 200, p
    assert p.header("Content-Length") == str(BIG_SIZE)
    assert p.header("Content-Type") == "application/octet-stream"
    assert len(p.body) == BIG_SIZE and p.body == tree.big
    assert_same(p, n)


def test_slow_readers_of_a_large_file_do_not_block_other_requests(pt, tree):
    slow = []
    try:
        for _ in range(4):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # a small receive buffer (set before connecting, so the window is right):
            # the 3 MiB cannot all sit in kernel buffers, the server must wait on us
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.settimeout(10)
            sock.connect((pt.host, pt.port))
            c = Conn(pt.host, pt.port, sock=sock)
            c.send(build("GET", "/static/big.bin", host="x"))
            slow.append(c)
        time.sleep(0.3)  # the server now waits to write to every one of them
        t0 = time.monotonic()
        r = req(pt, "/app")
        assert r.status == 200 and r.header("X-App") == "st_app", r
        r = req(pt, "/static/hello.txt")
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
        assert time.monotonic() - t0 < 2.0
        for c in slow:  # and the slow ones still get every byte
            resp = c.read_response()
            assert resp.complete and resp.body == tree.big
    finally:
        for c in slow:
            c.close()


# --- safety ----------------------------------------------------------------------------

TRAVERSALS = [
    "/static/../secret.txt",
    "/static/..%2fsecret.txt",
    "/static/..%2Fsecret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/sub/../../secret.txt",
    "/static/sub/..%2f..%2fsecret.txt",
    "/static/./../secret.txt",
    "/static//../secret.txt",
    "/static/..\\secret.txt",
    "/static/..%5csecret.txt",
    "/static/sub%5c..%5c..%5csecret.txt",
    "/static/..%00/secret.txt",
    "/static/hello.txt%00.png",
    "/static/%00",
    "/static/%c0%ae%c0%ae/secret.txt",
    "/static/%c0%ae%c0%ae%c0%afsecret.txt",
    "/static/%e0%80%ae%e0%80%ae/secret.txt",
    "/static/../../../../../../../../etc/passwd",
    "/static/link-secret.txt",
    "/static/link-secret-abs.txt",
    "/static/sub/up-secret.txt",
    "/static/idxout/",
    "/static/.env",
    "/static/.git/config",
    "/static/%2egit/config",
    "/static/sub/.hidden",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_nothing_outside_the_root_is_served(pt, tree, target):
    r = req(pt, target)
    assert r.status in (403, 404), r
    assert_no_leak(r, tree)
    assert b"root:" not in r.body


@pytest.mark.parametrize("target", ["/static/.env", "/static/.git/config", "/static/%2eenv"])
def test_dotfiles_are_refused(pt, tree, target):
    r = req(pt, target)
    assert r.status == 403, r
    assert not r.has_header("X-App")
    assert_no_leak(r, tree)


@pytest.mark.parametrize("target", ["/static/link-out.txt", "/static/outdir/shared.txt"])
def test_symlink_out_of_the_root_is_forbidden(pt, tree, target):
    r = req(pt, target)
    assert r.status == 403, r
    assert b"shared through" not in r.body
    assert_no_leak(r, tree)


def test_symlink_inside_the_root_is_served(pt, tree):
    r = req(pt, "/static/link-in.txt")
    assert r.status == 200 and r.body == tree.files["hello.txt"], r


def test_static_safe_allows_symlinks_into_it(portico_server, tree):
    server = portico_server(
        "--wsgi-file", APP, "--static-map", f"/static={tree.root}", "--static-safe", tree.outside
    )
    for target in ("/static/link-out.txt", "/static/outdir/shared.txt"):
        r = req(server, target)
        assert r.status == 200 and r.body == b"shared through --static-safe\n", r
    # only that directory: the secret next to it stays out of reach
    for target in ("/static/link-secret.txt", "/static/link-secret-abs.txt"):
        r = req(server, target)
        assert r.status == 403, r
        assert_no_leak(r, tree)


def test_precompressed_sibling_symlinked_out_of_the_root_is_not_served(pt, tree):
    # leak.js is a real file in the root; leak.js.gz is a symlink to ../secret.txt
    r = req(pt, "/static/leak.js", headers=[("Accept-Encoding", "gzip")])
    assert_no_leak(r, tree)
    assert r.status in (200, 403, 404), r
    if r.status == 200:
        assert r.body == tree.files["leak.js"] and not r.has_header("Content-Encoding"), r
