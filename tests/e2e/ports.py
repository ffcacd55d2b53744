"""Ports for the servers the end-to-end tests start on a port named in advance
(nginx, `portico -c`, uWSGI, python backends, `--http 127.0.0.1:PORT`).

Binding port 0, reading the number and closing the socket races: until the
server binds the port, the kernel may hand the same number to any other socket
that asks for an ephemeral port (most often the source port of one of the
tests' own outgoing connections, or another server binding port 0), and the
server exits with "Address already in use" (a CI flake of
test_proxy_health.py). So `free_port()`:

- hands out ports BELOW the kernel's ephemeral range
  (/proc/sys/net/ipv4/ip_local_port_range), where the kernel never picks a
  source port or a port-0 port (above the range when there is no room below);
- never hands out the same port twice in one pytest process (a counter), and
  starts at an offset drawn from the pid, so two runs at once (two worktrees)
  rarely walk the same ports;
- still checks with a bind, SO_REUSEADDR off (a port in TIME_WAIT counts as
  taken), on the IPv4 and IPv6 wildcard addresses (configs say `listen
  {port}` and `listen [::1]:{port}` too), that nothing holds it now.

`port_taken(log)` says whether a server's log reports its port taken: the
start helpers that can pick new ports (nginxctl.NginxMaster,
nginx_diff.PorticoSide, nginxctl.real_uwsgi) try again once more then.
"""

import errno
import itertools
import os
import socket
import threading

# The lowest port handed out: above the fixed ports of well-known local
# services and of the configs' own examples (8000, 8080, 9090...).
FLOOR = 20000
# The fewest ports a range must hold to be used (else: the kernel's port 0).
MIN_SPAN = 1000
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
# How the servers under test say a port is taken (nginx, Rust's io::Error,
# uWSGI, Python's OSError all carry strerror(EADDRINUSE)).
TAKEN = os.strerror(errno.EADDRINUSE)


def ephemeral_range(path=EPHEMERAL_RANGE):
    """(low, high) of the kernel's ephemeral ports; Linux's default if unreadable."""
    try:
        with open(path) as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def handout_range(ephemeral):
    """[first, last] of the ports to hand out given the ephemeral (low, high): below
    it from FLOOR, else above it; None when neither holds MIN_SPAN ports."""
    low, high = ephemeral
    for first, last in ((FLOOR, low - 1), (max(FLOOR, high + 1), 65535)):
        if last - first + 1 >= MIN_SPAN:
            return first, last
    return None


def _bindable(family, host, port):
    """True if nothing holds `port` on `host` (SO_REUSEADDR off); an address family
    the machine lacks counts as free."""
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return True
    with s:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.errno != errno.EADDRINUSE
        return True


def is_free(port):
    """True if `port` can be bound on every IPv4 and IPv6 address right now."""
    return _bindable(socket.AF_INET, "0.0.0.0", port) and _bindable(socket.AF_INET6, "::", port)


def _kernel_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortSource:
    """Hands out the ports of [first, last] in turn, from `offset` on, skipping those
    `free` says are held; each at most once (then: RuntimeError)."""

    def __init__(self, first, last, offset, free=is_free):
        self.first, self.span = first, last - first + 1
        self._next = itertools.count(offset % self.span)
        self._stop = offset % self.span + self.span
        self._free = free
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            for i in self._next:
                if i >= self._stop:
                    break
                port = self.first + i % self.span
                if self._free(port):
                    return port
        raise RuntimeError(f"no free port left in {self.first}..{self.first + self.span - 1}")


def _source():
    bounds = handout_range(ephemeral_range())
    if bounds is None:
        return None
    first, last = bounds
    # a pid-dependent start (Knuth's multiplicative hash spreads consecutive pids)
    return PortSource(first, last, (os.getpid() * 2654435761) % 2**32)


_SOURCE = _source()


def free_port():
    """A loopback TCP port nothing holds now and no other caller in this process was
    given (see the module doc)."""
    if _SOURCE is None:
        return _kernel_port()
    return _SOURCE.take()


def port_taken(log):
    """True if a server's log text says the address it wanted to bind is in use."""
    return TAKEN in log
