"""Hosts made of Linux network namespaces, for tests that need several machines (the
reverse proxy's scale-out test): each host is a namespace with one veth interface
plugged into a bridge that lives in its own "switch" namespace, all on one /24.

    with Lan("10.77.0") as lan:                 # the switch, created now
        lan.add_host("app1", 11)                # namespace + veth, address 10.77.0.11
        proc = lan.spawn("app1", ["portico", ...], log=path)
        lan.call("client", fn, *args)           # fn runs in a thread inside client's namespace
        lan.signal_host("app1", signal.SIGKILL) # every process of that host
    # every process left in the namespaces is killed, the namespaces are deleted

Nothing is touched in the root namespace: names carry the test's pid (`pt<pid>-<host>`),
so parallel runs do not collide, and `close()` (also at interpreter exit) removes
them. `unavailable()` says why namespaces cannot be made here (not root, no `ip`,
no permission), for a skip reason.
"""

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading

from conftest import binary_env

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
_open = set()


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: exit {r.returncode}: {r.stdout.decode(errors='replace')}")
    return r


def unavailable():
    """None if namespaces, veths and bridges can be made here; else why not."""
    if shutil.which("ip") is None:
        return "network namespaces unavailable: no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "network namespaces unavailable: the test must run as root (ip netns add)"
    probe = f"ptprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        try:
            _ip("-n", probe, "link", "add", "br0", "type", "bridge")
            _ip("-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        finally:
            _ip("netns", "del", probe, check=False)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return f"network namespaces unavailable: {e}"
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def _enter(ns):
    """Move the calling thread into namespace `ns` (the thread only)."""
    fd = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Lan:
    """A switch (bridge) and hosts on PREFIX.0/24 (see the module doc)."""

    def __init__(self, prefix="10.77.0"):
        self.prefix = prefix
        self.tag = f"pt{os.getpid() % 100000}"
        self.switch = f"{self.tag}-sw"
        self.hosts = {}  # name -> (namespace, address)
        self.procs = []

    def __enter__(self):
        _open.add(self)
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def __exit__(self, *exc):
        self.close()

    def ns(self, host):
        return self.hosts[host][0]

    def addr(self, host):
        return self.hosts[host][1]

    def add_host(self, name, last_octet):
        ns = f"{self.tag}-{name}"
        addr = f"{self.prefix}.{last_octet}"
        port = f"v{len(self.hosts)}{self.tag}"[:15]
        _ip("netns", "add", ns)
        self.hosts[name] = (ns, addr)
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return addr

    def spawn(self, host, args, log, env=None, cwd=None):
        """Start `args` inside `host` (`ip netns exec` execs it: the pid is the program's)."""
        full_env = binary_env(env)
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *map(str, args)],
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=full_env, cwd=cwd)
        self.procs.append(proc)
        return proc

    def pids(self, host):
        """Every process running in `host`'s namespace (all were started by this test)."""
        r = _ip("netns", "pids", self.ns(host), check=False)
        return [int(p) for p in r.stdout.split() if p.isdigit()]

    def signal_host(self, host, sig):
        """Send `sig` to every process of `host` (SIGKILL: the host dies; SIGSTOP: it
        freezes, its kernel still accepting connections)."""
        for pid in self.pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def call(self, host, fn, *args, **kwargs):
        """fn(*args, **kwargs) in a new thread inside `host`'s namespace; its result
        (or its exception, raised here)."""
        box = {}

        def run():
            try:
                _enter(self.ns(host))
                box["value"] = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                box["error"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def close(self):
        _open.discard(self)
        for host in list(self.hosts):
            self.signal_host(host, signal.SIGCONT)
            self.signal_host(host, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for ns, _ in self.hosts.values():
            _ip("netns", "del", ns, check=False)
        _ip("netns", "del", self.switch, check=False)
        self.hosts.clear()


@atexit.register
def _close_all():
    for lan in list(_open):
        lan.close()
