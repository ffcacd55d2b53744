"""Scale past one machine: one edge balancing over three app hosts, made of network
namespaces (netns.py: a bridge, hosts on 10.77.0.0/24, created and removed here).

    client 10.77.0.100 --> edge 10.77.0.2:8080 (`-c`, upstream over the three)
                             --> app1 10.77.0.11:8000   `portico --http ... --wsgi-file
                             --> app2 10.77.0.12:8000    apps/hello_host.py`
                             --> app3 10.77.0.13:8000

Under a bounded client loop (sequential GETs, each answered "hello from appN"):
app1 is killed (SIGKILL of every process of the host: connections refused) and
app2 frozen (SIGSTOP: its kernel still accepts, nothing answers; the edge's
`proxy_read_timeout 1s` moves the request on). Must hold:

- 0 failed idempotent requests, in every phase;
- the dead hosts leave the rotation: each is tried at most once per fail_timeout
  window (`$upstream_addr`, sent back as X-Upstream), app3 serves the rest;
- after app2 is thawed (SIGCONT) and app1 restarted, both serve again once their
  fail_timeout has passed: within fail_timeout + read timeout (a trial in flight at
  the thaw) + nginx's one-second clock granularity + 0.5 s.

The edge is `$PORTICO_BIN -c` (the app hosts are always Portico's app server);
with NGINX_DIFF_SELFTEST=1 it is nginx, which proves the plumbing and the
expectations. Skipped only where namespaces cannot be made (netns.unavailable())
or while `portico -t` refuses proxy_pass (nginx_diff.proxy_live_mark).
"""

import shutil
import signal
import socket
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import netns
import nginx_diff
import nginxctl
from conftest import APPS, BIN
from nginx_diff import SELFTEST, fetch_port

WHY_NOT = netns.unavailable()
pytestmark = [nginx_diff.proxy_live_mark(),
              pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]

APP = APPS / "hello_host.py"
APP_PORT = 8000
EDGE_PORT = 8080
FAIL_TIMEOUT = 2  # seconds; nginx's clock ticks in whole seconds
READ_TIMEOUT = 1  # how long a frozen host holds one request
HOSTS = {"edge": 2, "client": 100, "app1": 11, "app2": 12, "app3": 13}
APPS_NAMES = ("app1", "app2", "app3")
MAX_REQUESTS = 5000  # the loop's bound, whatever the phase lengths
PAUSE = 0.005  # between two requests (a shared machine: ~150 requests a second at most)


def edge_config(lan, state):
    servers = "\n".join(f"        server {lan.addr(a)}:{APP_PORT} fail_timeout={FAIL_TIMEOUT}s;"
                        for a in APPS_NAMES)
    nginx_only = nginxctl.temp_paths(state) if SELFTEST else ""
    return (
        nginxctl.main_preamble(state / "edge.pid")
        + "http {\n    access_log off;\n"
        + textwrap.indent(nginx_only, "    ")
        + f"""    upstream apps {{
{servers}
    }}
    server {{
        listen {lan.addr("edge")}:{EDGE_PORT};
        proxy_connect_timeout 1s;
        proxy_read_timeout {READ_TIMEOUT}s;
        add_header X-Upstream $upstream_addr always;
        location / {{ proxy_pass http://apps; }}
    }}
}}
"""
    )


def connectable(addr, port, timeout=10.0):
    """(In the caller's namespace) True once addr:port accepts a connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((addr, port)) == 0:
                return True
        time.sleep(0.05)
    return False


class ScaleOut:
    """The five hosts, the three apps and the edge (see the module doc)."""

    def __init__(self):
        self.state = Path(tempfile.mkdtemp(prefix="portico-scale-", dir="/tmp"))
        self.state.chmod(0o755)
        self.lan = netns.Lan("10.77.0")

    def start(self):
        self.lan.__enter__()
        for name, octet in HOSTS.items():
            self.lan.add_host(name, octet)
        for name in APPS_NAMES:
            self.start_app(name)
        conf = self.state / "edge.conf"
        conf.write_text(edge_config(self.lan, self.state))
        if SELFTEST:
            args = [nginxctl.nginx_binary(), "-p", f"{self.state}/", "-c", conf, "-e", "stderr"]
        else:
            args = [BIN, "-p", f"{self.state}/", "-c", conf]
        self.lan.spawn("edge", args, self.state / "edge.log")
        assert self.lan.call("client", connectable, self.lan.addr("edge"), EDGE_PORT), self.logs()
        return self

    def start_app(self, name):
        self.lan.spawn(name, [BIN, "--http", f"{self.lan.addr(name)}:{APP_PORT}",
                              "--wsgi-file", APP], self.state / f"{name}.log",
                       env={"HELLO_HOST": name})
        assert self.lan.call("client", connectable, self.lan.addr(name), APP_PORT), self.logs()

    def logs(self):
        out = []
        for p in sorted(self.state.glob("*.log")):
            out.append(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def close(self):
        self.lan.close()
        shutil.rmtree(self.state, ignore_errors=True)

    def names(self):
        return {f"{self.lan.addr(a)}:{APP_PORT}": a for a in APPS_NAMES}


@pytest.fixture(scope="module")
def scale():
    s = ScaleOut()
    try:
        yield s.start()
    finally:
        s.close()


def client_loop(edge, seconds, budget, names):
    """(Inside the client namespace) sequential GETs for `seconds`; each record is
    (start time, status, app that answered, apps tried)."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(out) < budget:
        t = time.monotonic()
        try:
            a = fetch_port(EDGE_PORT, "GET", f"/r{len(out)}", addr=edge, timeout=5.0)
            status, who = a.status, a.body.decode(errors="replace").strip().replace("hello from ", "")
            tried = [names.get(x.strip(), x.strip()) for x in a.headers.get("x-upstream", "").split(",")]
        except OSError as e:
            status, who, tried = 0, repr(e), []
        out.append((t, status, who, tried))
        time.sleep(PAUSE)
    return out


def run(scale, seconds, budget):
    return scale.lan.call("client", client_loop, scale.lan.addr("edge"), seconds, budget,
                          scale.names())


def test_kill_and_freeze_app_hosts(scale):
    budget = MAX_REQUESTS
    warm = run(scale, 1.0, budget)
    assert {w for _, s, w, _ in warm if s == 200} == set(APPS_NAMES), warm
    assert all(s == 200 for _, s, _, _ in warm), warm

    scale.lan.signal_host("app1", signal.SIGKILL)
    scale.lan.signal_host("app2", signal.SIGSTOP)
    down = run(scale, 2.0 * FAIL_TIMEOUT + 0.5, budget - len(warm))
    failed = [r for r in down if r[1] != 200]
    assert not failed, f"{len(failed)} failed requests: {failed[:5]}\n{scale.logs()}"
    assert {w for _, _, w, _ in down} == {"app3"}, (len(warm), down)
    # out of the rotation: each dead host tried about once per fail_timeout window
    windows = int((down[-1][0] - down[0][0]) // FAIL_TIMEOUT) + 2
    for dead in ("app1", "app2"):
        tries = sum(dead in tried for *_, tried in down)
        assert 1 <= tries <= windows, (dead, tries, windows, len(down))
    assert len(down) > 4 * windows, f"only {len(down)} requests: the dead hosts held the loop"

    scale.lan.signal_host("app2", signal.SIGCONT)
    scale.start_app("app1")
    back_at = time.monotonic()
    back = run(scale, FAIL_TIMEOUT + READ_TIMEOUT + 2.0, budget - len(warm) - len(down))
    assert all(s == 200 for _, s, _, _ in back), back
    first = {}
    for t, _, who, _ in back:
        first.setdefault(who, t - back_at)
    assert set(first) == set(APPS_NAMES), (first, back[-5:])
    for name in ("app1", "app2"):
        assert first[name] <= FAIL_TIMEOUT + READ_TIMEOUT + 1.5, (name, first)
    tries = {d: sum(d in tried for *_, tried in down) for d in ("app1", "app2")}
    print(f"\nscale-out: warm {len(warm)}, down {len(down)} (dead tried {tries}), "
          f"back {len(back)}, first answers after restart {first}")
