"""Keep-alive connections that arrive in a burst spread over the workers
(issue 14: two workers must not serve less than one).

A load generator such as wrk opens all its keep-alive connections at once and
sends a request on each as soon as it is connected; each connection then stays
with the worker that accepted it. The workers take turns on the accept board
by the connections each holds open (docs/design-notes.md §2), so neither
worker may end up with nearly all of them, even on a loaded machine where a
worker waits for a core for tens of milliseconds between two accepts (it held
20 of 20 runs beside two busy loops; before, about one run in ten gave
18/46 or worse there, and 50/14 once in CI).
"""

import selectors
import socket
import time

from test_process_model import APP, wait_ready

CONNECTIONS = 64
REQUEST = b"GET /pid HTTP/1.1\r\nHost: spread\r\n\r\n"


def answer_of(buffer):
    """(body, rest) if `buffer` holds a whole response with a Content-Length,
    else None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buffer[:head_end].decode("latin-1")
    assert head.startswith("HTTP/1.1 200"), head
    length = None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    assert length is not None, head
    end = head_end + 4 + length
    if len(buffer) < end:
        return None
    return buffer[head_end + 4 : end], buffer[end:]


def burst_of_keepalive_clients(server, seconds):
    """wrk's way: connect CONNECTIONS clients at once, each sending its first
    request as soon as it is connected and the next one on every answer, for
    `seconds`. Returns, per connection, the pids that answered it."""
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(CONNECTIONS):
        s = socket.create_connection((server.host, server.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(REQUEST)
        conns.append(s)
    pids = {s: [] for s in conns}
    buffers = {s: b"" for s in conns}
    for s in conns:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds
    waiting = set(conns)
    try:
        while waiting:
            events = sel.select(timeout=5)
            assert events, f"{len(waiting)} connections got no answer in 5 s"
            for key, _ in events:
                s = key.fileobj
                data = s.recv(65536)
                assert data, "the server closed a keep-alive connection"
                buffers[s] += data
                while (parsed := answer_of(buffers[s])) is not None:
                    body, buffers[s] = parsed
                    pids[s].append(int(body))
                    if time.monotonic() < deadline:
                        s.sendall(REQUEST)
                    else:
                        waiting.discard(s)
    finally:
        sel.close()
        for s in conns:
            s.close()
    return list(pids.values())


def test_a_burst_of_keepalive_connections_spreads_over_two_workers(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2", "--disable-logging")
    workers = wait_ready(server, 2)
    answered = burst_of_keepalive_clients(server, seconds=1.0)
    # a keep-alive connection stays with the worker that accepted it
    assert all(len(set(p)) == 1 for p in answered), answered
    held = {pid: sum(1 for p in answered if p[0] == pid) for pid in workers}
    assert sum(held.values()) == CONNECTIONS, (held, workers)
    assert all(n >= CONNECTIONS // 4 for n in held.values()), (
        f"keep-alive connections per worker: {held} (each should hold at least {CONNECTIONS // 4})"
    )
