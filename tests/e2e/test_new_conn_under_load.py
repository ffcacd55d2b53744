"""A new connection opened while keep-alive clients keep every worker busy
is answered after about one request, not after a round of all of them
(issue 14: "a new connection during keep-alive load answered within 20 ms";
docs/design-notes.md §16, "A new connection during keep-alive load").

Under keep-alive load the accept loop, a task like the connections, used to
see a new client only at the end of a round of every ready connection (the
runtime polls its I/O driver when its run queue is empty), so with 16
always-ready connections per worker a new client waited behind 0-16
requests, 8 on average, and more when the accept board left it to a sibling
that was in its own round. Now a connection whose request took long enough
to yield takes a waiting client first (crates/server/src/accept_between.rs).

The test counts instead of timing: every answer carries the worker's pid and
its own request sequence number (apps/busy_seq.py, and its Flask twin
apps/flask_seq.py, whose bodies are pulled by the connection), so the requests a worker
served between a fresh client's connect and its answer are the difference
of two sequence numbers. The keep-alive clients pipeline two requests each,
so each is always ready. On a shared 2-core machine the counts do not depend
on how much CPU the workers get.
"""

import selectors
import socket
import statistics
import time

import pytest

from conftest import APPS
from test_keepalive_spread import answer_of
from test_process_model import wait_ready

KEEPALIVE = 32
PIPELINED = 2
PROBES = 24
BUSY = b"GET /busy HTTP/1.1\r\nHost: load\r\n\r\n"
QUICK = b"GET /quick HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"


class Load:
    """KEEPALIVE keep-alive connections, each with PIPELINED requests always
    in flight; remembers the highest sequence number seen from each worker."""

    def __init__(self, server):
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.buffers = {}
        self.seen = {}
        self.answers = 0
        for _ in range(KEEPALIVE):
            s = socket.create_connection((server.host, server.port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(BUSY * PIPELINED)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, "load")
            self.conns.append(s)
            self.buffers[s] = b""

    def answer(self, pid_seq):
        pid, seq = (int(x) for x in pid_seq.split())
        self.seen[pid] = max(self.seen.get(pid, 0), seq)
        return pid, seq

    def pump(self, timeout):
        """Read what is there (waiting up to `timeout` for something);
        returns the probe socket's events separately."""
        ready = []
        for key, _ in self.sel.select(timeout=timeout):
            s = key.fileobj
            if key.data != "load":
                ready.append(s)
                continue
            data = s.recv(65536)
            assert data, "the server closed a keep-alive connection"
            self.buffers[s] += data
            while (parsed := answer_of(self.buffers[s])) is not None:
                body, self.buffers[s] = parsed
                self.answer(body.decode())
                self.answers += 1
                s.sendall(BUSY)
        return ready

    def close(self):
        self.sel.close()
        for s in self.conns:
            s.close()


def probe(server, load):
    """Open a fresh connection while the load runs; returns (requests the
    answering worker served between the connect and this answer, seconds)."""
    while load.pump(0):  # read every answer already there
        pass
    load.pump(0)
    seen = dict(load.seen)
    began = time.monotonic()
    fresh = socket.create_connection((server.host, server.port), timeout=10)
    fresh.sendall(QUICK)
    fresh.setblocking(False)
    load.sel.register(fresh, selectors.EVENT_READ, "probe")
    got = b""
    try:
        while (parsed := answer_of(got)) is None:
            assert time.monotonic() - began < 30, "a new connection got no answer in 30 s"
            for s in load.pump(1.0):
                data = s.recv(65536)
                assert data, f"the new connection was closed unanswered: {got!r}"
                got += data
    finally:
        load.sel.unregister(fresh)
        fresh.close()
    pid, seq = load.answer(parsed[0].decode())
    return seq - seen.get(pid, 0) - 1, time.monotonic() - began


@pytest.mark.parametrize("app", ["plain", "flask"])
def test_a_new_connection_is_answered_between_two_keepalive_requests(portico_server, app, request):
    if app == "flask":
        venv = request.getfixturevalue("examples_venv")
        args = ["--virtualenv", venv, "--wsgi-file", APPS / "flask_seq.py"]
    else:
        args = ["--wsgi-file", APPS / "busy_seq.py"]
    server = portico_server(*args, "--master", "-p", "2", "--disable-logging")
    wait_ready(server, 2)
    load = Load(server)
    try:
        # every keep-alive connection answered once: the load is on
        while load.answers < KEEPALIVE * PIPELINED:
            load.pump(5.0)
        waits = []
        for _ in range(PROBES):
            waits.append(probe(server, load))
            start = load.answers
            while load.answers < start + 8:  # some load between probes
                load.pump(5.0)
    finally:
        load.close()
    served = sorted(n for n, _ in waits)
    shown = ", ".join(f"{n} ({t * 1000:.0f} ms)" for n, t in waits)
    # Each keep-alive connection has two requests in flight, so up to a few
    # may be under way when the probe connects; a round is 16 per worker.
    assert statistics.median(served) <= 3, (
        f"requests a worker served before answering a new connection: {shown}"
    )
    assert served[-3] <= 8, f"requests served before a new connection: {shown}"
