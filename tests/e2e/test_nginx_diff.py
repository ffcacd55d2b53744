"""`portico -c nginx.conf` against the real nginx 1.22, answer by answer
(issue 15, "Must show": the differential tests).

Each config under tests/e2e/configs/nginx/ is served by one nginx and one
Portico for the whole module (tests/e2e/nginx_diff.py); every case sends the
same raw request to both and compares status, Location, Content-Type,
Content-Length, ETag, Last-Modified and body (ports and the server token
normalised). Each case also pins what nginx answered (status, and a body
snippet where it names the location or server that won), so a case that
stops testing what it says fails even in self-test mode.

    NGINX_DIFF_SELFTEST=1 ...pytest tests/e2e/test_nginx_diff.py   # nginx vs nginx
    PORTICO_BIN=... ...pytest tests/e2e/test_nginx_diff.py          # nginx vs portico

The module is skipped only while `portico -t -c` says `not wired yet`
(nginx_diff.live_mark()).
"""

import pytest

import nginx_diff
from nginx_diff import DiffPair, load_config

pytestmark = nginx_diff.live_mark()

DIGITS = b"0123456789" * 10

# The file tree of static.conf. Every file and directory has mtime nginx_diff.MTIME.
TREE = {
    "html/index.html": "<h1>root index</h1>\n",
    "html/a.txt": "plain text a\n",
    "html/style.css": "body { color: red; }\n",
    "html/app.js": "console.log('app');\n",
    "html/img/logo.png": bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001"),
    "html/noext": "no extension\n",
    "html/digits.txt": DIGITS,
    "html/spa.html": "<p>spa fallback</p>\n",
    "html/custom404.html": "<p>custom 404 page</p>\n",
    "html/forbidden.html": "<p>custom 403 page</p>\n",
    "html/ep.txt": "error page body\n",
    "html/sub/index.html": "<p>sub index</p>\n",
    "html/dir2/index.htm": "<p>second index name</p>\n",
    "html/empty/": None,
    "html/idx/index.html": "<p>never served: /idx/index.html has its own location</p>\n",
    "html/absidx/": None,
    "html/absidx-fallback.txt": "absolute index fallback\n",
    "html/tf/real.txt": "try_files real file\n",
    "html/tf/dir/index.html": "<p>try_files dir index</p>\n",
    "html/tf404/real.txt": "tf404 real\n",
    "html/tfnamed/real.txt": "tfnamed real\n",
    "html/auto/b file.txt": "b\n",
    "html/auto/a&b<c>.txt": "escaped name\n",
    "html/auto/" + "x" * 60 + ".txt": "long name\n",
    "html/auto/\u00e9t\u00e9.txt": "utf-8 name\n",
    "html/auto/.hidden": "hidden\n",
    "html/auto/zdir/inner.txt": "inner\n",
    "html/auto/adir/": None,
    "html/auto/big.bin": b"\0" * 5000,
    "html/exp/x.css": ".x { }\n",
    "html/hdr/a.txt": "headers\n",
    "html/acl-allow-local/f.txt": "acl\n",
    "html/acl-deny-local/f.txt": "acl\n",
    "html/acl-cidr/f.txt": "acl\n",
    "html/acl-cidr-other/f.txt": "acl\n",
    "html/acl-all/f.txt": "acl\n",
    "html/acl-first/f.txt": "acl\n",
    "html/ep-deny/f.txt": "acl\n",
    "html/rwb/": None,
    "aliased/one.txt": "aliased one\n",
    "aliased/sub/two.txt": "aliased two\n",
    "aliased/index.html": "<p>aliased index</p>\n",
    "secret/secret.txt": "SECRET-MARKER-7f3a\n",
}


def tree(root):
    nginx_diff.build_tree(root, {k: v for k, v in TREE.items() if v is not None})
    for k, v in TREE.items():
        if v is None:
            (root / k).mkdir(parents=True, exist_ok=True)
    nginx_diff.build_tree(root, {})  # modes and directory mtimes once more


@pytest.fixture(scope="module")
def locations():
    with DiffPair(load_config("locations.conf")) as p:
        yield p


@pytest.fixture(scope="module")
def servers():
    with DiffPair(load_config("servers.conf")) as p:
        yield p


@pytest.fixture(scope="module")
def static():
    with DiffPair(load_config("static.conf"), tree) as p:
        yield p


# --- location selection ---------------------------------------------------------------

# (URI, the location nginx picks). Each location answers `loc-NAME $uri`.
LOCATIONS = [
    ("/", "exact-root"),
    ("/index.html", "root"),
    ("/exact", "exact"),
    ("/exact?x=1", "exact"),
    ("/exact/", "exact-prefix"),
    ("/exactly", "exact-prefix"),
    ("/exact/re", "exact-re"),
    ("/a", "a"),
    ("/a/", "a"),
    ("/ab", "a"),
    ("/a/b", "a-b"),
    ("/a/bc", "a-b"),
    ("/a/b/", "a-b"),
    ("/a/b/c", "a-b"),
    ("/a/b/c/", "a-b-c"),
    ("/a/b/c/d", "a-b-c"),
    ("/a/b/re", "a-b-re"),
    ("/a/b/c/x.gif", "re-img"),
    ("/a/b/c/x.JPG", "a-b-c"),
    ("/A", "root"),
    ("/static", "root"),
    ("/static/", "static"),
    ("/static/x.css", "static-css"),
    ("/static/x.gif", "static"),
    ("/static/deep/x.css", "static-deep"),
    ("/static/deep/y", "static-deep"),
    ("/images", "root"),
    ("/images/", "images"),
    ("/images/x.png", "images-png"),
    ("/images/x.PNG", "re-png-ci"),
    ("/images/x.gif", "re-img"),
    ("/images/thumbs/", "images-thumbs"),
    ("/images/thumbs/x.png", "images-png"),
    ("/images/thumbs/x.jpg", "re-img"),
    ("/nested/", "nested"),
    ("/nested/deep", "nested"),
    ("/nested/deep/", "nested-deep"),
    ("/nested/deep/a.txt", "nested-deep-txt"),
    ("/nested/deep/a.gif", "re-img"),
    ("/nested/deep/re", "nested-deep"),
    ("/nested/re", "nested-re"),
    ("/nested/x.txt", "nested"),
    ("/order/first", "order-first"),
    ("/order/second", "order-second"),
    ("/order/ci", "order-second"),
    ("/order/CI", "order-second"),
    ("/ORDER/CI", "order-ci"),
    ("/x.gif", "re-img"),
    ("/x.GIF", "root"),
    ("/x.png", "re-png-ci"),
    ("/x.Png", "re-png-ci"),
    ("/x.css", "root"),
    ("/x.unknownext", "root"),
    ("/case/x", "case-ci"),
    ("/CASE/x", "case-ci"),
    ("/Case/x", "case-ci"),
    ("/digits/123", "digits"),
    ("/digits/1234", "root"),
    ("/digits/12", "root"),
    ("/cap/abc/42", "cap"),
    ("/cap/ABC/42", "root"),
    ("/try/x", "named-fallback"),
    ("/typed/x", "typed"),
    ("/typed/x.css", "typed"),
    # the URI is decoded and normalised before matching
    ("/a%2Fb", "a-b"),
    ("/%61/b", "a-b"),
    ("/a/./b", "a-b"),
    ("/a/x/../b", "a-b"),
    ("//a///b", "a-b"),
    ("/static/../a/b", "a-b"),
    ("/images/x%2Epng", "images-png"),
    ("/a/b?q=/static/", "a-b"),
]


@pytest.mark.parametrize("uri,name", LOCATIONS, ids=[u for u, _ in LOCATIONS])
def test_location(locations, uri, name):
    a = locations.check("GET", uri)
    assert a.status == 200, a
    assert a.body.startswith(f"loc-{name} ".encode()), a


def test_location_return_text_types(locations):
    """return text: the URI's extension (mime.types) first, then default_type."""
    assert locations.fetch("nginx", "GET", "/x.unknownext").headers["content-type"] == "text/plain"
    assert locations.fetch("nginx", "GET", "/x.GIF").headers["content-type"] == "image/gif"
    assert locations.fetch("nginx", "GET", "/typed/x").headers["content-type"] == "text/html"
    assert locations.fetch("nginx", "GET", "/typed/x.css").headers["content-type"] == "text/css"


# --- server selection -----------------------------------------------------------------

# (id, listener, request version, Host (None: no Host header), expected status, body start)
SERVERS = [
    ("first", "port", "HTTP/1.1", "first.test", 200, "srv-first "),
    ("exact", "port", "HTTP/1.1", "exact.example.com", 200, "srv-exact "),
    ("exact-second-name", "port", "HTTP/1.1", "alias.example.com", 200,
     "srv-exact host=alias.example.com server_name=exact.example.com"),
    ("exact-mixed-case", "port", "HTTP/1.1", "EXACT.Example.COM", 200, "srv-exact host=exact.example.com"),
    ("exact-with-port", "port", "HTTP/1.1", "exact.example.com:8080", 200, "srv-exact host=exact.example.com "),
    ("exact-trailing-dot", "port", "HTTP/1.1", "exact.example.com.", 200, "srv-exact host=exact.example.com "),
    ("exact-trailing-dot-port", "port", "HTTP/1.1", "exact.example.com.:81", 200, "srv-exact "),
    ("lead-wild", "port", "HTTP/1.1", "x.example.com", 200, "srv-lead-wild "),
    ("lead-wild-two-labels", "port", "HTTP/1.1", "a.b.example.com", 200, "srv-lead-wild "),
    ("lead-wild-not-bare", "port", "HTTP/1.1", "example.com", 200, "srv-default "),
    ("lead-wild-longest", "port", "HTTP/1.1", "x.sub.example.com", 200, "srv-lead-wild-longer "),
    ("lead-wild-parent", "port", "HTTP/1.1", "sub.example.com", 200, "srv-lead-wild "),
    ("trail-wild", "port", "HTTP/1.1", "www.example.org", 200, "srv-trail-wild "),
    ("lead-beats-trail", "port", "HTTP/1.1", "www.example.com", 200, "srv-lead-wild "),
    ("trail-wild-short", "port", "HTTP/1.1", "www.other.net", 200, "srv-trail-wild-short "),
    ("dot-name-bare", "port", "HTTP/1.1", "dot.test", 200, "srv-dot "),
    ("dot-name-sub", "port", "HTTP/1.1", "a.dot.test", 200, "srv-dot "),
    ("regex-named-capture", "port", "HTTP/1.1", "bob.users.test", 200, "srv-regex-user host=bob.users.test user=bob"),
    ("regex-lowercased-host", "port", "HTTP/1.1", "BOB.users.test", 200, "srv-regex-user host=bob.users.test user=bob"),
    ("regex-no-match", "port", "HTTP/1.1", "bob2.users.test", 200, "srv-default "),
    ("regex-numbered-capture", "port", "HTTP/1.1", "api42.test", 200, "srv-regex-api host=api42.test n=42"),
    ("unknown-to-default-server", "port", "HTTP/1.1", "unknown.test", 200,
     "srv-default host=unknown.test server_name=default.test"),
    ("ip-host", "port", "HTTP/1.1", "127.0.0.1", 200, "srv-default host=127.0.0.1 "),
    ("ipv6-host", "port", "HTTP/1.1", "[::1]", 200, "srv-default host=[::1] "),
    ("leading-dot-host", "port", "HTTP/1.1", ".leading.dot", 200, "srv-default "),
    ("http10-no-host", "port", "HTTP/1.0", None, 200, "srv-default host=default.test "),
    ("http10-host", "port", "HTTP/1.0", "exact.example.com", 200, "srv-exact "),
    ("http11-no-host", "port", "HTTP/1.1", None, 400, "<html>"),
    ("empty-host", "port", "HTTP/1.1", "", 400, "<html>"),
    ("slash-in-host", "port", "HTTP/1.1", "bad/host", 400, "<html>"),
    ("double-dot-host", "port", "HTTP/1.1", "bad..host", 400, "<html>"),
    ("port2-first", "port2", "HTTP/1.1", "one.test", 200, "srv2-first "),
    ("port2-second", "port2", "HTTP/1.1", "two.test", 200, "srv2-two "),
    ("port2-unknown-to-first", "port2", "HTTP/1.1", "unknown.test", 200,
     "srv2-first host=unknown.test server_name=one.test"),
    ("port2-no-host-to-empty-name", "port2", "HTTP/1.0", None, 200,
     "srv2-two host=two.test server_name=two.test"),
]


@pytest.mark.parametrize("listener,version,host,status,start", [c[1:] for c in SERVERS],
                         ids=[c[0] for c in SERVERS])
def test_server(servers, listener, version, host, status, start):
    a = servers.check("GET", "/", port=listener, version=version, host=host)
    assert a.status == status, a
    assert a.body.startswith(start.encode()), a


# (id, absolute-form request target, Host header, body start): the request line's host wins
ABSOLUTE_FORM = [
    ("absolute-uri-host-wins", "http://bob.users.test/", "exact.example.com", "srv-regex-user "),
    ("absolute-uri-unknown", "http://other.test:99/x", "exact.example.com", "srv-default host=other.test "),
]


@pytest.mark.parametrize("target,host,start", [c[1:] for c in ABSOLUTE_FORM],
                         ids=[c[0] for c in ABSOLUTE_FORM])
def test_server_absolute_form(servers, target, host, start):
    a = servers.check("GET", target, host=host)
    assert a.status == 200, a
    assert a.body.startswith(start.encode()), a
