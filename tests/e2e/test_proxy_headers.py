"""What an upstream receives, through nginx and through `portico -c`, for the same
config: the request line, every header in wire order (Host, X-Forwarded-For,
X-Real-IP, Connection, the client's own), the body; and what the client gets back
(proxy_hide_header, proxy_pass_header, proxy_redirect default and explicit).

Both sides proxy to the same echo backend (echo_backend.py), which answers with a
JSON record of the request it got; the records are compared field by field after
normalising each side's own port numbers (configs/nginx/proxy_headers.conf, and
the seed 000 configs, verbatim but for ports).

The one allowed difference is asserted, not skipped: where the config leaves
`proxy_http_version` and `Connection` at their defaults, nginx 1.22 sends
`HTTP/1.0` and `Connection: close`; Portico takes nginx 1.29.7+'s defaults
(reference §7): `HTTP/1.1` and no Connection header, everything else identical
(`as_nginx_1_29`). With `proxy_http_version 1.0` (or 1.1 + `Connection ""`)
written in the config, Portico must send exactly what nginx 1.22 sends. And a
request target with raw non-ASCII bytes, which nginx proxies, Portico refuses
with 400 (REFUSED_BY_PORTICO, docs/compat.md). Response fields are compared as
a set (their order carries no meaning; repeated ones keep theirs). In
self-test mode (NGINX_DIFF_SELFTEST=1) both sides are nginx 1.22: equal.

Skipped (nginx_diff.proxy_live_mark) only while `portico -t` refuses proxy_pass.
"""

import json

import pytest

import nginx_diff
from echo_backend import EchoBackends
from nginx_diff import SELFTEST, DiffPair, load_config, normalise_ports, seed_config

pytestmark = nginx_diff.proxy_live_mark()

BROWSER = [
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:14.0) Gecko/20100101 Firefox/14.0.1"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Cookie", "a=1; b=2"),
    ("X-Dup", "one"),
    ("X-Custom", "yes"),
    ("X-Dup", "two"),
]
# hop-by-hop and proxy-specific headers a client may send
HOP = [
    ("Connection", "keep-alive, X-Hop"),
    ("Keep-Alive", "timeout=300"),
    ("TE", "trailers"),
    ("Upgrade", "h2c"),
    ("X-Hop", "named in Connection"),
    ("Proxy-Connection", "keep-alive"),
    ("X-Forwarded-For", "1.2.3.4"),
    ("X-Real-IP", "5.6.7.8"),
]


@pytest.fixture(scope="module")
def echo():
    with EchoBackends("a") as bs:
        yield bs


@pytest.fixture(scope="module")
def pair(echo):
    with DiffPair(load_config("proxy_headers.conf"), subs=echo.subs()) as p:
        yield p


@pytest.fixture(scope="module")
def seeds(echo):
    """Seed 000's proxy config verbatim (port `port`) and with its prose's
    `proxy_set_header Host $host` (port `port2`)."""
    a = {"9090": echo["a"].addr}
    body = seed_config("seed000_proxy.conf", a) + seed_config("seed000_proxy_host.conf", a, "port2")
    with DiffPair(body) as p:
        yield p


# --- what the upstream saw ----------------------------------------------------------------


def upstream_view(answer, ports):
    """The echo backend's record of the request, as far as it is compared (ports
    normalised to `{port}`...)."""
    assert answer.status == 200 and answer.headers.get("x-backend"), answer
    rec = json.loads(answer.body)
    norm = lambda s: normalise_ports(s, ports)  # noqa: E731
    return {
        "request_line": norm(rec["request_line"]),
        "headers": [[k, norm(v)] for k, v in rec["headers"]],
        "body_length": rec["body_length"],
        "body_sha1": rec["body_sha1"],
    }


def as_nginx_1_29(view):
    """What nginx 1.29.7+ sends where 1.22 sends its defaults (reference §7): the same
    request with HTTP/1.1 and without the `Connection: close` it adds itself."""
    line = view["request_line"]
    assert line.endswith(" HTTP/1.0"), line
    headers = [h for h in view["headers"] if h != ["Connection", "close"]]
    assert len(headers) == len(view["headers"]) - 1, view
    return {**view, "request_line": line[: -len("HTTP/1.0")] + "HTTP/1.1", "headers": headers}


def assert_same_upstream_request(p, a, b, defaults=True):
    """`b` (Portico, or nginx in self-test) sent the upstream what `a` (nginx) sent;
    `defaults`: the location leaves proxy_http_version/Connection alone (see module doc)."""
    left = upstream_view(a, p.nginx.ports)
    right = upstream_view(b, p.portico.ports)
    expected = as_nginx_1_29(left) if defaults and not SELFTEST else left
    assert right == expected, (f"\nnginx sent:    {left}\nexpected:      {expected}"
                               f"\n{b.side} sent: {right}")
    return left


# (id, method, target, headers, body, fetch options, defaults)
CASES = [
    ("plain", "GET", "/plain/x?y=1", BROWSER, None, {}, True),
    ("plain-hop-headers", "GET", "/plain/hop", HOP + BROWSER, None, {}, True),
    ("plain-host-port", "GET", "/plain/h", [("Host", "Example.COM:8080")], None, {}, True),
    ("plain-http10-no-host", "GET", "/plain/old", [], None,
     {"version": "HTTP/1.0", "host": None}, True),
    ("plain-absolute-form", "GET", "http://abs.example/plain/abs?q", [], None, {}, True),
    ("plain-encoded", "GET", "/plain/a%20b/%2Fc/%41%7e/./d/../e?x=%41&y=%2F", [], None, {}, True),
    ("plain-double-slash", "GET", "/plain//a///b", [], None, {}, True),
    ("plain-utf8", "GET", "/plain/caf%C3%A9/\xc3\xa9", [], None, {}, True),
    ("plain-post", "POST", "/plain/form", [("Content-Type", "application/x-www-form-urlencoded")],
     b"k=v&x=" + b"y" * 100, {}, True),
    ("plain-post-chunked", "POST", "/plain/chunked",
     [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")],
     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", {}, True),
    ("plain-put-empty", "PUT", "/plain/empty", [("Content-Length", "0")], None, {}, True),
    ("plain-head", "HEAD", "/plain/head", [], None, {}, True),
    ("plain-delete", "DELETE", "/plain/item/1", [], None, {}, True),
    ("uri", "GET", "/uri/a/b?q=1", [], None, {}, True),
    ("uri-encoded", "GET", "/uri/a%20b/%2Fc/%41?x=%41", [], None, {}, True),
    ("uri-dots", "GET", "/uri/a/./b/../c", [], None, {}, True),
    ("uri-exact", "GET", "/exact?z=1", [], None, {}, True),
    ("uri-slash", "GET", "/api/v1/items?page=2", [], None, {}, True),
    ("plain-expect-100", "POST", "/plain/expect", [("Expect", "100-continue")], b"x" * 10, {}, True),
    ("rewrite-break", "GET", "/rw/a%20b/c?k=v", [], None, {}, True),
    ("rewrite-break-uri-part", "GET", "/rwuri/a/b?k=v", [], None, {}, True),
    ("regex", "GET", "/regex/a%20b?x", [], None, {}, True),
    ("vars", "GET", "/vars/a%20b?x=1", [], None, {}, True),
    ("named-upstream", "GET", "/named/n", BROWSER, None, {}, True),
    ("proxy-params", "GET", "/params/p", HOP + BROWSER, None, {"source": "127.0.3.4"}, True),
    ("proxy-params-no-xff", "GET", "/params/p", [("Host", "Example.COM:8080")], None,
     {"source": "127.9.8.7"}, True),
    ("proxy-params-two-xff", "GET", "/params/p",
     [("X-Forwarded-For", "1.1.1.1, 2.2.2.2"), ("X-Forwarded-For", "3.3.3.3")], None, {}, True),
    ("inherited-set-header", "GET", "/inherits/i", BROWSER, None, {"port": "port2"}, True),
    ("own-set-header-replaces-all", "GET", "/own/o", BROWSER, None, {"port": "port2"}, True),
    ("set-header", "GET", "/set/s", BROWSER, None, {}, True),
    ("set-header-post", "POST", "/set/s", BROWSER, b"data", {}, True),
    ("http11-keepalive", "GET", "/v11/k", HOP + BROWSER, None, {}, False),
    ("http10-explicit", "GET", "/v10/k", HOP + BROWSER, None, {}, False),
    ("no-request-headers", "POST", "/noheaders/n", BROWSER, b"body", {}, True),
    ("no-request-body", "POST", "/nobody/n", BROWSER, b"body", {}, True),
]


# Requests Portico refuses on purpose where nginx 1.22 proxies them (asserted, not skipped):
# id -> why. The request never reaches the upstream: Portico answers 400 itself.
REFUSED_BY_PORTICO = {
    "plain-utf8": "raw non-ASCII bytes in the request target (docs/compat.md: strict parsing)",
}


@pytest.mark.parametrize("case,method,target,headers,body,kw,defaults", CASES,
                         ids=[c[0] for c in CASES])
def test_upstream_receives_what_nginx_sends(pair, case, method, target, headers, body, kw,
                                           defaults):
    if case in REFUSED_BY_PORTICO and not SELFTEST:
        a, b = pair.both(method, target, headers, body, **kw)
        assert (a.status, b.status) == (200, 400), (REFUSED_BY_PORTICO[case], a, b)
        return
    if method == "HEAD":
        # the backend's record is in the body: ask it for the HEAD with a GET's twin
        a, b = pair.both("HEAD", target, headers, body, **kw)
        assert (a.status, b.status) == (200, 200), (a, b)
        a, b = pair.both("GET", target, headers + [("X-Was", "HEAD")], body, **kw)
    else:
        a, b = pair.both(method, target, headers, body, **kw)
    assert_same_upstream_request(pair, a, b, defaults)


def test_pinned_proxy_set_header_all_or_nothing(pair):
    """A location with its own proxy_set_header inherits none of the server's (and Host
    falls back to the default $proxy_host)."""
    seen = upstream_view(pair.fetch("nginx", "GET", "/inherits/i", port="port2"), pair.nginx.ports)
    assert seen["headers"][:2] == [["X-Server-Level", "from server"],
                                   ["Host", "server-level.example"]], seen
    seen = upstream_view(pair.fetch("nginx", "GET", "/own/o", port="port2"), pair.nginx.ports)
    names = [k for k, _ in seen["headers"]]
    assert names[:3] == ["X-Own", "Host", "Connection"] and "X-Server-Level" not in names, seen
    assert seen["headers"][1][1].startswith("127.0.0.1:"), seen


def test_pinned_uri_forms(pair):
    """nginx 1.22's upstream request lines (reference §2.1): no URI part -> the client's
    bytes as sent; a URI part -> the prefix replaced in the normalised $uri, re-escaped
    (%2F and %41 decoded, slashes merged, dots resolved); proxy_pass with variables ->
    exactly what they evaluate to, even a raw space from $uri."""
    line = lambda target: upstream_view(pair.fetch("nginx", "GET", target),  # noqa: E731
                                        pair.nginx.ports)["request_line"]
    assert line("/plain/a%20b/%2Fc/%41%7e/./d/../e?x=%41&y=%2F") == \
        "GET /plain/a%20b/%2Fc/%41%7e/./d/../e?x=%41&y=%2F HTTP/1.0"
    assert line("/uri/a%20b/%2Fc/%41?x=%41") == "GET /other/a%20b/c/A?x=%41 HTTP/1.0"
    assert line("/api/v1/items?page=2") == "GET /v1/items?page=2 HTTP/1.0"
    assert line("/rwuri/a/b?k=v") == "GET /rewritten/a/b?k=v HTTP/1.0"
    assert line("/vars/a%20b?x=1") == "GET /v/vars/a b?x=1 HTTP/1.0"


# (location, connections nginx 1.22 opens for 4 sequential requests, Portico's)
CONNECTIONS = [
    ("/named/", 4, 1),    # an upstream block: 1.29.7+ keeps 32 idle connections (reference §7)
    ("/plain/", 4, 4),    # proxy_pass to an address: no cache, one connection per request
    ("/v10/", 4, 4),      # proxy_http_version 1.0: Connection: close, as 1.22
]


@pytest.mark.parametrize("location,nginx_conns,portico_conns", CONNECTIONS,
                         ids=[c[0].strip("/") for c in CONNECTIONS])
def test_upstream_connections(pair, location, nginx_conns, portico_conns):
    """How many upstream connections 4 sequential requests use (the echo backend numbers
    its connections): the allowed difference of nginx 1.29.7+'s keep-alive to upstream
    blocks, asserted per side. (`keepalive 0`, 1.29.7's way back, is refused by nginx
    1.22: it cannot be run on both sides.)"""
    for side, expected in (("nginx", nginx_conns),
                           ("portico", nginx_conns if SELFTEST else portico_conns)):
        conns = {json.loads(pair.fetch(side, "GET", f"{location}c{i}").body)["conn"]
                 for i in range(4)}
        assert len(conns) == expected, (side, location, sorted(conns))


def test_upstream_receives_seed000_defaults(seeds):
    """Seed 000 verbatim: Host is `$proxy_host` (127.0.0.1:PORT of proxy_pass), not the
    client's, as the seed's prose says ("这个值为配置项proxy_pass后的值")."""
    a, b = seeds.both("GET", "/hello.htm", BROWSER)
    seen = assert_same_upstream_request(seeds, a, b)
    host = dict(seen["headers"])["Host"]
    assert host.startswith("127.0.0.1:"), seen


def test_upstream_receives_seed000_host(seeds):
    """Seed 000 with `proxy_set_header Host $host`: the client's host, lower-cased,
    port stripped."""
    a, b = seeds.both("GET", "/hello.htm", [("Host", "WWW.Example.com:8080")] + BROWSER,
                      port="port2")
    seen = assert_same_upstream_request(seeds, a, b)
    assert seen["headers"][0] == ["Host", "www.example.com"], seen


def test_pinned_nginx_header_order(pair):
    """nginx 1.22's wire order, pinned (reference §2.2): proxy_set_header lines, then its
    defaults (Host, Connection), then the client's headers minus the ones it owns
    (Host, Connection, Keep-Alive, TE, Upgrade, Expect; and X-Forwarded-For, X-Real-IP
    here, set by the config). Not dropped: a header the client's Connection names
    (X-Hop) and Proxy-Connection; nginx forwards both."""
    a = pair.fetch("nginx", "GET", "/params/p", HOP + BROWSER, source="127.0.3.4")
    seen = upstream_view(a, pair.nginx.ports)
    assert seen["request_line"] == "GET /params/p HTTP/1.0", seen
    assert seen["headers"] == [
        ["Host", "localhost"],
        ["X-Real-IP", "127.0.3.4"],
        ["X-Forwarded-For", "1.2.3.4, 127.0.3.4"],
        ["X-Forwarded-Proto", "http"],
        ["Connection", "close"],
        ["X-Hop", "named in Connection"],
        ["Proxy-Connection", "keep-alive"],
    ] + [list(h) for h in BROWSER], seen


# --- what the client gets back ------------------------------------------------------------

RESPONSE_HEADERS = [
    ("X-Echo-Header", "X-Secret: s3cret"),
    ("X-Echo-Header", "X-Pad: pad"),
    ("X-Echo-Header", "X-Powered-By: echo"),
    ("X-Echo-Header", "X-Accel-Expires: 10"),
    ("X-Echo-Header", "Set-Cookie: a=1"),
    ("X-Echo-Header", "Set-Cookie: b=2"),
]


def response_view(answer, ports):
    """The response headers a proxy passes on, values port-normalised, its own
    Date/Server shown as "(own)" (the backend's are fixed, so a passed one shows).
    Sorted by name, keeping the order of repeated ones (Set-Cookie): the order of
    different fields carries no meaning and is not compared."""
    out = []
    for k, v in answer.raw_headers:
        if k.lower() == "date" and v != "Thu, 01 Jan 2015 00:00:00 GMT":
            v = "(own)"
        elif k.lower() == "server" and v != "echo-backend":
            v = "(own)"
        elif k.lower() in ("connection", "keep-alive", "content-length"):
            # the client connection's own; and the length of the echoed record, which
            # differs by the allowed request difference (see the module doc)
            continue
        out.append((k.lower(), normalise_ports(v, ports)))
    return answer.status, sorted(out, key=lambda kv: kv[0])


@pytest.mark.parametrize("target", ["/plain/r", "/hide/r"])
def test_response_headers_hidden_and_passed(pair, target):
    a, b = pair.both("GET", target, RESPONSE_HEADERS)
    left, right = response_view(a, pair.nginx.ports), response_view(b, pair.portico.ports)
    assert right == left


def test_pinned_response_headers_hidden_by_default(pair):
    a = pair.fetch("nginx", "GET", "/plain/r", RESPONSE_HEADERS)
    names = [k for k, _ in response_view(a, pair.nginx.ports)[1]]
    assert "x-pad" not in names and "x-accel-expires" not in names, a
    assert "x-secret" in names and "x-powered-by" in names, a
    a = pair.fetch("nginx", "GET", "/hide/r", RESPONSE_HEADERS)
    view = dict(response_view(a, pair.nginx.ports)[1])
    assert "x-secret" not in view and view["x-pad"] == "pad", a
    assert view["server"] == "echo-backend", a


# (id, target, Location the backend sends)
REDIRECTS = [
    ("default", "/redir/x", "http://{a}/back/page?q=1"),
    ("default-other-prefix", "/redir/x", "http://{a}/elsewhere/page"),
    ("default-relative", "/redir/x", "/back/rel"),
    ("explicit", "/redirx/x", "http://{a}/back/page"),
    ("explicit-regex", "/redirx/x", "http://elsewhere.test/deep/path"),
    ("explicit-unmatched", "/redirx/x", "http://other.test/back/page"),
    ("off", "/rediroff/x", "http://{a}/back/page"),
]


@pytest.mark.parametrize("target,location", [r[1:] for r in REDIRECTS],
                         ids=[r[0] for r in REDIRECTS])
def test_proxy_redirect(pair, echo, target, location):
    location = location.replace("{a}", echo["a"].addr)
    headers = [("X-Echo-Status", "302"), ("X-Echo-Header", f"Location: {location}"),
               ("X-Echo-Header", f"Refresh: 5; url={location}")]
    a, b = pair.both("GET", target, headers)
    view = lambda ans, ports: (ans.status, normalise_ports(ans.headers.get("location", ""), ports),  # noqa: E731
                               normalise_ports(ans.headers.get("refresh", ""), ports))
    left, right = view(a, pair.nginx.ports), view(b, pair.portico.ports)
    assert a.status == 302, a
    assert right == left


def test_pinned_proxy_redirect_makes_location_absolute(pair, echo):
    """nginx 1.22: a Location rewritten by proxy_redirect to a relative URI is then made
    absolute (absolute_redirect, with $host and the port), but Refresh is not."""
    loc = f"http://{echo['a'].addr}/back/page?q=1"
    a = pair.fetch("nginx", "GET", "/redir/x", [("X-Echo-Status", "302"),
                                                ("X-Echo-Header", f"Location: {loc}"),
                                                ("X-Echo-Header", f"Refresh: 5; url={loc}")])
    port = pair.nginx.ports["port"]
    assert a.headers["location"] == f"http://localhost:{port}/redir/page?q=1", a
    assert a.headers["refresh"] == "5; url=/redir/page?q=1", a
