"""Pick for pick as nginx: the same request sequence on the same upstream config, one
worker on each side, picks the same peers in the same order, request by request,
for every balancer (configs/nginx/proxy_balancing.conf): smooth weighted round robin,
`down`, `backup`, dead peers (connect refused) with max_fails/fail_timeout,
ip_hash (client addresses 127.A.B.C), `hash $arg_k` and `hash $arg_k consistent`,
least_conn (sequential requests), random (distribution sanity only), failover
(idempotent requests never fail while a peer is dead; a POST is not retried
after it was sent unless `non_idempotent`), and the seeds' 000 upstream configs
verbatim.

Both sides proxy to the same echo backends (echo_backend.py), so hash rings built
from the server addresses are the same. A pick is (status, the backend that
answered, `$upstream_addr` as peer names, `$upstream_status`): the last two come
from `add_header ... always`, so every peer tried, including refused ones, is
compared. Requests alternate nginx, other side, so time-based state
(fail_timeout) ages alike on both.

Skipped (nginx_diff.proxy_live_mark) only while `portico -t` refuses proxy_pass.
"""

import collections
import time

import pytest

import nginx_diff
from echo_backend import EchoBackend, EchoBackends
from nginx_diff import DiffPair, load_config, seed_config
from ports import free_port

pytestmark = nginx_diff.proxy_live_mark()

# client addresses for ip_hash: the key is the first three octets
SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.1.1", "127.0.2.1", "127.0.3.1", "127.1.0.1",
           "127.3.9.1", "127.0.4.1", "127.0.5.1", "127.0.6.1", "127.0.7.1", "127.9.9.9",
           "127.200.1.7", "127.17.33.2", "127.0.0.1", "127.0.3.1"]
KEYS = [str(i) for i in range(20)] + ["", "user42", "caf%C3%A9", "0", "zz" * 40]


@pytest.fixture(scope="module")
def backends():
    with EchoBackends("a", "b", "c", "d") as bs:
        closer = EchoBackend("closer").start()
        closer.close = "head"
        subs = {**bs.subs(), "closer": closer.addr,
                "dead": f"127.0.0.1:{free_port()}", "dead2": f"127.0.0.1:{free_port()}"}
        try:
            yield bs, subs
        finally:
            closer.stop()


@pytest.fixture(scope="module")
def pair(backends):
    with DiffPair(load_config("proxy_balancing.conf"), subs=backends[1]) as p:
        yield p


def pick(answer, names):
    """(status, who answered, peers tried as names, their statuses)."""
    h = answer.headers
    tried = [names.get(x.strip(), x.strip()) for x in h.get("x-upstream", "").split(",") if x.strip()]
    return (answer.status, h.get("x-backend", "-"), tuple(tried), h.get("x-upstream-status", ""))


def sequence(pair, subs, path, requests):
    """Send each request (method, target suffix, fetch options) to both sides in turn;
    assert the picks are equal request by request; return nginx's."""
    names = {addr: name for name, addr in subs.items()}
    left, right = [], []
    for method, suffix, kw in requests:
        body = b"payload" if method in ("POST", "PUT", "PATCH") else None
        a, b = pair.both(method, f"/{path}/{suffix}", None, body, **kw)
        left.append(pick(a, names))
        right.append(pick(b, names))
    for i, (x, y) in enumerate(zip(left, right)):
        assert y == x, f"request {i} to /{path}/: nginx {x}, {pair.portico.label} {y}\n" \
                       f"nginx:  {left}\nother:  {right}"
    return left


def gets(n):
    return [("GET", f"r{i}", {}) for i in range(n)]


def answered(seq):
    return "".join(p[1] if p[1] != "-" else "." for p in seq)


# --- round robin, weights, down, backup, dead peers ---------------------------------------

RR = ["rr", "wrr", "w21", "w321", "down", "backup", "tobackup", "nolive", "dead", "deadw",
      "nofail", "lc", "lcbackup", "failover"]


@pytest.mark.parametrize("upstream", RR)
def test_round_robin_family_picks_as_nginx(pair, backends, upstream):
    seq = sequence(pair, backends[1], upstream, gets(14))
    if upstream in ("failover", "dead", "deadw", "nofail", "tobackup", "lcbackup"):
        assert all(p[0] == 200 for p in seq), seq  # a dead peer never fails a GET
    if upstream == "nolive":
        assert [p[0] for p in seq] == [502] * 14, seq


def test_pinned_smooth_weighted_round_robin(pair, backends):
    """Reference §1.2, observed: weights 2,1 -> A B A A B A A B; 5,1,1 -> A A B A C A A."""
    assert answered(sequence(pair, backends[1], "pinw21", gets(8))) == "abaabaab"
    assert answered(sequence(pair, backends[1], "pinwrr", gets(7))) == "aabacaa"


def test_dead_peer_leaves_and_returns_after_fail_timeout(pair, backends):
    """deadmf: max_fails=3 (three refused connects before the ban); deadft: the default
    max_fails=1; both fail_timeout=2s: skipped for 2 s, then tried again (one trial per
    window). One pause of 3.2 s for both: nginx's clock has 1 s granularity."""
    subs = backends[1]
    first = {u: sequence(pair, subs, u, gets(12)) for u in ("deadmf", "deadft")}
    time.sleep(3.2)
    second = {u: sequence(pair, subs, u, gets(6)) for u in ("deadmf", "deadft")}
    tried_dead = lambda seq: sum("dead" in p[2] for p in seq)  # noqa: E731
    for u, bans_after in (("deadmf", 3), ("deadft", 1)):
        assert all(p[0] == 200 for p in first[u] + second[u]), (first[u], second[u])
        assert tried_dead(first[u]) == bans_after, first[u]
        assert tried_dead(second[u]) == 1, second[u]


# --- hashing ------------------------------------------------------------------------------

@pytest.mark.parametrize("upstream", ["iph", "iphw", "iphdead"])
def test_ip_hash_picks_as_nginx(pair, backends, upstream):
    sequence(pair, backends[1], upstream, [("GET", f"s{i}", {"source": s}) for i, s in enumerate(SOURCES)])


def test_pinned_ip_hash(pair, backends):
    """Reference §1.4, observed: (A, B, C) 127.0.0.1/.0.2 -> C, 127.0.1.1 -> A,
    127.0.2.1 -> B, 127.0.3.1 -> C, 127.1.0.1 -> B; `A weight=2; B; ip_hash; C down`:
    127.0.{0..7}.1, 127.3.9.1 -> A A B B A A B A A."""
    srcs = ("127.0.0.1", "127.0.0.2", "127.0.1.1", "127.0.2.1", "127.0.3.1", "127.1.0.1")
    seq = sequence(pair, backends[1], "iph", [("GET", "x", {"source": s}) for s in srcs])
    assert answered(seq) == "ccabcb", seq
    srcs = [f"127.0.{i}.1" for i in range(8)] + ["127.3.9.1"]
    seq = sequence(pair, backends[1], "iphw", [("GET", "x", {"source": s}) for s in srcs])
    assert answered(seq) == "aabbaabaa", seq


@pytest.mark.parametrize("upstream", ["hk", "hkw", "hkdead", "hkc", "hkcw", "hkcdead"])
def test_hash_picks_as_nginx(pair, backends, upstream):
    """`hash $arg_k` and `hash $arg_k consistent`; the empty key falls back to round robin."""
    seq = sequence(pair, backends[1], upstream, [("GET", f"h?k={k}", {}) for k in KEYS])
    assert all(p[0] == 200 for p in seq), seq


def test_hash_is_stable_per_key(pair, backends):
    first = sequence(pair, backends[1], "hkc", [("GET", f"h?k={k}", {}) for k in KEYS[:10]])
    again = sequence(pair, backends[1], "hkc", [("GET", f"h?k={k}", {}) for k in KEYS[:10]])
    assert [p[1] for p in again] == [p[1] for p in first]


# --- random: distribution sanity only -----------------------------------------------------

@pytest.mark.parametrize("upstream", ["rnd", "rnd2", "rndw"])
def test_random_distribution(pair, upstream):
    counts = {}
    for side in ("nginx", "portico"):
        c = collections.Counter()
        for i in range(60):
            a = pair.fetch(side, "GET", f"/{upstream}/r{i}")
            assert a.status == 200, a
            c[a.headers["x-backend"]] += 1
        counts[side] = c
    for side, c in counts.items():
        if upstream == "rndw":  # a weight=4, b weight=1, c down
            assert c["c"] == 0 and c["a"] > c["b"] >= 1, (side, c)
        else:
            assert set(c) == {"a", "b", "c"} and min(c.values()) >= 6, (side, c)


# --- failover: idempotent requests never fail, POST is not retried once sent ---------------

def test_failover_idempotent_methods_never_fail(pair, backends):
    """A dead peer (refused) and a peer that closes after reading the request: GET,
    HEAD, PUT, DELETE, OPTIONS go to the next peer; 0 failures on either side."""
    reqs = [(m, f"f{i}", {}) for i, m in enumerate(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] * 3)]
    seq = sequence(pair, backends[1], "failover", reqs)
    assert all(p[0] == 200 for p in seq), seq


def test_post_not_retried_after_sending(pair, backends):
    """A POST the peer read and dropped is a 502 (not retried); the peer is then down for
    fail_timeout, so the next POSTs go to b; GETs are retried."""
    seq = sequence(pair, backends[1], "post", [("POST", f"p{i}", {}) for i in range(4)])
    assert [p[0] for p in seq] == [502, 200, 200, 200], seq
    assert seq[0][2] == ("closer",), seq


def test_post_retried_with_non_idempotent(pair, backends):
    seq = sequence(pair, backends[1], "postni", [("POST", f"p{i}", {}) for i in range(4)])
    assert [p[0] for p in seq] == [200] * 4 and seq[0][2] == ("closer", "b"), seq


def test_http_500_passed_unless_listed(pair, backends):
    """`a` answers 500: by default the 500 goes to the client (not a failure, a stays in
    the rotation); with `proxy_next_upstream ... http_500` every client gets a 200."""
    bs = backends[0]
    bs["a"].status = 500
    try:
        plain = sequence(pair, backends[1], "s500", gets(6))
        listed = sequence(pair, backends[1], "s500n", gets(6))
    finally:
        bs["a"].status = 200
    assert [p[0] for p in plain] == [500, 200] * 3, plain
    assert all(p[0] == 200 for p in listed), listed


# --- the seeds' 000 upstream configs, verbatim --------------------------------------------

SEEDS = ["seed000_upstream.conf", "seed000_upstream_weight.conf",
         "seed000_upstream_ip_hash.conf", "seed000_upstream_down.conf"]


@pytest.mark.parametrize("name", SEEDS)
def test_seed000_upstreams_verbatim(backends, name):
    bs, subs = backends
    seed_backends = {"9090": subs["a"], "9091": subs["b"], "9092": subs["c"]}
    with DiffPair(seed_config(name, seed_backends)) as p:
        left, right = [], []
        for i, s in enumerate(SOURCES[:10]):
            a, b = p.both("GET", f"/?i={i}", source=s)
            left.append((a.status, a.headers.get("x-backend")))
            right.append((b.status, b.headers.get("x-backend")))
        assert right == left
        assert all(st == 200 for st, _ in left), left
        if name == "seed000_upstream_weight.conf":
            # the seed's 9090 weight=2 / 9091: two picks in three for 9090
            assert [n for _, n in left[:6]] == list("abaaba"), left
        if name == "seed000_upstream_down.conf":
            assert "c" not in [n for _, n in left], left
