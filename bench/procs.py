"""Process plumbing for bench/: free ports, starting and killing servers,
waiting for a first good answer, and RSS of a whole process tree from /proc.

Every server is started in its own session (so its process group holds its
master and all its workers) and is stopped through that group only: first
its own "stop now" signal, then SIGKILL for whatever is left. Nothing else
on the machine is ever signalled. Only loopback addresses are used.
"""

import os
import signal
import ssl
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

# free_port: the end-to-end tests' one port helper (tests/e2e/ports.py): ports
# below the kernel's ephemeral range, never twice, so no outgoing connection
# takes one between the pick and the server's bind.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from ports import free_port  # noqa: E402,F401

LOOPBACK = "127.0.0.1"


def _children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: split after the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree_pids(root):
    """root and all its descendants, found through /proc/*/stat."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(roots):
    """(sum of VmRSS in KiB, number of processes) over the trees of roots."""
    total, count = 0, 0
    for root in roots:
        for pid in tree_pids(root):
            kib = rss_kib(pid)
            if kib:
                total += kib
                count += 1
    return total, count


class RssSampler:
    """Samples the summed RSS of some process trees every `interval` s."""

    def __init__(self, roots, interval=0.2):
        self.roots, self.interval = roots, interval
        self.peak_kib, self.samples = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            kib, _ = tree_rss_kib(self.roots)
            self.peak_kib = max(self.peak_kib, kib)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class Server:
    """One running server: argv, its log file, and how to stop it."""

    def __init__(self, name, argv, log_path, stop_signal=signal.SIGTERM,
                 env=None, cwd=None):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.stop_signal, self.env, self.cwd = stop_signal, env, cwd
        self.proc = None
        self.started_at = None

    def start(self):
        self._log = open(self.log_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
            start_new_session=True)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(data.strip().splitlines()[-lines:])

    def stop(self, grace=5.0):
        """Stop the whole process group; SIGKILL it after `grace` seconds."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: pgid == pid of the leader
        try:
            os.killpg(pgid, self.stop_signal)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # workers may outlive their master for a moment; be sure of the group
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.05)
        if _group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# The https-* scenarios serve a self-signed certificate made for the run.
_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


def http_get(url, timeout=1.0):
    """(status, body) of a GET; status None on a connection failure."""
    assert url.startswith((f"http://{LOOPBACK}:", f"https://{LOOPBACK}:")), url
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=_INSECURE) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return None, b""


def h2_get(url, timeout=1.0):
    """http_get over HTTP/2 (curl --http2, ALPN h2): for a server that
    answers HTTP/2 only (granian --http 2), which urllib cannot ask."""
    assert url.startswith(f"https://{LOOPBACK}:"), url
    with tempfile.NamedTemporaryFile() as body:
        try:
            p = subprocess.run(["curl", "-sk", "--http2", "--max-time", str(timeout),
                                "-o", body.name, "-w", "%{http_code}", url],
                               capture_output=True, text=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            return None, b""
        status = int(p.stdout) if p.stdout.isdigit() and p.stdout != "000" else None
        return status, body.read()


def wait_ready(servers, url, timeout=30.0, poll=0.01, get=None):
    """Poll url every `poll` s until it answers 200 or a server dies
    (with `get`, e.g. h2_get, instead of http_get).

    Returns (seconds from the first server's start to the first 200,
    last status, last body). Raises RuntimeError on death or time-out.
    """
    t0 = servers[0].started_at
    last = (None, b"")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in servers:
            if not s.alive():
                raise RuntimeError(
                    f"{s.name} exited with code {s.proc.returncode} before "
                    f"answering; log tail:\n{s.log_tail()}")
        last = (get or http_get)(url, timeout=1.0)
        if last[0] == 200:
            return time.monotonic() - t0, last[0], last[1]
        time.sleep(poll)
    raise RuntimeError(
        f"no 200 from {url} within {timeout:.0f}s (last status {last[0]}); "
        f"log tail:\n" + "\n".join(s.log_tail() for s in servers))


class Prober:
    """While wrk loads a server, opens a fresh connection every `interval` s
    and times one GET on it. wrk never counts a request that got no answer
    at all, so a server that serves only some of its connections (one per
    worker, say) would look fast; the probes show new clients starving."""

    def __init__(self, url, interval=0.05, timeout=3.0, get=None):
        self.url, self.interval, self.timeout = url, interval, timeout
        self.get = get or http_get
        self.latencies, self.failures = [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval):
            t0 = time.monotonic()
            status, _ = self.get(self.url, timeout=self.timeout)
            if status is not None and 200 <= status < 300:
                self.latencies.append(time.monotonic() - t0)
            elif not self._stop.is_set():
                self.failures += 1

    def summary(self):
        n = len(self.latencies) + self.failures
        ms = sorted(x * 1000 for x in self.latencies)

        def rank(q):  # nearest-rank percentile of the answered probes
            return ms[max(0, -(-len(ms) * q // 100) - 1)] if ms else None

        return {"probes": n, "failed": self.failures,
                "max_ms": ms[-1] if ms else None,
                "median_ms": rank(50), "p99_ms": rank(99)}

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ---- CPU time and context switches of process trees ----------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_times(pid):
    """(starttime, utime+stime, cutime+cstime) in clock ticks, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # fields after the command name: state is field 3 (index 0 here)
    f = stat.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in f[11:15])
    return int(f[19]), utime + stime, cutime + cstime


def _thread_switches(pid):
    """{tid: voluntary + nonvoluntary context switches} of pid's live threads."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        n = 0
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:",
                                        "nonvoluntary_ctxt_switches:")):
                        n += int(line.split()[1])
        except OSError:
            continue
        out[int(tid)] = n
    return out


class TreeUsage:
    """One snapshot of the CPU time and context switches of process trees.

    cpu_ticks is the sum over every process of the trees of utime + stime +
    cutime + cstime. A process that exits and is reaped by its parent (always
    a member of the tree) moves its whole CPU time into the parent's cutime +
    cstime, so this sum only grows and the difference of two snapshots is
    the CPU the trees used between them, whether their processes lived
    through the window, appeared during it (they start at zero) or exited
    during it. switches holds the voluntary + involuntary context switches
    of every live thread, by (pid, tid); a thread that appears later counts
    from zero; one that exits before the second snapshot takes its switches
    with it (Linux keeps no per-thread total for dead threads in /proc).
    """

    def __init__(self, roots):
        self.at = time.monotonic()
        self.cpu_ticks = 0
        self.procs = {}          # pid -> starttime
        self.switches = {}       # (pid, starttime, tid) -> count
        for root in roots:
            for pid in tree_pids(root):
                t = _proc_times(pid)
                if t is None:
                    continue
                start, own, children = t
                self.procs[pid] = start
                self.cpu_ticks += own + children
                for tid, n in _thread_switches(pid).items():
                    self.switches[(pid, start, tid)] = n

    def since(self, before):
        """CPU seconds and context switches from snapshot `before` to this one."""
        switches = sum(n - before.switches.get(k, 0) if n >= before.switches.get(k, 0)
                       else n for k, n in self.switches.items())
        return {
            "cpu_s": max(0, self.cpu_ticks - before.cpu_ticks) / CLK_TCK,
            "ctx_switches": switches,
            "window_s": self.at - before.at,
            "processes_start": len(before.procs),
            "processes_end": len(self.procs),
            "processes_new": len(set(self.procs.items()) - set(before.procs.items())),
            "processes_gone": len(set(before.procs.items()) - set(self.procs.items())),
            "threads_start": len(before.switches),
            "threads_end": len(self.switches),
        }
