"""The idle-conns scenario: memory per idle keep-alive connection.

Each server gets N connections (default 8,000) that each send one keep-alive
request, read the answer and then stay open and silent. The RSS of the whole
server tree (procs.tree_rss_kib) is read before the connections are opened
(after a warm-up of a few requests) and again once they all idle; the
difference divided by N is the cost of one idle connection, in KiB. Portico
and nginx are measured in the same run, one after the other.

The connections are opened in batches of 100 (the listen queue is 1024 by
default, and a batch's transient request buffers stay resident in the
allocator after they are freed), and the client raises its own descriptor limit to the hard limit;
the servers inherit it.
"""

import resource
import socket
import time

from procs import LOOPBACK, tree_rss_kib

# Connections opened, asked and answered at a time: small, so that the read
# buffers of a batch's requests (freed once answered, but left resident in
# the allocator) do not count as the cost of idle connections.
BATCH = 100
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def _raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _answer_read(sock):
    """Read one whole response with Content-Length (the hello and return bodies)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed in the body")
        body += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"answered {head[:40]!r}")


def open_idle(port, count):
    """`count` connections, each after one answered keep-alive request."""
    socks = []
    for start in range(0, count, BATCH):
        batch = []
        for _ in range(min(BATCH, count - start)):
            s = socket.create_connection((LOOPBACK, port), timeout=10)
            batch.append(s)
        for s in batch:
            s.sendall(REQUEST)
        for s in batch:
            _answer_read(s)
        socks.extend(batch)
    return socks


def measure(pids, port, count, settle=2.0):
    """(KiB per idle connection, details) for the server trees of `pids`."""
    limit = _raise_nofile(count + 200)
    if limit < count + 100:
        raise RuntimeError(f"descriptor limit {limit} is too low for {count} connections")
    warm = open_idle(port, 20)
    for s in warm:
        s.close()
    time.sleep(settle)
    before, nproc = tree_rss_kib(pids)
    socks = open_idle(port, count)
    try:
        time.sleep(settle)
        after, _ = tree_rss_kib(pids)
        alive = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1):
                    alive += 1  # open (sent something unexpected)
            except BlockingIOError:
                alive += 1  # open, nothing to read: still idle
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
    per = (after - before) / count
    return per, {
        "connections": count, "still_open": alive, "rss_before_kib": before,
        "rss_after_kib": after, "processes": nproc,
    }
