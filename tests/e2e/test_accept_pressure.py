"""Issues 14 and 16 (item 2), through the real binary: accepting that cannot be
starved. Connections that never send a byte, header tricklers and keep-alive
load must not delay a new client; the accept gate counts Python work, not
connections.

Latency bounds are those the issues name (100 ms for a normal request under
silent-connection pressure; 20 ms p99 for a new Flask connection during
keep-alive load), asserted generously where a shared 2-core machine makes
timing noisy; every test prints what it measured (pytest -s shows it).
"""

import re
import shutil
import socket
import statistics
import subprocess
import threading
import time

import pytest

from conftest import APPS
from ports import free_port

APP = APPS / "proc_app.py"


def timed_get(server, path="/", timeout=5.0):
    """One request on a new connection; (seconds, status line)."""
    started = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return time.monotonic() - started, data.split(b"\r\n", 1)[0]


def open_silent(server, n):
    """n connections that send nothing (non-blocking connects, then kept open)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((server.host, server.port))
        except BlockingIOError:
            pass
        socks.append(s)
    return socks


def report(name, timings):
    ms = sorted(t * 1000 for t in timings)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"\n{name}: {len(ms)} requests, median {statistics.median(ms):.1f} ms, "
        f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
    )
    return ms


def test_2000_silent_connections_then_a_normal_request_is_answered_within_100ms(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2", "--listen", "4096")
    timed_get(server)
    silent = open_silent(server, 2000)
    try:
        time.sleep(0.2)
        timings = []
        for _ in range(10):
            elapsed, status = timed_get(server)
            assert status == b"HTTP/1.1 200 OK", status
            timings.append(elapsed)
        ms = report("after 2000 silent connections", timings)
        assert statistics.median(ms) < 100, ms
        assert ms[-1] < 1000, ms
    finally:
        for s in silent:
            s.close()


def test_bursts_of_keep_alive_clients_beside_idle_ones_are_all_answered(portico_server):
    # Batches of 100 connections that each send one request at once, then
    # stay open and idle (bench/idle_conns.py's pattern): every batch must
    # be answered, whichever worker defers a connection to its sibling (a
    # worker that dropped its listener's readiness while deferring once left
    # the rest of a queued burst unaccepted).
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    held = []
    try:
        for batch in range(5):
            conns = [socket.create_connection((server.host, server.port), timeout=5)
                     for _ in range(100)]
            held.extend(conns)
            for c in conns:
                c.sendall(request)
            for i, c in enumerate(conns):
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = c.recv(4096)
                    assert chunk, f"batch {batch}, connection {i}: closed before the answer"
                    head += chunk
                assert head.startswith(b"HTTP/1.1 200"), (batch, i, head[:40])
    finally:
        for c in held:
            c.close()


def test_30_silent_connections_a_second_do_not_delay_a_canary(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    timed_get(server)
    silent, stop = [], threading.Event()

    def attacker():
        while not stop.is_set():
            silent.extend(open_silent(server, 1))
            time.sleep(1 / 30)

    thread = threading.Thread(target=attacker)
    thread.start()
    timings = []
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            elapsed, status = timed_get(server)
            assert status == b"HTTP/1.1 200 OK", status
            timings.append(elapsed)
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
        for s in silent:
            s.close()
    ms = report(f"canary beside {len(silent)} silent connections at 30/s", timings)
    assert len(silent) >= 90, len(silent)
    assert statistics.median(ms) < 100, ms
    assert ms[-1] < 1000, ms


def test_slow_header_clients_add_no_latency_to_new_connections(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    baseline = [timed_get(server)[0] for _ in range(10)]
    stop = threading.Event()
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000

    def trickle():
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            for byte in head:
                if stop.is_set():
                    return
                sock.sendall(bytes([byte]))
                time.sleep(0.02)

    clients = [threading.Thread(target=trickle) for _ in range(2)]
    for c in clients:
        c.start()
    try:
        time.sleep(0.3)
        timings = [timed_get(server)[0] for _ in range(20)]
    finally:
        stop.set()
        for c in clients:
            c.join(5)
    report("baseline", baseline)
    ms = report("beside two header tricklers", timings)
    # Before: every new connection waited 50-100 ms for a trickler's slot.
    assert statistics.median(ms) < max(50, 3 * statistics.median(baseline) * 1000), ms
    assert ms[-1] < 1000, ms


def test_a_worker_busy_in_the_app_leaves_new_connections_to_its_sibling(portico_server):
    """The gate counts Python work: while one worker's only thread sleeps in
    a request, new connections go to the other at once."""
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    timed_get(server)
    slow = threading.Thread(target=timed_get, args=(server, "/sleep?1.5"))
    slow.start()
    server.wait_for_line(r"proc_app: pid \d+ sleeping 1.5")
    timings = [timed_get(server)[0] for _ in range(10)]
    slow.join(5)
    ms = report("beside a worker busy for 1.5 s", timings)
    assert ms[-1] < 1000, ms


FLASK_APP = """
from flask import Flask, jsonify
app = Flask(__name__)

@app.route("/json")
def json():
    return jsonify(message="Hello, World!")
"""


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/test.sh installs it)")
def test_new_flask_connection_during_keep_alive_load_is_answered_quickly(
    portico_server, tmp_path, examples_venv
):
    app = tmp_path / "flask_app.py"
    app.write_text(FLASK_APP)
    server = portico_server(
        "--wsgi-file", app, "--callable", "app", "--master", "-p", "2",
        "--virtualenv", examples_venv, "--disable-logging",
    )
    timed_get(server, "/json")
    # wrk's 64 keep-alive connections, as in issue 14's measurement.
    load = subprocess.Popen(
        ["wrk", "-t1", "-c64", "-d4s", f"http://{server.host}:{server.port}/json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        time.sleep(0.7)
        timings = []
        for _ in range(50):
            elapsed, status = timed_get(server, "/json")
            assert status == b"HTTP/1.1 200 OK", status
            timings.append(elapsed)
            time.sleep(0.02)
    finally:
        out = load.communicate(timeout=20)[0]
    served = re.search(r"(\d+) requests in", out)
    assert served and int(served.group(1)) > 1000, out
    ms = report(f"new Flask connections beside wrk -c64 keep-alive ({served.group(1)} requests)", timings)
    # The goal is 20 ms at p99 (765 ms before; 0.4-1.9 s measured here
    # before this change, 10-200 ms after, median 3-5 ms); on a shared 2-core
    # machine running the load generator too, assert a generous bound.
    assert ms[min(len(ms) - 1, int(len(ms) * 0.99))] < 500, ms


def test_connections_over_worker_connections_are_refused_with_503_when_none_is_idle(
    portico_server, tmp_path
):
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "worker_processes 1;\nerror_log stderr;\npid %s/nginx.pid;\n"
        "events { worker_connections 4; }\n"
        "http { access_log off; server { listen 127.0.0.1:%d; location / { return 200 \"ok\\n\"; } } }\n"
        % (tmp_path, port)
    )
    server = portico_server("-c", conf)
    held = []
    try:
        for _ in range(4):
            # a head half sent: a request in hand, never closed to make room
            # (idle ones are: test_worker_connections.py)
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = b""
            while chunk := extra.recv(4096):
                raw += chunk
        assert raw.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), raw
        server.wait_for_line(r"4 worker_connections are not enough")
        last = held.pop()
        last.sendall(b"\r\n")
        assert last.recv(4096).startswith(b"HTTP/1.1 200"), "a busy connection was left alone"
        last.close()
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as again:
            again.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert again.recv(4096).startswith(b"HTTP/1.1 200"), "room again once one closed"
    finally:
        for s in held:
            s.close()
