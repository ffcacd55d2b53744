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


CONF_VARS = """
upstream app { server {ua}; server {ub}; }
upstream hashed { hash $arg_k; server {ua}; server {ub}; }
server {
    listen 127.0.0.1:{port};
    location / {
        include uwsgi_params;
        uwsgi_pass app;
        add_header X-Up-Addr $upstream_addr always;
        add_header X-Up-Status $upstream_status always;
        add_header X-Up-Time $upstream_response_time always;
    }
    location /h/ { include uwsgi_params; uwsgi_pass hashed; }
    location /one/ {
        include uwsgi_params;
        uwsgi_pass {ua};
        add_header X-Up-Addr $upstream_addr;
        add_header X-Up-Status $upstream_status;
    }
}
"""


def upstream_vars(answer):
    return answer.headers.get("x-up-addr"), answer.headers.get("x-up-status")


def test_upstream_variables_name_every_try_as_nginx():
    import re
    with backend("a") as (_, ua), backend("b") as (b_server, ub), \
            DiffPair(CONF_VARS, subs={"ua": ua, "ub": ub}) as pair:
        for target in ("/", "/", "/one/x"):
            a, b = pair.both("GET", target)
            assert a.status == b.status == 200, (a, b)
            assert upstream_vars(a) == upstream_vars(b), (a, b)
            assert upstream_vars(b)[0] in (ua, ub) and upstream_vars(b)[1] == "200", b
            if target == "/":
                assert re.fullmatch(r"\d+\.\d{3}", b.headers.get("x-up-time", "")), b
        b_server.proc.send_signal(signal.SIGKILL)
        b_server.proc.wait(10)
        seen = []
        for _ in range(2):
            a, b = pair.both("GET", "/")
            assert a.status == b.status == 200, (a, b)
            assert upstream_vars(a) == upstream_vars(b), (a, b)
            seen.append(upstream_vars(b))
        # The try at the dead peer is listed, then the one that answered.
        assert (f"{ub}, {ua}", "502, 200") in seen, seen


def test_hash_key_picks_the_peers_nginx_picks():
    with backend("a") as (_, ua), backend("b") as (_, ub), \
            DiffPair(CONF_VARS, subs={"ua": ua, "ub": ub}) as pair:
        for side in ("nginx", "portico"):
            got = [names(pair, side, 1, target=f"/h/?k=key{i}")[0] for i in range(16)]
            if side == "nginx":
                want = got
                assert set(want) == {"a", "b"}, want
            else:
                assert got == want, (got, want)
