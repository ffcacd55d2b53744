"""`proxy_pass` with variables in the host, side by side with nginx 1.22 on the same
config (crates/proxy/src/dynamic.rs): per request, a host without a port that names
an `upstream {}` block (any case) is that group; an IP address is connected to; any
other name needs a `resolver` (without one: 502 and nginx's `no resolver defined to
resolve NAME`). With a `resolver` Portico asks the system's resolver
(docs/compat.md), so that case is Portico's alone.
"""

import json

import pytest

import nginx_diff
from echo_backend import EchoBackends
from nginx_diff import SELFTEST, DiffPair

pytestmark = nginx_diff.proxy_live_mark()

CONF = """
upstream Backend_A { server {a}; }
server {
    listen 127.0.0.1:{port};
    location /to/ { proxy_pass http://$arg_to; }
    location /named/ { proxy_pass http://$arg_to/fixed$is_args$args; }
    location /resolved/ {
        resolver 127.0.0.1 ipv6=off;
        resolver_timeout 2s;
        proxy_pass http://$arg_to;
    }
}
"""


@pytest.fixture(scope="module")
def backends():
    with EchoBackends("a", "b") as bs:
        yield bs


@pytest.fixture(scope="module")
def pair(backends):
    with DiffPair(CONF, subs=backends.subs()) as p:
        yield p


def cases(backends):
    b_port = backends["b"].port
    return [
        # (target, status, backend that answers, the URI it saw)
        ("/to/x?to=backend_a", 200, "a", "/to/x?to=backend_a"),
        ("/to/x?to=BACKEND_A", 200, "a", "/to/x?to=BACKEND_A"),
        (f"/to/x?to=127.0.0.1:{b_port}", 200, "b", f"/to/x?to=127.0.0.1:{b_port}"),
        ("/named/x?to=backend_a", 200, "a", "/fixed?to=backend_a"),
        # A port written: not the block, a name to resolve, and no resolver.
        ("/to/x?to=backend_a:80", 502, None, None),
        (f"/to/x?to=localhost:{b_port}", 502, None, None),
    ]


@pytest.mark.parametrize("n", range(6))
def test_a_variable_host_is_a_group_an_address_or_needs_a_resolver_as_in_nginx(pair, backends, n):
    target, status, backend, uri = cases(backends)[n]
    a, b = pair.both("GET", target)
    for answer in (a, b):
        assert answer.status == status, answer
        assert answer.headers.get("x-backend") == backend, answer
        if uri is not None:
            assert json.loads(answer.body)["target"] == uri, answer
    if status == 502 and not SELFTEST:
        assert b"<title>502 Bad Gateway</title>" in b.body, b


def test_with_a_resolver_a_name_is_looked_up_per_request(pair, backends):
    if SELFTEST:
        pytest.skip("Portico asks the system's resolver; nginx asks 127.0.0.1:53 (none here)")
    b_port = backends["b"].port
    answer = pair.fetch("portico", "GET", f"/resolved/x?to=localhost:{b_port}")
    assert answer.status == 200 and answer.headers.get("x-backend") == "b", answer
    unknown = pair.fetch("portico", "GET", "/resolved/x?to=no-such-host.invalid")
    assert unknown.status == 502, unknown
