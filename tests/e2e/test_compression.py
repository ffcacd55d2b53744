"""Compression on the fly (issue 13): gzip and brotli through the real binary.

Option style (`--gzip`, `--brotli`, `--gzip-types`, `--http-auto-gzip`) in front
of tests/e2e/apps/gz_app.py and a `--static-map` tree: decoded bodies equal the
originals across sizes (0, 19, 20, 4 KiB, 1 MiB) and the app's chunkings (many
small pieces, one big piece, a body with its length); the headers nginx sets
(Vary, no Content-Length, a weak ETag); no compression for 206, 304, answers
already encoded, HEAD (which gets GET's headers), HTTP/1.0 and `gzip;q=0`; br
chosen over gzip.

nginx.conf style: the same app behind `uwsgi_pass` (in process for Portico, a
separate `portico --socket` for nginx), a proxied JSON backend
(echo_backend.py) and static files, served by the real nginx 1.22 and by
`portico -c` with the same `gzip*` directives (nginx_diff.DiffPair): statuses,
Content-Encoding, Vary, ETag, Content-Type, the absence of Content-Length and
the decoded bodies are compared (not the compressed bytes: zlib and zlib-rs
cut blocks differently). The same for `brotli*`, with Debian's ngx_brotli
filter module (libnginx-mod-http-brotli-filter, installed by scripts/test.sh)
loaded into nginx alone.
"""

import gzip
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import brotli
import pytest

import nginx_diff
from conftest import APPS
from echo_backend import EchoBackends
from httpraw import Conn, build
from nginx_diff import TOKEN_RE, DiffPair, fetch_port
from nginxctl import address, portico
from ports import free_port

APP = APPS / "gz_app.py"
MTIME = 0x5E0D5DA5


def text(n):
    """The app's text (gz_app.text)."""
    line = b"line %06d of the compression test, portico vs nginx\n"
    return b"".join(line % i for i in range(n // 50 + 1))[:n]


def decoded(answer):
    coding = answer.headers.get("content-encoding")
    if answer.body == b"" and coding:
        return b""  # HEAD, or a cut answer (whose completeness is checked apart)
    if coding == "gzip":
        return gzip.decompress(answer.body)
    if coding == "br":
        return brotli.decompress(answer.body)
    assert coding is None, answer
    return answer.body


@pytest.fixture(scope="module")
def static_root():
    root = Path(tempfile.mkdtemp(prefix="portico-gz-static-", dir="/tmp"))
    os.chmod(root, 0o755)
    files = {"page.html": text(5000), "tiny.html": text(10), "notes.txt": text(3000)}
    for name, data in files.items():
        (root / name).write_bytes(data)
        os.chmod(root / name, 0o644)
        os.utime(root / name, (MTIME, MTIME))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def gz(portico_server, static_root):
    """portico --gzip --brotli ... in front of the app and the static tree."""
    server = portico_server("--wsgi-file", APP, "--gzip", "--brotli",
                            "--gzip-types", "application/json text/plain",
                            "--static-map", f"/static={static_root}", "--http-auto-gzip")
    return lambda method="GET", target="/", headers=None, **kw: fetch_port(
        server.port, method, target, headers, **kw)


SIZES = [0, 19, 20, 4096, 1 << 20]
ROUTES = ["size", "pieces", "one"]


@pytest.mark.parametrize("coding", ["gzip", "br"])
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
def test_decoded_bodies_equal_the_originals_across_sizes_and_chunkings(gz, size, route, coding):
    a = gz("GET", f"/{route}/{size}", {"Accept-Encoding": coding})
    assert a.status == 200 and a.complete, a
    # Only a known length under gzip_min_length (20) is sent as it is; an
    # empty body always has a known length (the WSGI bridge sees it end).
    expected = None if (route == "size" and size < 20) or size == 0 else coding
    assert a.headers.get("content-encoding") == expected, a
    assert decoded(a) == text(size)
    # Vary on every answer that qualifies (too short ones do not).
    assert a.headers.get("vary") == ("Accept-Encoding" if expected else None), a
    if expected:
        assert "content-length" not in a.headers and a.chunked, a


def test_a_compressed_answer_loses_its_length_and_ranges_and_its_etag_weakens(gz):
    a = gz("GET", "/etag/3000", {"Accept-Encoding": "gzip"})
    assert a.headers.get("content-encoding") == "gzip"
    assert a.headers.get("etag") == 'W/"v1-abc"'
    assert "content-length" not in a.headers and "accept-ranges" not in a.headers
    assert decoded(a) == text(3000)
    plain = gz("GET", "/etag/3000")
    assert plain.headers.get("etag") == '"v1-abc"'
    assert plain.headers.get("content-length") == "3000"
    assert plain.headers.get("vary") == "Accept-Encoding"


def test_types_follow_gzip_types(gz):
    a = gz("GET", "/json/3000", {"Accept-Encoding": "gzip"})
    assert a.headers.get("content-encoding") == "gzip" and decoded(a) == text(3000)
    a = gz("GET", "/status/200", {"Accept-Encoding": "gzip"})
    assert a.headers.get("content-encoding") == "gzip"


@pytest.mark.parametrize("status,compressed", [(200, True), (404, True), (403, True),
                                               (500, False), (201, False)])
def test_only_200_403_and_404_are_compressed(gz, status, compressed):
    a = gz("GET", f"/status/{status}", {"Accept-Encoding": "gzip"})
    assert a.status == status
    assert (a.headers.get("content-encoding") == "gzip") == compressed, a
    assert decoded(a) == text(100)


def test_br_is_chosen_over_gzip_and_q_zero_refuses(gz):
    for ae, want in [("gzip, deflate, br", "br"), ("br;q=0.1, gzip", "br"),
                     ("br;q=0, gzip", "gzip"), ("gzip;q=0", None), ("br;q=0, gzip;q=0", None),
                     ("identity", None), ("deflate", None)]:
        a = gz("GET", "/size/4096", {"Accept-Encoding": ae})
        assert a.headers.get("content-encoding") == want, (ae, a)
        assert decoded(a) == text(4096)


def test_no_compression_for_already_encoded_answers(gz):
    a = gz("GET", "/encoded/4096", {"Accept-Encoding": "gzip"})
    assert a.headers.get("content-encoding") == "gzip"
    assert a.headers.get("content-length") == str(len(a.body))
    assert gzip.decompress(a.body) == text(4096)  # once, not twice


def test_head_gets_the_headers_get_would_have(gz):
    get = gz("GET", "/size/4096", {"Accept-Encoding": "gzip"})
    head = gz("HEAD", "/size/4096", {"Accept-Encoding": "gzip"})
    assert head.status == 200 and head.body == b""
    for name in ("content-encoding", "vary", "content-length", "content-type"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_http10_requests_are_not_compressed(gz):
    a = gz("GET", "/size/4096", {"Accept-Encoding": "gzip"}, version="HTTP/1.0")
    assert a.status == 200 and "content-encoding" not in a.headers
    assert a.body == text(4096)


def test_static_files_compress_but_not_ranges_or_not_modified(gz):
    a = gz("GET", "/static/page.html", {"Accept-Encoding": "gzip"})
    assert a.headers.get("content-encoding") == "gzip" and decoded(a) == text(5000)
    etag = a.headers.get("etag")
    assert etag and etag.startswith('W/"'), a
    a = gz("GET", "/static/notes.txt", {"Accept-Encoding": "br"})
    assert a.headers.get("content-encoding") == "br" and decoded(a) == text(3000)
    a = gz("GET", "/static/tiny.html", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in a.headers and a.body == text(10)
    ranged = gz("GET", "/static/page.html", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert ranged.status == 206 and "content-encoding" not in ranged.headers
    assert ranged.body == text(10)
    strong = gz("GET", "/static/page.html").headers["etag"]
    cond = gz("GET", "/static/page.html",
              {"Accept-Encoding": "gzip", "If-None-Match": strong})
    assert cond.status == 304 and "content-encoding" not in cond.headers


def test_http_auto_gzip_compresses_the_answers_the_app_marks(gz):
    a = gz("GET", "/auto/3000", {"Accept-Encoding": "gzip"})
    assert a.headers.get("content-encoding") == "gzip" and decoded(a) == text(3000)
    assert "uwsgi-encoding" not in a.headers
    a = gz("GET", "/auto/3000")
    assert "content-encoding" not in a.headers and "uwsgi-encoding" not in a.headers
    assert a.body == text(3000)


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_a_stream_is_compressed_as_it_streams(portico_server, coding):
    """The app sends 2 KiB, then waits 2 s: the client decodes the 2 KiB before
    the pause ends (what was fed is flushed when the producer has nothing ready)."""
    server = portico_server("--wsgi-file", APP, "--gzip", "--brotli")
    with Conn("127.0.0.1", server.port, 10) as conn:
        conn.send(build("GET", "/slow/2048", [("Accept-Encoding", coding)], host="x"))
        started = time.monotonic()
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.read_available(0.05)
        head, _, rest = head.partition(b"\r\n\r\n")
        assert f"content-encoding: {coding}".encode() in head.lower(), head
        raw, got = rest, b""
        while len(got) < 2048 and time.monotonic() - started < 1.5:
            raw += conn.read_available(0.05)
            # a fresh decoder over everything so far: what it can decode now
            if coding == "gzip":
                got = zlib.decompressobj(31).decompress(dechunk(raw))
            else:
                got = brotli.Decompressor().process(dechunk(raw))
        assert got == text(2048), (len(got), time.monotonic() - started)
        assert time.monotonic() - started < 1.5


def dechunk(data):
    """The payload of the complete chunks in `data` (a chunked body so far)."""
    out = b""
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return out
        size = int(line.split(b";")[0], 16)
        if size == 0 or len(rest) < size + 2:
            return out
        out += rest[:size]
        data = rest[size + 2:]


def test_gzip_option_applies_to_the_app_server_beside_an_nginx_conf(static_root):
    """`portico -c nginx.conf --http ADDR --wsgi-file APP --gzip`: the option-style
    app's server compresses; the nginx.conf's own server (no gzip) does not."""
    site_port, app_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="portico-gz-conf-") as d:
        conf = Path(d) / "nginx.conf"
        conf.write_text("events {}\nhttp { access_log off;\n"
                        f"  server {{ listen 127.0.0.1:{site_port}; root {static_root}; }}\n}}\n")
        with portico("-p", f"{d}/", "-c", conf, "--http", f"127.0.0.1:{app_port}",
                     "--wsgi-file", APP, "--gzip"):
            a = fetch_port(app_port, "GET", "/size/4096", {"Accept-Encoding": "gzip"})
            assert a.headers.get("content-encoding") == "gzip", a
            assert a.headers.get("vary") == "Accept-Encoding" and decoded(a) == text(4096)
            b = fetch_port(site_port, "GET", "/page.html", {"Accept-Encoding": "gzip"})
            assert b.status == 200 and "content-encoding" not in b.headers, b
            assert b.body == text(5000)


def test_option_style_minimum_level_and_proxied(portico_server):
    server = portico_server("--wsgi-file", APP, "--gzip", "--gzip-min-length", "5000",
                            "--gzip-level", "9", "--gzip-proxied", "any")
    get = lambda target, **h: fetch_port(server.port, "GET", target,  # noqa: E731
                                         {"Accept-Encoding": "gzip", **h})
    assert "content-encoding" not in get("/size/4096").headers
    a = get("/size/6000")
    assert a.headers.get("content-encoding") == "gzip" and decoded(a) == text(6000)
    level1 = portico_server("--wsgi-file", APP, "--gzip")
    b = fetch_port(level1.port, "GET", "/size/6000", {"Accept-Encoding": "gzip"})
    assert len(a.body) < len(b.body), "level 9 makes less than level 1"
    assert get("/size/6000", Via="1.1 cdn").headers.get("content-encoding") == "gzip"
    c = fetch_port(level1.port, "GET", "/size/6000", {"Accept-Encoding": "gzip", "Via": "1.1 cdn"})
    assert "content-encoding" not in c.headers, "gzip_proxied off by default"


def test_without_gzip_nothing_is_compressed(portico_server):
    server = portico_server("--wsgi-file", APP)
    a = fetch_port(server.port, "GET", "/size/4096", {"Accept-Encoding": "gzip, br"})
    assert "content-encoding" not in a.headers and "vary" not in a.headers
    assert a.body == text(4096)


# --- nginx.conf: the same directives as nginx, answer by answer -------------------------

CONF = """
gzip on;
gzip_types text/plain application/json;
gzip_vary on;
gzip_min_length 20;
gzip_comp_level 1;
gzip_disable msie6 "^BadBot";
server {
    listen {port};
    root html;
    location /app/ { include uwsgi_params; uwsgi_pass {app}; }
    location /proxy/ { proxy_pass http://{backend}/; }
    location /off/ { gzip off; }
    location /any/ { gzip_proxied any; gzip_types *; gzip_min_length 4000; }
    location /expired/ { gzip_proxied expired; expires -1h; }
    location /nolm/ { gzip_proxied no_last_modified; }
    location /v10/ { gzip_http_version 1.0; }
}
"""

TREE = {
    "html/page.html": text(5000),
    "html/tiny.html": text(10),
    "html/notes.txt": text(3000),
    "html/logo.gif": text(3000),
    "html/off/page.html": text(5000),
    "html/any/page.html": text(5000),
    "html/any/logo.gif": text(3000),
    "html/any/short.gif": text(4500),
    "html/expired/page.html": text(5000),
    "html/nolm/page.html": text(5000),
    "html/v10/page.html": text(5000),
}


@pytest.fixture(scope="module")
def pair():
    with portico("--socket", "127.0.0.1:0", "--wsgi-file", APP) as app, \
            EchoBackends("backend") as backends:
        host, port = address(app, "uwsgi")
        own = f"127.0.0.1:{free_port()}"
        subs = {"app": f"{host}:{port}", **backends.subs()}
        with DiffPair(CONF, TREE, subs, portico_args=("--socket", own, "--wsgi-file", APP),
                      portico_subs={"app": own}) as p:
            yield p


def seen(answer):
    """What is compared of one answer."""
    h = answer.headers
    body = decoded(answer)
    return {
        "status": answer.status,
        "content-encoding": h.get("content-encoding"),
        "vary": h.get("vary"),
        "etag": h.get("etag"),
        "content-type": h.get("content-type"),
        "has-length": "content-length" in h,
        "accept-ranges": h.get("accept-ranges"),
        "body": TOKEN_RE.sub(b"<center>SERVER</center>", body),
    }


DIFF_CASES = [
    ("GET", "/page.html", {"Accept-Encoding": "gzip"}),
    ("GET", "/page.html", {"Accept-Encoding": "gzip, deflate, br"}),
    ("GET", "/page.html", {"Accept-Encoding": "deflate,gzip;q=0.5"}),
    ("GET", "/page.html", {"Accept-Encoding": "gzip;q=0"}),
    ("GET", "/page.html", {"Accept-Encoding": "x-gzip"}),
    ("GET", "/page.html", {}),
    ("HEAD", "/page.html", {"Accept-Encoding": "gzip"}),
    ("GET", "/tiny.html", {"Accept-Encoding": "gzip"}),
    ("GET", "/notes.txt", {"Accept-Encoding": "gzip"}),
    ("GET", "/logo.gif", {"Accept-Encoding": "gzip"}),
    ("GET", "/missing.html", {"Accept-Encoding": "gzip"}),
    ("GET", "/off/page.html", {"Accept-Encoding": "gzip"}),
    ("GET", "/page.html", {"Accept-Encoding": "gzip", "Via": "1.1 cache"}),
    ("GET", "/page.html", {"Accept-Encoding": "gzip", "If-None-Match": '"5e0d5da5-1388"'}),
    # The weak ETag a compressed answer carries revalidates it.
    ("GET", "/page.html", {"Accept-Encoding": "gzip", "If-None-Match": 'W/"5e0d5da5-1388"'}),
    ("GET", "/app/etag/3000", {"Accept-Encoding": "gzip", "If-None-Match": 'W/"v1-abc"'}),
    ("GET", "/page.html", {"Accept-Encoding": "gzip", "User-Agent": "BadBot/2.0"}),
    ("GET", "/page.html", {"Accept-Encoding": "gzip", "User-Agent": "badbot/2.0"}),
    ("GET", "/page.html", {"Accept-Encoding": "gzip",
                           "User-Agent": "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"}),
    ("GET", "/any/page.html", {"Accept-Encoding": "gzip", "Via": "1.1 cache"}),
    ("GET", "/any/logo.gif", {"Accept-Encoding": "gzip"}),
    ("GET", "/any/short.gif", {"Accept-Encoding": "gzip"}),
    ("GET", "/expired/page.html", {"Accept-Encoding": "gzip", "Via": "1.1 cache"}),
    ("GET", "/nolm/page.html", {"Accept-Encoding": "gzip", "Via": "1.1 cache"}),
    ("GET", "/app/size/4096", {"Accept-Encoding": "gzip", "Via": "1.1 cache"}),
    ("GET", "/app/size/4096", {"Accept-Encoding": "gzip"}),
    ("GET", "/app/size/10", {"Accept-Encoding": "gzip"}),
    ("GET", "/app/pieces/30000", {"Accept-Encoding": "gzip"}),
    ("GET", "/app/one/1048576", {"Accept-Encoding": "gzip"}),
    ("GET", "/app/etag/3000", {"Accept-Encoding": "gzip"}),
    ("GET", "/app/encoded/3000", {"Accept-Encoding": "gzip"}),
    ("GET", "/app/json/3000", {"Accept-Encoding": "gzip"}),
    ("GET", "/app/status/404", {"Accept-Encoding": "gzip"}),
    ("GET", "/app/status/500", {"Accept-Encoding": "gzip"}),
]


@pytest.mark.parametrize("method,target,headers", DIFF_CASES,
                         ids=[f"{m}-{t}-{'+'.join(f'{k}={v}' for k, v in h.items())}"
                              for m, t, h in DIFF_CASES])
def test_answers_equal_nginx_gzip(pair, method, target, headers):
    a, b = pair.both(method, target, headers)
    assert a.status != 0 and b.status != 0, (a, b)
    assert seen(b) == seen(a), f"\nnginx:   {a!r}\nportico: {b!r}"


def test_http10_is_answered_as_nginx_does(pair):
    a, b = pair.both("GET", "/page.html", {"Accept-Encoding": "gzip"}, version="HTTP/1.0")
    assert seen(b) == seen(a)
    assert a.headers.get("content-encoding") is None
    # gzip_http_version 1.0: compressed, delimited by the close.
    a, b = pair.both("GET", "/v10/page.html", {"Accept-Encoding": "gzip"}, version="HTTP/1.0")
    assert seen(b) == seen(a)
    assert a.headers.get("content-encoding") == "gzip" and b.complete and not b.chunked


def test_proxied_json_is_compressed_as_nginx_does(pair):
    headers = {"Accept-Encoding": "gzip", "X-Echo-Size": "6000"}
    a, b = pair.both("GET", "/proxy/data", headers)
    for answer in (a, b):
        assert answer.status == 200, answer
        assert answer.headers.get("content-encoding") == "gzip", answer
        assert answer.headers.get("vary") == "Accept-Encoding"
        assert "content-length" not in answer.headers
        assert len(decoded(answer)) == 6000
    assert b.headers.get("content-type") == a.headers.get("content-type")


def test_a_range_request_differs_from_nginx_on_purpose(pair):
    """nginx gzips the whole file and ignores Range (its range filter sees no
    length); Portico answers the range, uncompressed (docs/compat.md)."""
    headers = {"Accept-Encoding": "gzip", "Range": "bytes=0-9"}
    a, b = pair.both("GET", "/page.html", headers)
    assert (a.status, a.headers.get("content-encoding")) == (200, "gzip"), a
    assert decoded(a) == text(5000)
    assert (b.status, b.headers.get("content-encoding"), b.body) == (206, None, text(10)), b


# --- brotli: ngx_brotli's filter module in nginx, the same directives in Portico ---------

BROTLI_MODULE = Path("/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so")

BROTLI_CONF = """
gzip on;
gzip_vary on;
brotli on;
brotli_comp_level 4;
brotli_types text/plain application/json;
server {
    listen {port};
    root html;
    location /app/ { include uwsgi_params; uwsgi_pass {app}; }
    location /short/ { brotli_min_length 6000; }
    location /nobr/ { brotli off; }
}
"""

BROTLI_TREE = {
    "html/page.html": text(5000),
    "html/tiny.html": text(10),
    "html/notes.txt": text(3000),
    "html/logo.gif": text(3000),
    "html/short/page.html": text(5000),
    "html/nobr/page.html": text(5000),
}


class BrotliNginx(nginx_diff.NginxSide):
    """nginx with ngx_brotli's filter loaded (a main-context line, nginx's alone)."""

    def config_text(self):
        return f"load_module {BROTLI_MODULE};\n" + super().config_text()


@pytest.fixture(scope="module")
def br_pair():
    assert BROTLI_MODULE.exists(), "libnginx-mod-http-brotli-filter is missing (scripts/test.sh installs it)"
    with portico("--socket", "127.0.0.1:0", "--wsgi-file", APP) as app:
        host, port = address(app, "uwsgi")
        own = f"127.0.0.1:{free_port()}"
        pair = DiffPair(BROTLI_CONF, BROTLI_TREE, {"app": f"{host}:{port}"},
                        portico_args=("--socket", own, "--wsgi-file", APP),
                        portico_subs={"app": own})
        plain = nginx_diff.NginxSide
        nginx_diff.NginxSide = BrotliNginx
        try:
            pair.start()
        finally:
            nginx_diff.NginxSide = plain
        try:
            yield pair
        finally:
            pair.close()


BR_CASES = [
    ("GET", "/page.html", {"Accept-Encoding": "br"}),
    ("GET", "/page.html", {"Accept-Encoding": "gzip, deflate, br"}),
    ("GET", "/page.html", {"Accept-Encoding": "br;q=0, gzip"}),
    ("GET", "/page.html", {"Accept-Encoding": "br;q=0.5"}),
    ("GET", "/page.html", {"Accept-Encoding": "brotli"}),
    ("HEAD", "/page.html", {"Accept-Encoding": "br"}),
    ("GET", "/tiny.html", {"Accept-Encoding": "br"}),
    ("GET", "/notes.txt", {"Accept-Encoding": "br"}),
    ("GET", "/logo.gif", {"Accept-Encoding": "br"}),
    ("GET", "/missing.html", {"Accept-Encoding": "br"}),
    ("GET", "/short/page.html", {"Accept-Encoding": "br, gzip"}),
    ("GET", "/nobr/page.html", {"Accept-Encoding": "br, gzip"}),
    ("GET", "/app/size/4096", {"Accept-Encoding": "br"}),
    ("GET", "/app/pieces/30000", {"Accept-Encoding": "br"}),
    ("GET", "/app/one/1048576", {"Accept-Encoding": "gzip, br"}),
    ("GET", "/app/encoded/3000", {"Accept-Encoding": "br"}),
    ("GET", "/app/json/3000", {"Accept-Encoding": "br"}),
    ("GET", "/app/etag/3000", {"Accept-Encoding": "br"}),
]


@pytest.mark.parametrize("method,target,headers", BR_CASES,
                         ids=[f"{m}-{t}-{'+'.join(f'{k}={v}' for k, v in h.items())}"
                              for m, t, h in BR_CASES])
def test_answers_equal_nginx_with_ngx_brotli(br_pair, method, target, headers):
    a, b = br_pair.both(method, target, headers)
    assert a.status != 0 and b.status != 0, (a, b)
    assert seen(b) == seen(a), f"\nnginx:   {a!r}\nportico: {b!r}"


@pytest.mark.parametrize("headers,version", [
    ({"Accept-Encoding": "br", "Via": "1.1 cache"}, "HTTP/1.1"),
    ({"Accept-Encoding": "br"}, "HTTP/1.0"),
], ids=["via", "http10"])
def test_br_follows_the_core_tests_unlike_ngx_brotli(br_pair, headers, version):
    """ngx_brotli skips gzip_proxied and gzip_http_version; Portico applies them
    to br too (docs/compat.md): nginx answers br, Portico as it is."""
    a, b = br_pair.both("GET", "/page.html", headers, version=version)
    assert a.headers.get("content-encoding") == "br", a
    assert b.headers.get("content-encoding") is None, b
    assert decoded(a) == b.body == text(5000)
