"""`uwsgi_pass` to an `upstream {}` group (issue 11): nginx 1.22 and `portico -c`
on one config (nginx_diff.DiffPair), both in front of the same two `portico
--socket` backends (apps/uw_whoami.py: each answers with its own name).

Pinned on both sides, answer by answer: round robin alternates a, b, a, b
(each front has its own balancer state, one worker); with backend b killed,
every request is answered by a (`uwsgi_next_upstream error`, the default,
sends it on: a GET and a POST, which was never sent to the dead peer); with
`uwsgi_next_upstream off` the try that hits b is nginx's 502 page; with both
down, 502. Same auto-skip rule as the other differential suites.
"""

import contextlib
import signal

import pytest

import nginx_diff
from conftest import APPS
from nginx_diff import DiffPair
from nginxctl import address, portico

pytestmark = nginx_diff.live_mark()

WHOAMI = APPS / "uw_whoami.py"

CONF = """
upstream app { server {ua}; server {ub}; }
server {
    listen 127.0.0.1:{port};
    location / { include uwsgi_params; uwsgi_pass app; }
    location /off/ { include uwsgi_params; uwsgi_pass app; uwsgi_next_upstream off; }
}
"""


@contextlib.contextmanager
def backend(name):
    with portico("--socket", "127.0.0.1:0", "--wsgi-file", WHOAMI,
                 env={"WHOAMI": name}) as server:
        host, port = address(server, "uwsgi")
        yield server, f"{host}:{port}"


def names(pair, side, n, method="GET", target="/", body=None):
    out = []
    for _ in range(n):
        a = pair.fetch(side, method, target, body=body)
        out.append(a.body.split(b" ")[0].decode() if a.status == 200 else a.status)
    return out


def test_round_robin_then_failover_as_nginx():
    with backend("a") as (_, ua), backend("b") as (b_server, ub), \
            DiffPair(CONF, subs={"ua": ua, "ub": ub}) as pair:
        for side in ("nginx", "portico"):
            assert names(pair, side, 4) == ["a", "b", "a", "b"], side
        a, b = pair.both("GET", "/x?y=1")
        pair.compare(a, b)
        b_server.proc.send_signal(signal.SIGKILL)
        b_server.proc.wait(10)
        for side in ("nginx", "portico"):
            assert names(pair, side, 3) == ["a"] * 3, side
            assert names(pair, side, 2, "POST", body=b"x=1") == ["a"] * 2, side


def test_next_upstream_off_and_all_down_are_502_as_nginx():
    with backend("a") as (a_server, ua), backend("b") as (b_server, ub), \
            DiffPair(CONF, subs={"ua": ua, "ub": ub}) as pair:
        b_server.proc.send_signal(signal.SIGKILL)
        b_server.proc.wait(10)
        for side in ("nginx", "portico"):
            got = names(pair, side, 2, target="/off/")
            assert sorted(got, key=str) == sorted([502, "a"], key=str), (side, got)
        a_server.proc.send_signal(signal.SIGKILL)
        a_server.proc.wait(10)
        a, b = pair.both("GET", "/")
        assert a.status == 502
        pair.compare(a, b)
