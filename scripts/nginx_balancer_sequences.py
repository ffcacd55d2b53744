#!/usr/bin/env python3
"""Record the peers the real nginx picks, request by request, for the
balancer scenarios pinned in crates/proxy/src/balance/ (the tests paste
this script's output as nginx's observed sequences).

Each scenario starts /usr/sbin/nginx with its own prefix in a temp dir
(`daemon off; worker_processes 1;`, error log on stderr, 127.0.0.1 high
ports) with one `upstream u {}` over tiny Python backends named A, B, C...
(each answers its letter; `?d=SECONDS` delays the answer) and a front
`proxy_pass http://u;` that adds `X-Up: $upstream_addr`. A "dead" backend
is a port nothing listens on. For every request the script prints the
peers tried in order, e.g. `B>C` (B failed, C answered).

    python3 scripts/nginx_balancer_sequences.py            # every scenario
    python3 scripts/nginx_balancer_sequences.py rr_2_1 ...  # some
    python3 scripts/nginx_balancer_sequences.py --json      # machine output

Runs in a few seconds, plus the sleeps of the fail_timeout scenarios.
"""

import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
# Fixed ports: `hash ... consistent` hashes the server text, so the tests
# need the same `127.0.0.1:PORT` strings. Backend A is BASE+1, B BASE+2...;
# the front listens on BASE.
BASE = int(os.environ.get("BALANCE_BASE_PORT", "29080"))


class Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if "d" in q:
            time.sleep(float(q["d"][0]))
        body = self.server.letter.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_backend(letter, port):
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Backend)
    srv.daemon_threads = True
    srv.letter = letter
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Nginx:
    """One nginx with `upstream u { BODY }` in front of the backends."""

    def __init__(self, servers, method="", front_listen=None, extra="", main=""):
        # servers: [(letter, params, dead)]
        self.dir = tempfile.mkdtemp(prefix="ngx-balance-")
        self.port = BASE
        self.backends = []
        self.names = {}
        lines = []
        for letter, params, dead in servers:
            port = BASE + 1 + ord(letter) - ord("A")
            if not dead:
                self.backends.append(start_backend(letter, port))
            self.names[f"127.0.0.1:{port}"] = letter
            # `host=NAME`: write the server by name (it must resolve to
            # 127.0.0.1), so `hash ... consistent` hashes "NAME:PORT".
            host = "127.0.0.1"
            words = []
            for w in params.split():
                if w.startswith("host="):
                    host = w[5:]
                else:
                    words.append(w)
            lines.append(f"server {host}:{port} {' '.join(words)};")
        listen = front_listen or f"127.0.0.1:{self.port}"
        listen = listen.replace("PORT", str(self.port))
        conf = f"""
daemon off;
worker_processes 1;
{main}
pid {self.dir}/nginx.pid;
error_log stderr info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    upstream u {{
        {method}
        {' '.join(lines)}
    }}
    server {{
        listen {listen};
        {extra}
        location / {{
            proxy_pass http://u;
            add_header X-Up $upstream_addr always;
        }}
    }}
}}
"""
        with open(f"{self.dir}/n.conf", "w") as f:
            f.write(conf)
        self.log = open(f"{self.dir}/stderr", "w+")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir + "/", "-c", f"{self.dir}/n.conf", "-e", "stderr"],
            stderr=self.log,
        )
        for _ in range(100):
            try:
                probe = "::1" if listen.startswith("[::1]") else "127.0.0.1"
                socket.create_connection((probe, self.port), 0.1).close()
                self.ready = time.time()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start: {self.errors()}")

    def request(self, path="/", source=None, host="127.0.0.1"):
        """One GET; returns (picks like 'B>C', status)."""
        conn = http.client.HTTPConnection(
            host, self.port, timeout=10, source_address=(source, 0) if source else None
        )
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        up = resp.getheader("X-Up") or ""
        conn.close()
        picks = [self.names.get(a.strip(), a.strip()) for a in up.split(",") if a.strip()]
        return ">".join(picks), resp.status

    def errors(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(5)
        for b in self.backends:
            b.shutdown()
            b.server_close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(servers, requests, method="", **kw):
    """Sequential requests: each item is a path, or (path, source), or a
    float (sleep that many seconds)."""
    ngx = Nginx(servers, method, **kw)
    out = []
    try:
        for r in requests:
            if isinstance(r, float):
                time.sleep(r)
                out.append(f"sleep {r}")
                continue
            path, source = (r, None) if isinstance(r, str) else r
            picks, status = ngx.request(path, source)
            out.append(picks if status == 200 else f"{picks or '-'}={status}")
        errors = ngx.errors()
    finally:
        ngx.stop()
    notes = {
        "temporarily_disabled": errors.count("upstream server temporarily disabled"),
        "no_live_upstreams": errors.count("no live upstreams"),
    }
    return out, notes


def up(*specs):
    """'A w=2' → ('A', 'weight=2', False); 'B dead' → dead port."""
    servers = []
    for spec in specs:
        letter, *params = spec.split()
        dead = "dead" in params
        params = [p for p in params if p != "dead"]
        servers.append((letter, " ".join(params), dead))
    return servers


V4_CLIENTS = [
    "127.0.0.1", "127.0.1.1", "127.0.2.1", "127.0.3.1", "127.0.4.1",
    "127.0.5.1", "127.0.6.1", "127.0.7.1", "127.3.9.1", "127.1.0.1",
]
KEYS = [f"/?k={k}" for k in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "user42", "x"]]


def least_conn_overlap():
    """Overlapping requests: each held 1.2 s on its backend, started 0.2 s
    apart, so the k-th pick sees the connections of the earlier ones."""
    ngx = Nginx(up("A", "B weight=2", "C"), "least_conn;")
    results = [None] * 6
    try:
        def one(i):
            results[i] = ngx.request("/?d=1.2")[0]

        threads = []
        for i in range(6):
            t = threading.Thread(target=one, args=(i,))
            t.start()
            threads.append(t)
            time.sleep(0.2)
        for t in threads:
            t.join()
    finally:
        ngx.stop()
    return results, {}


V6_CLIENTS = [
    "fd00::1", "fd00::2", "fd00::3", "fd00::4", "fd00::5",
    "fd00:1::1", "fd00:2::1", "fd00:3::1", "2001:db8::1", "2001:db8::2",
]


def ip_hash_v6():
    """Real IPv6 clients need addresses on lo: made inside a private
    network namespace (`unshare -n`, root), so the host is left alone."""
    if not os.environ.get("IN_NETNS"):
        env = dict(os.environ, IN_NETNS="1")
        cmd = ["unshare", "-n", "--", sys.executable, __file__, "--json", "ip_hash_v6"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            return [f"skipped: {done.stderr.strip()[-200:]}"], {}
        r = json.loads(done.stdout)["ip_hash_v6"]
        return r["picks"], {}
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for c in V6_CLIENTS:
        subprocess.run(["ip", "-6", "addr", "add", f"{c}/128", "dev", "lo", "nodad"], check=True)
    ngx = Nginx(up("A", "B", "C"), "ip_hash;", front_listen="[::1]:PORT")
    out = []
    try:
        for c in V6_CLIENTS:
            picks, status = ngx.request("/", c, host="::1")
            out.append(picks if status == 200 else f"{picks}={status}")
    finally:
        ngx.stop()
    return out, {}


def libc_random_draws(seed, n):
    """glibc's srandom(seed) then n random() values (nginx's ngx_random)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.random.restype = ctypes.c_long
    libc.srandom(ctypes.c_uint(seed))
    return [libc.random() for _ in range(n)]


def random_picks(draws, weights, two):
    """Sequential picks of `random [two]` with every peer up and idle."""
    ranges, total = [], 0
    for w in weights:
        ranges.append(total)
        total += w

    def peek(x):
        i, j = 0, len(ranges)
        while j - i > 1:
            k = (i + j) // 2
            if x % total < ranges[k]:
                j = k
            else:
                i = k
        return i

    it = iter(draws)
    out = []
    try:
        while True:
            first = peek(next(it))
            if not two:
                out.append(LETTERS_[first])
                continue
            second = first
            while second == first:
                second = peek(next(it))
            out.append(LETTERS_[second])  # a tie keeps the second draw
    except StopIteration:
        return out


LETTERS_ = "ABCDEFGH"


def random_seeded(two):
    """`random [two]` in a single nginx process (`master_process off`): its
    only srandom() is `(pid << 16) ^ sec ^ msec` at start, so the seed is
    found by trying every msec around the start, and the picks must be
    exactly those of glibc's random() from that seed."""
    weights = [1, 2, 3, 4]
    method = "random two;" if two else "random;"
    ngx = Nginx(up("A", "B weight=2", "C weight=3", "D weight=4"), method, main="master_process off;")
    try:
        picks = [ngx.request("/")[0] for _ in range(30)]
        pid, t0, t1 = ngx.proc.pid, ngx.started, ngx.ready
    finally:
        ngx.stop()
    found = []
    for sec in range(int(t0) - 1, int(t1) + 2):
        for msec in range(1000):
            seed = ((pid << 16) ^ sec ^ msec) & 0xFFFFFFFF
            draws = libc_random_draws(seed, 200)
            if random_picks(draws, weights, two)[:30] == picks:
                found.append(seed)
    return picks + [f"seed={sorted(set(found))}"], {}


SCENARIOS = {
    "random_seeded": lambda: random_seeded(False),
    "random_two_seeded": lambda: random_seeded(True),
    "ip_hash_v6": ip_hash_v6,
    "rr_2_1": lambda: run(up("A weight=2", "B"), ["/"] * 8),
    "rr_5_1_1": lambda: run(up("A weight=5", "B", "C"), ["/"] * 14),
    "rr_equal": lambda: run(up("A", "B", "C"), ["/"] * 6),
    "rr_down": lambda: run(up("A", "B down", "C weight=2"), ["/"] * 6),
    # B dead, fail_timeout=2s: skipped for 2 s, then one trial request.
    "rr_dead_fail_timeout": lambda: run(
        up("A", "B dead fail_timeout=2", "C"), ["/"] * 6 + [3.2] + ["/"] * 4
    ),
    "rr_dead_max_fails_0": lambda: run(up("A", "B dead max_fails=0", "C"), ["/"] * 6),
    "rr_dead_max_fails_3_weight_4": lambda: run(
        up("A", "B dead weight=4 max_fails=3 fail_timeout=30", "C"), ["/"] * 10
    ),
    "backup_when_primaries_dead": lambda: run(
        up("A dead", "B dead", "C backup", "D backup weight=2"), ["/"] * 6
    ),
    "backup_unused_while_primaries_live": lambda: run(up("A", "B", "C backup"), ["/"] * 4),
    # Every peer dead: the first request tries them all; the next ones,
    # inside fail_timeout, find no live upstream (`$upstream_addr` = "u").
    "rr_all_dead": lambda: run(up("A dead", "B dead", "C dead"), ["/"] * 3),
    "rr_next_upstream_tries_2": lambda: run(
        up("A dead", "B dead", "C"), ["/"] * 3, extra="proxy_next_upstream_tries 2;"
    ),
    "least_conn_backup": lambda: run(
        up("A dead", "B dead", "C backup", "D backup weight=2"), ["/"] * 6, "least_conn;"
    ),
    "single_dead_never_disabled": lambda: run(up("A dead"), ["/"] * 3),
    "ip_hash_v4": lambda: run(up("A", "B", "C"), [("/", c) for c in V4_CLIENTS], "ip_hash;"),
    "ip_hash_v4_weights_down": lambda: run(
        up("A weight=2", "B", "C down"), [("/", c) for c in V4_CLIENTS], "ip_hash;"
    ),
    "ip_hash_v4_dead_peer": lambda: run(
        up("A", "B dead", "C"), [("/", c) for c in V4_CLIENTS], "ip_hash;"
    ),
    # An IPv6 front without ipv6only: IPv4 clients arrive as ::ffff:a.b.c.d
    # and ip_hash uses all 16 bytes.
    "ip_hash_v4_mapped_v6": lambda: run(
        up("A", "B", "C"),
        [("/", f"127.0.0.{i}") for i in range(1, 11)],
        "ip_hash;",
        front_listen="[::]:PORT ipv6only=off",
    ),
    "hash_key": lambda: run(up("A", "B", "C"), KEYS, "hash $arg_k;"),
    "hash_key_weights_down": lambda: run(up("A weight=2", "B", "C down"), KEYS, "hash $arg_k;"),
    "hash_key_dead_peer": lambda: run(up("A", "B dead", "C"), KEYS, "hash $arg_k;"),
    "hash_empty_key_round_robin": lambda: run(up("A weight=2", "B"), ["/"] * 6, "hash $arg_k;"),
    "chash_key": lambda: run(up("A", "B", "C"), KEYS, "hash $arg_k consistent;"),
    "chash_key_weights_down": lambda: run(
        up("A weight=2", "B", "C down"), KEYS, "hash $arg_k consistent;"
    ),
    "chash_key_dead_peer": lambda: run(up("A", "B dead", "C"), KEYS, "hash $arg_k consistent;"),
    # B holds most of the weight but is down: most walks miss, and after
    # 20 misses the request falls back to round-robin over A and C.
    "ip_hash_rehash_fallback": lambda: run(
        up("A", "B weight=50 down", "C"), [("/", c) for c in V4_CLIENTS], "ip_hash;"
    ),
    "hash_rehash_fallback": lambda: run(up("A", "B weight=50 down", "C"), KEYS, "hash $arg_k;"),
    "chash_rehash_fallback": lambda: run(
        up("A", "B weight=50 down", "C"), KEYS, "hash $arg_k consistent;"
    ),
    "chash_hostname": lambda: run(
        up("A host=localhost", "B", "C weight=2"), KEYS, "hash $arg_k consistent;"
    ),
    "least_conn_sequential": lambda: run(up("A weight=2", "B"), ["/"] * 8, "least_conn;"),
    "least_conn_overlap": least_conn_overlap,
}


def main(argv):
    as_json = "--json" in argv
    names = [a for a in argv if not a.startswith("--")] or list(SCENARIOS)
    results = {}
    for name in names:
        seq, notes = SCENARIOS[name]()
        results[name] = {"picks": seq, **notes}
        if not as_json:
            extra = " ".join(f"{k}={v}" for k, v in notes.items() if v)
            print(f"{name}: {' '.join(seq)}" + (f"  [{extra}]" if extra else ""), flush=True)
    if as_json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
