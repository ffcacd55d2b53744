"""The process model (issue 3): master, prefork workers, respawn, recycling,
harakiri, signals, touch-reload, daemonize/pidfile/vacuum, --threads, fair
accept, no-master mode, --lazy-apps, --uid/--gid and the crash-loop throttle.

Every test runs the real binary and asserts on HTTP responses, log lines
(uWSGI's shapes, see shared/reference/uwsgi.md sections 5 and 6) and the
processes themselves (/proc).
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import APPS, read_until_close

APP = APPS / "proc_app.py"
CRASH_EXIT = APPS / "proc_crash_exit.py"
CRASH_RAISE = APPS / "proc_crash_raise.py"

RESPAWNED_RE = r"Respawned uWSGI worker (\d+) \(new pid: (\d+)\)"
MASTER_RE = r"spawned uWSGI master process \(pid: (\d+)\)"
ACCESS_RE = re.compile(r"^\[pid: \d+\|app: ")


# --- helpers -----------------------------------------------------------------------


def get(server, path="/", timeout=10.0):
    """GET with a fresh connection and `Connection: close`; return (status, body text)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def get_pid(server, path="/", timeout=10.0):
    status, body = get(server, path, timeout)
    assert status == 200, (status, body)
    return int(body)


def summary(server):
    """The log without the access-log lines (for assertion messages)."""
    return "\n".join(l for l in list(server.lines) if not ACCESS_RE.search(l))


def matches(server, pattern, start=0):
    """Every match of `pattern` in the log lines from index `start`."""
    regex = re.compile(pattern)
    return [m for m in (regex.search(l) for l in list(server.lines)[start:]) if m]


def wait_count(server, pattern, count, timeout=10.0, start=0):
    """Wait until `count` log lines (from `start`) match `pattern`; return the matches."""
    deadline = time.monotonic() + timeout
    while True:
        found = matches(server, pattern, start)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"expected {count} log lines matching {pattern!r}, got {len(found)}; log:\n"
                + summary(server)
            )
        time.sleep(0.02)


def line_index(server, pattern, start=0):
    """Index of the first log line (from `start`) matching `pattern`, or None."""
    regex = re.compile(pattern)
    for i, line in enumerate(list(server.lines)[start:], start):
        if regex.search(line):
            return i
    return None


def children(pid):
    """Pids of the live (not zombie) child processes of `pid`, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return sorted(found)


def wait_ready(server, count, start=0, timeout=15.0):
    """Wait until `count` workers logged "ready to serve" after log index `start`;
    return the pids of the master's live children (its workers), sorted.

    Counts the phrase rather than whole lines, so that this wait does not
    depend on lines being whole (test_lifecycle_lines_..._never_interleaved
    checks that on its own)."""
    deadline = time.monotonic() + timeout
    while "\n".join(list(server.lines)[start:]).count("is ready to serve") < count:
        if time.monotonic() > deadline or server.proc.poll() is not None:
            raise AssertionError(f"{count} workers never became ready:\n{summary(server)}")
        time.sleep(0.02)
    return children(server.proc.pid)


def wait_sleeping(server, seconds, start=0, timeout=10.0):
    """Wait until the app logs that a `/sleep?SECONDS` request reached it; return its pid."""
    m = server.wait_for_line(
        rf"proc_app: pid (\d+) sleeping {re.escape(str(seconds))}$", timeout=timeout, start=start
    )
    return int(m.group(1))


def gone(pid):
    """True when no such process is running (absent, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.02)
    return all(gone(p) for p in pids)


def send_signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class ClientLoop(threading.Thread):
    """Sequential GETs, a fresh connection each, until stopped.

    Records (time, "ok", status, body) or (time, "error", exception) per request.
    """

    def __init__(self, server, path="/", timeout=10.0, pause=0.002):
        super().__init__(daemon=True)
        self.server = server
        self.path = path
        self.timeout = timeout
        self.pause = pause
        self.results = []
        self._stop_flag = threading.Event()

    def run(self):
        while not self._stop_flag.is_set():
            try:
                status, body = get(self.server, self.path, self.timeout)
                self.results.append((time.monotonic(), "ok", status, body))
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.results.append((time.monotonic(), "error", e))
            time.sleep(self.pause)

    def stop(self):
        self._stop_flag.set()
        self.join(self.timeout + 5)

    def ok(self):
        return [r for r in self.results if r[1] == "ok" and r[2] == 200]

    def failures(self):
        return [r for r in self.results if not (r[1] == "ok" and r[2] == 200)]


# --- respawn -----------------------------------------------------------------------


def test_kill_9_of_a_worker_is_respawned_and_serves_within_a_second(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    old = wait_ready(server, 2)
    loop = ClientLoop(server)
    loop.start()
    try:
        time.sleep(0.3)
        victim = old[0]
        mark = len(server.lines)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        m = server.wait_for_line(RESPAWNED_RE, timeout=5, start=mark)
        new_pid = int(m.group(2))
        # keep the loop going until the new worker has answered (or 3 s passed)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if any(r[3] == str(new_pid) for r in loop.ok()):
                break
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        loop.stop()

    damn = server.wait_for_line(
        rf"DAMN ! worker (\d+) \(pid: {victim}\) died, killed by signal 9 :\( trying respawn \.\.\.",
        timeout=1,
        start=mark,
    )
    assert m.group(1) == damn.group(1) and new_pid not in old
    assert children(server.proc.pid) == sorted([p for p in old if p != victim] + [new_pid])
    first_new = [r[0] for r in loop.ok() if r[0] > killed_at and int(r[3]) not in old]
    assert first_new, f"no response from a new worker after the kill; log:\n{summary(server)}"
    assert first_new[0] - killed_at < 1.0, f"first response from a new pid {first_new[0] - killed_at:.2f} s after the kill"
    assert int([r for r in loop.ok() if r[0] == first_new[0]][0][3]) == new_pid
    assert len(loop.ok()) > 20
    assert len(loop.failures()) <= 1, loop.failures()
    assert not any(r[0] < killed_at for r in loop.failures()), "a request failed before the kill"
    assert server.proc.poll() is None


def test_crash_in_the_app_is_respawned(portico_server):
    """os._exit(1) in the app: the master logs the non-zero exit and respawns."""
    server = portico_server("--wsgi-file", APP, "--master", "-p", "1")
    old = wait_ready(server, 1)[0]
    mark = len(server.lines)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        get(server, "/exit")
    server.wait_for_line(
        rf"DAMN ! worker 1 \(pid: {old}\) died :\( trying respawn \.\.\.", timeout=5, start=mark
    )
    m = server.wait_for_line(RESPAWNED_RE, timeout=5, start=mark)
    assert get_pid(server) == int(m.group(2)) != old


@pytest.mark.parametrize(
    "app,line",
    [
        (CRASH_EXIT, r"DAMN ! worker 1 \(pid: \d+\) died :\( trying respawn \.\.\."),
        (CRASH_RAISE, r"OOPS ! failed loading app in worker 1 \(pid \d+\) :\( trying again\.\.\."),
    ],
    ids=["exit-at-import", "raise-at-import"],
)
def test_crash_loop_is_throttled(portico_server, app, line):
    """Every worker dies while importing the app (--lazy-apps): no fork bomb."""
    server = portico_server("--wsgi-file", app, "--master", "--lazy-apps", "-p", "1", wait=False)
    server.wait_for_line(MASTER_RE, timeout=15)
    server.wait_for_line(line, timeout=10)
    throttle = r"worker respawning too fast !!! i have to sleep a bit \(2 seconds\)\.\.\."
    server.wait_for_line(throttle, timeout=5)
    # measured from when the test saw the line, so never longer than the real pause
    seen = time.monotonic()
    at = line_index(server, throttle)
    before = [l for l in list(server.lines)[:at] if re.search(RESPAWNED_RE, l)]
    assert len(before) < 15, f"{len(before)} respawns before the throttle:\n{summary(server)}"
    # the next respawn waits for the pause: not a fork bomb, and not given up
    server.wait_for_line(RESPAWNED_RE, timeout=5, start=at + 1)
    paused = time.monotonic() - seen
    assert paused >= 1.5, f"respawned {paused:.2f} s after the throttle line:\n{summary(server)}"
    assert server.proc.poll() is None


# --- signals -----------------------------------------------------------------------


APP_V1 = '''\
import os

VERSION = "v1"


def application(environ, start_response):
    body = f"{VERSION} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_sighup_reloads_gracefully_with_zero_failures_and_new_code(portico_server, tmp_path):
    app = tmp_path / "reloadable.py"
    app.write_text(APP_V1)
    server = portico_server("--wsgi-file", app, "--master", "-p", "2")
    master = server.proc.pid
    old = wait_ready(server, 2)
    assert int(server.wait_for_line(MASTER_RE).group(1)) == master
    loop = ClientLoop(server, timeout=10)
    loop.start()
    try:
        time.sleep(0.3)
        # a different length, so no stale bytecode can be used
        app.write_text(APP_V1.replace('"v1"', '"version2"'))
        mark = len(server.lines)
        os.kill(master, signal.SIGHUP)
        server.wait_for_line(r"\.\.\.gracefully killing workers\.\.\.", timeout=5, start=mark)
        server.wait_for_line(r"binary reloading portico", timeout=10, start=mark)
        server.wait_for_line(
            rf"bound to TCP address 127\.0\.0\.1:{server.port} fd \d+ \(inherited\)",
            timeout=10,
            start=mark,
        )
        after = line_index(server, r"\(inherited\)", mark)
        new = wait_ready(server, 2, start=after)
        # keep the loop going until both new workers have answered (or 5 s passed)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if set(new) <= {int(r[3].split()[1]) for r in loop.ok() if r[3].startswith("version2 ")}:
                break
            time.sleep(0.02)
    finally:
        loop.stop()

    log = server.log()
    assert not loop.failures(), f"{len(loop.failures())} failed requests: {loop.failures()[:5]}\n{summary(server)}"
    bodies = [r[3] for r in loop.ok()]
    assert any(b.startswith("v1 ") for b in bodies)
    assert any(b.startswith("version2 ") for b in bodies), f"the new code was never served:\n{summary(server)}"
    # once the new code is served, the old one never comes back
    first_v2 = next(i for i, b in enumerate(bodies) if b.startswith("version2 "))
    assert all(b.startswith("version2 ") for b in bodies[first_v2:])
    assert not set(new) & set(old)
    assert {int(b.split()[1]) for b in bodies[first_v2:]} <= set(new)
    for pid in old:
        assert re.search(rf"Gracefully killing worker \d \(pid: {pid}\)\.\.\.", log), summary(server)
    assert len(re.findall(r"worker \d buried after \d+ seconds", log)) == 2, summary(server)
    # the master re-executed itself: same pid
    masters = [int(m.group(1)) for m in matches(server, MASTER_RE)]
    assert masters == [master, master], summary(server)
    assert server.proc.poll() is None
    assert get(server)[1].startswith("version2 ")


def test_sigterm_lets_the_slow_request_finish_then_exits_0(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    workers = wait_ready(server, 2)
    result = {}

    def slow():
        t = time.monotonic()
        try:
            result["response"] = get(server, "/sleep?2", timeout=10)
        except Exception as e:  # noqa: BLE001
            result["error"] = e
        result["elapsed"] = time.monotonic() - t

    client = threading.Thread(target=slow)
    client.start()
    sleeper = wait_sleeping(server, 2)
    mark = len(server.lines)
    os.kill(server.proc.pid, signal.SIGTERM)
    code = server.proc.wait(15)
    client.join(10)
    server._reader.join(5)
    log = server.log()
    assert "error" not in result, f"{result}\n{summary(server)}"
    status, body = result["response"]
    assert status == 200 and int(body) == sleeper and sleeper in workers, (status, body, sleeper)
    assert result["elapsed"] >= 1.9
    assert code == 0, summary(server)
    assert line_index(server, r"SIGTERM received\.\.\.gracefully killing workers\.\.\.", mark) is not None, summary(server)
    assert line_index(server, rf"goodbye to uWSGI\. \(portico, pid: {server.proc.pid}\)", mark) is not None, summary(server)
    assert wait_gone(workers, 2), [p for p in workers if not gone(p)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["SIGINT", "SIGQUIT"])
def test_sigint_and_sigquit_stop_at_once(portico_server, sig):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    workers = wait_ready(server, 2)
    result = {}

    def slow():
        try:
            result["response"] = get(server, "/sleep?5", timeout=10)
        except Exception as e:  # noqa: BLE001
            result["error"] = e

    client = threading.Thread(target=slow)
    client.start()
    # the request is in the app before the signal: a request never sent cannot pass
    assert wait_sleeping(server, 5) in workers
    t = time.monotonic()
    os.kill(server.proc.pid, sig)
    code = server.proc.wait(10)
    elapsed = time.monotonic() - t
    client.join(10)
    assert code == 0, summary(server)
    assert elapsed < 2.0, f"stopping took {elapsed:.2f} s"
    assert "error" in result, f"the 5 s request was not cut short: {result}"
    # cut short by the server closing the connection, not by the client's own timeout
    assert isinstance(result["error"], (ConnectionError, http.client.HTTPException)), repr(result["error"])
    assert wait_gone(workers, 2)


def test_sigusr1_logs_the_request_counters(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    workers = wait_ready(server, 2)
    for _ in range(5):
        get_pid(server)
    # the counters are updated after the response is sent: let the last one land
    wait_count(server, r"\[pid: \d+\|app: 0\|req: \d+/\d+\]", 5, timeout=5)
    time.sleep(0.2)
    mark = len(server.lines)
    os.kill(server.proc.pid, signal.SIGUSR1)
    total = server.wait_for_line(r"workers total requests: (\d+)", timeout=5, start=mark)
    assert int(total.group(1)) == 5, summary(server)
    per_worker = matches(
        server, r"worker (\d+) app 0 \[\] requests: (\d+) exceptions: (\d+) \(pid: (\d+)", mark
    )
    assert sorted(int(m.group(1)) for m in per_worker) == [1, 2], summary(server)
    assert sum(int(m.group(2)) for m in per_worker) == 5
    assert sorted(int(m.group(4)) for m in per_worker) == sorted(workers)
    assert server.proc.poll() is None


def test_workers_die_with_a_killed_master(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    workers = wait_ready(server, 2)
    assert len(workers) == 2
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(5)
    assert wait_gone(workers, 2.0), f"workers outlived the master: {[p for p in workers if not gone(p)]}"


# --- recycling ---------------------------------------------------------------------


def test_max_requests_with_delta_recycles_each_worker_at_its_count(portico_server):
    server = portico_server(
        "--wsgi-file", APP, "-p", "2",
        "--max-requests", "3", "--max-requests-delta", "2", "--min-worker-lifetime", "0",
    )
    first_pids = wait_ready(server, 2)
    assert "running a master process" in server.log()
    served, errors = [], []
    for i in range(24):
        try:
            served.append(get_pid(server))
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            errors.append((i, repr(e)))
    w1 = server.wait_for_line(r"worker 1 \(pid: (\d+)\) reached max-requests \((\d+) requests\): recycling")
    w2 = server.wait_for_line(r"worker 2 \(pid: (\d+)\) reached max-requests \((\d+) requests\): recycling")
    first = {1: int(w1.group(1)), 2: int(w2.group(1))}
    assert sorted(first.values()) == first_pids, summary(server)
    assert (int(w1.group(2)), int(w2.group(2))) == (3, 5), summary(server)
    # a worker answers exactly its max-requests, then takes no more connections
    assert served.count(first[1]) == 3, f"worker 1 (pid {first[1]}) answered: {served}"
    assert served.count(first[2]) == 5, f"worker 2 (pid {first[2]}) answered: {served}"
    # the replacements recycle at the same counts
    counts = [(int(m.group(1)), int(m.group(2))) for m in matches(server, r"worker (\d) \(pid: \d+\) reached max-requests \((\d+) requests\)")]
    assert all(n == (3 if wid == 1 else 5) for wid, n in counts), counts
    log = server.log()
    for wid in (1, 2):
        old = first[wid]
        respawned = line_index(server, rf"Respawned uWSGI worker {wid} \(new pid: \d+\)")
        seeya = line_index(server, rf"\.\.\.The work of process {old} is done\. Seeya!")
        assert seeya is not None, summary(server)
        server.wait_for_line(rf"worker {wid} killed successfully \(pid: {old}\)", timeout=5)
        assert respawned is not None and respawned < line_index(server, rf"worker {wid} killed successfully \(pid: {old}\)")
    assert "DAMN" not in log, summary(server)
    assert len(set(served)) >= 5
    # recycling never costs a request
    assert not errors, f"{len(errors)} of 24 requests failed: {errors}\n{summary(server)}"


def test_recycling_spawns_the_replacement_before_in_flight_requests_finish(portico_server):
    server = portico_server(
        "--wsgi-file", APP, "-p", "1", "--threads", "2",
        "--max-requests", "1", "--min-worker-lifetime", "0",
    )
    old = wait_ready(server, 1)[0]
    result = {}

    def slow():
        result["response"] = get(server, "/sleep?1.5", timeout=10)
        result["done"] = time.monotonic()

    client = threading.Thread(target=slow)
    client.start()
    assert wait_sleeping(server, 1.5) == old
    assert get_pid(server) == old  # finishes first: the worker retires, the slow one is in flight
    m = server.wait_for_line(RESPAWNED_RE, timeout=5)
    new = int(m.group(2))
    wait_ready(server, 1, start=line_index(server, RESPAWNED_RE))
    assert get_pid(server) == new, "a retiring worker took a new request"
    t = time.monotonic()
    assert client.is_alive(), "the slow request ended before the replacement served"
    client.join(10)
    assert result["response"] == (200, str(old))
    assert result["done"] > t
    server.wait_for_line(rf"worker 1 killed successfully \(pid: {old}\)", timeout=5)
    assert line_index(server, rf"reached max-requests \(1 requests\)") < line_index(server, RESPAWNED_RE)
    assert line_index(server, RESPAWNED_RE) < line_index(server, rf"The work of process {old} is done\. Seeya!")


def test_reload_on_rss_recycles_after_the_request_that_crossed_it(portico_server):
    server = portico_server(
        "--wsgi-file", APP, "-p", "1", "--reload-on-rss", "60", "--min-worker-lifetime", "0"
    )
    old = wait_ready(server, 1)[0]
    assert get_pid(server) == old
    assert get_pid(server) == old  # a small worker is not recycled
    assert get_pid(server, "/alloc?80") == old
    m = server.wait_for_line(
        rf"worker 1 \(pid: {old}\) RSS (\d+) MB is over reload-on-rss 60 MB: recycling", timeout=5
    )
    assert int(m.group(1)) >= 60
    respawned = int(server.wait_for_line(RESPAWNED_RE, timeout=5).group(2))
    server.wait_for_line(rf"worker 1 killed successfully \(pid: {old}\)", timeout=5)
    assert get_pid(server) == respawned != old
    assert "DAMN" not in server.log()


def worker_rss(server):
    """The workers' RSS as the master last recorded it, from the --stats server."""
    host, port = server.wait_for_line(r"Stats server enabled on (\S+) fd: \d+").group(1).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        doc = json.loads(read_until_close(sock))
    return [w["rss"] for w in doc["workers"]]


def wait_master_sampled(server, timeout=5.0):
    """Wait until the master has recorded every worker's RSS (needs --stats): its
    memory sample, and the checks that follow it in the same tick (evil-reload,
    touch-reload), have run at least once."""
    deadline = time.monotonic() + timeout
    while not all(worker_rss(server)):
        assert time.monotonic() < deadline, f"the master never recorded the workers' RSS:\n{summary(server)}"
        time.sleep(0.02)


def test_evil_reload_on_rss_kills_the_worker(portico_server):
    server = portico_server(
        "--wsgi-file", APP, "-p", "1", "--evil-reload-on-rss", "60", "--stats", "127.0.0.1:0"
    )
    old = wait_ready(server, 1)[0]
    assert get_pid(server) == old
    # the master measured the small worker (the RSS it records is what it compares) ...
    wait_master_sampled(server)
    # ... and left it alone: it still answers, and nothing was logged
    assert get_pid(server) == old
    assert "EVIL RELOAD" not in server.log(), summary(server)
    try:
        get(server, "/alloc?80")  # the master may kill it before or after it answers
    except (ConnectionError, http.client.HTTPException):
        pass
    m = server.wait_for_line(rf"\*\*\* EVIL RELOAD ON WORKER 1 RSS: (\d+) \(pid: {old}\) \*\*\*", timeout=5)
    assert int(m.group(1)) > 60 * 1024 * 1024
    server.wait_for_line(
        rf"DAMN ! worker 1 \(pid: {old}\) died, killed by signal 9 :\( trying respawn \.\.\.", timeout=5
    )
    new = int(server.wait_for_line(RESPAWNED_RE, timeout=5).group(2))
    assert gone(old)
    assert get_pid(server) == new != old


# --- harakiri ----------------------------------------------------------------------


def test_harakiri_kills_the_stuck_worker_and_respawns(portico_server):
    server = portico_server("--wsgi-file", APP, "-p", "1", "--harakiri", "1")
    old = wait_ready(server, 1)[0]
    t = time.monotonic()
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        get(server, "/sleep?5", timeout=10)
    elapsed = time.monotonic() - t
    assert elapsed < 3.5, f"the client was dropped only after {elapsed:.2f} s"
    server.wait_for_line(
        rf"- \*\*\* HARAKIRI ON WORKER 1 \(pid: {old}, try: 1, graceful: no\) \*\*\*", timeout=5
    )
    core = server.wait_for_line(r"- HARAKIRI \[core (\d+)\] .*GET /sleep\?5 since (\d+)", timeout=5)
    assert abs(int(core.group(2)) - time.time()) < 30
    server.wait_for_line(
        rf"DAMN ! worker 1 \(pid: {old}\) died, killed by signal 9 :\( trying respawn \.\.\.", timeout=5
    )
    new = int(server.wait_for_line(RESPAWNED_RE, timeout=5).group(2))
    assert get_pid(server) == new != old
    assert get_pid(server, "/sleep?0.2") == new  # short requests are left alone


# --- touch-reload, daemonize, pidfile, vacuum ----------------------------------------


def test_touch_reload_reloads_with_new_workers(portico_server, tmp_path):
    trigger = tmp_path / "reload.trigger"
    trigger.write_text("")
    server = portico_server(
        "--wsgi-file", APP, "-p", "2", "--touch-reload", trigger, "--stats", "127.0.0.1:0"
    )
    master = server.proc.pid
    old = set(wait_ready(server, 2))
    assert "running a master process" in server.log()
    wait_master_sampled(server)
    assert "has been touched" not in server.log()  # nothing happens while the file is untouched
    mark = len(server.lines)
    later = time.time() + 10
    os.utime(trigger, (later, later))
    server.wait_for_line(rf"\*\*\* {re.escape(str(trigger))} has been touched\.\.\. grace them all !!! \*\*\*", timeout=5, start=mark)
    server.wait_for_line(r"binary reloading portico", timeout=10, start=mark)
    server.wait_for_line(r"\(inherited\)", timeout=10, start=mark)
    after = line_index(server, r"\(inherited\)", mark)
    new = set(wait_ready(server, 2, start=after))
    assert not new & old
    served = {get_pid(server) for _ in range(6)}
    assert served == new
    assert [int(m.group(1)) for m in matches(server, MASTER_RE)] == [master, master]
    assert wait_gone(old, 2)


def test_daemonize_pidfile_and_vacuum(run_portico, tmp_path):
    log = tmp_path / "portico.log"
    pidfile = tmp_path / "portico.pid"
    t = time.monotonic()
    proc = run_portico(
        "--http", "127.0.0.1:0", "--wsgi-file", APP, "--master", "-p", "1",
        "--daemonize", log, "--pidfile", pidfile, "--vacuum", timeout=10,
    )
    pid = None
    try:
        assert proc.returncode == 0, proc.stdout
        assert time.monotonic() - t < 5
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            pidfile.exists() and log.exists() and "ready to serve" in log.read_text()
        ):
            time.sleep(0.05)
        text = log.read_text()
        assert "ready to serve" in text, text
        pid = int(pidfile.read_text().strip())
        assert not gone(pid)
        assert f"spawned uWSGI master process (pid: {pid})" in text
        port = int(re.search(r"bound to TCP address 127\.0\.0\.1:(\d+)", text).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        worker = int(resp.read())
        conn.close()
        assert worker != pid
        # the master runs detached: not our child, in its own session
        assert os.getsid(pid) == pid
        os.kill(pid, signal.SIGTERM)
        assert wait_gone([pid, worker], 10), log.read_text()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and pidfile.exists():
            time.sleep(0.05)
        text = log.read_text()
        assert not pidfile.exists(), text
        assert f"VACUUM: {pidfile} removed." in text
        assert "goodbye" in text
    finally:
        if pid and not gone(pid):
            send_signal(pid, signal.SIGKILL)


def test_pidfile_without_vacuum_stays(portico_server, tmp_path):
    pidfile = tmp_path / "p.pid"
    pidfile2 = tmp_path / "p2.pid"
    server = portico_server("--wsgi-file", APP, "--master", "--pidfile", pidfile, "--pidfile2", pidfile2)
    assert int(pidfile.read_text()) == server.proc.pid
    assert int(pidfile2.read_text()) == server.proc.pid
    server.proc.terminate()
    assert server.proc.wait(10) == 0
    assert pidfile.exists() and pidfile2.exists()


# --- concurrency and fair accept ---------------------------------------------------


def concurrent(server, path, n):
    """Send n GETs at once; return (elapsed, [results])."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        try:
            results[i] = get(server, path, timeout=10)
        except Exception as e:  # noqa: BLE001
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(15)
    return time.monotonic() - t, results


def test_threads_serve_concurrently_and_idle_connections_hold_no_thread(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "1", "--threads", "4")
    worker = wait_ready(server, 1)[0]
    assert children(server.proc.pid) == [worker]
    assert "cores: 4" in server.log()

    elapsed, results = concurrent(server, "/sleep?1", 4)
    assert all(r == (200, str(worker)) for r in results), results
    assert elapsed < 1.8, f"4 requests on 4 threads took {elapsed:.2f} s"

    elapsed, results = concurrent(server, "/sleep?1", 8)
    assert all(r == (200, str(worker)) for r in results), results
    assert 1.9 < elapsed < 3.0, f"8 requests on 4 threads took {elapsed:.2f} s"

    # 10 idle connections: 5 that never sent a byte, 5 kept alive after a request
    idle = []
    try:
        for _ in range(5):
            idle.append(server.connect())
        for _ in range(5):
            s = server.connect()
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(str(worker).encode()):
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 200")
            idle.append(s)
        t = time.monotonic()
        assert get_pid(server) == worker
        assert time.monotonic() - t < 0.5
        elapsed, results = concurrent(server, "/sleep?1", 4)
        assert all(r == (200, str(worker)) for r in results), results
        assert elapsed < 1.8, f"with 10 idle connections, 4 requests took {elapsed:.2f} s"
    finally:
        for s in idle:
            s.close()


def test_idle_connections_do_not_block_prefork_workers(portico_server):
    """-p 2 --threads 2 (the accept path shared by several workers): 10 connections
    that never send a byte hold no thread: 4 sleeping requests still run at once."""
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2", "--threads", "2")
    workers = wait_ready(server, 2)
    idle = [server.connect() for _ in range(10)]
    try:
        time.sleep(0.2)
        t = time.monotonic()
        assert get_pid(server, timeout=3) in workers
        assert time.monotonic() - t < 0.5
        elapsed, results = concurrent(server, "/sleep?1", 4)
        assert all(r[0] == 200 and int(r[1]) in workers for r in results), results
        assert elapsed < 1.8, f"with 10 idle connections, 4 requests on 2x2 threads took {elapsed:.2f} s"
    finally:
        for s in idle:
            s.close()


def test_a_busy_worker_does_not_take_connections_it_cannot_serve(portico_server):
    """-p 2, one thread each: while one worker sleeps in a request, the other
    answers everything at once (uWSGI's workers only accept with a free core)."""
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    workers = wait_ready(server, 2)
    result = {}

    def slow():
        result["response"] = get(server, "/sleep?2.5", timeout=10)

    client = threading.Thread(target=slow)
    client.start()
    busy = wait_sleeping(server, 2.5)
    timings = []
    for _ in range(6):
        t = time.monotonic()
        pid = get_pid(server)
        timings.append((pid, round(time.monotonic() - t, 2)))
    client.join(10)
    assert int(result["response"][1]) == busy
    assert busy in workers
    idle = [p for p in workers if p != busy][0]
    assert all(elapsed < 0.5 for _, elapsed in timings), f"(pid, seconds) per request: {timings}"
    assert all(pid == idle for pid, _ in timings), f"(pid, seconds) per request: {timings}"


@pytest.mark.parametrize("processes, at_least", [(2, 15), (3, 12)])
def test_requests_spread_evenly_over_workers(portico_server, processes, at_least):
    """60 requests one after another, 2 ms apart: every worker serves at least
    `at_least`. Light sequential traffic is spread by the accept board's turn;
    a client that reconnects within microseconds of each answer is load, and
    there one worker rests while its sibling keeps up (accept_rest.rs), so
    the requests are paced as a light client's are."""
    server = portico_server("--wsgi-file", APP, "--master", "-p", str(processes))
    workers = wait_ready(server, processes)
    served = []
    for _ in range(60):
        served.append(get_pid(server))
        time.sleep(0.002)
    counts = {pid: served.count(pid) for pid in workers}
    assert set(served) == set(workers)
    assert all(n >= at_least for n in counts.values()), counts


# --- no master ---------------------------------------------------------------------


def test_without_master_dead_workers_stay_dead(portico_server):
    server = portico_server("--wsgi-file", APP, "-p", "2")
    workers = wait_ready(server, 2)
    served = {get_pid(server) for _ in range(10)}
    assert served == set(workers)
    victim, survivor = workers
    mark = len(server.lines)
    os.kill(victim, signal.SIGKILL)
    assert wait_gone([victim], 2)
    # the parent has reaped the worker and decided (a respawn would be logged right after)
    server.wait_for_line(rf"DAMN ! worker \d \(pid: {victim}\) died, killed by signal 9", timeout=5, start=mark)
    served = [get_pid(server) for _ in range(10)]
    assert set(served) == {survivor}
    assert "Respawned" not in server.log(), summary(server)
    assert children(server.proc.pid) == [survivor]
    assert server.proc.poll() is None
    server.proc.terminate()
    assert server.proc.wait(10) == 0
    assert wait_gone([survivor], 2)


# --- lazy-apps ---------------------------------------------------------------------


def test_lazy_apps_imports_in_each_worker(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2", "--lazy-apps")
    workers = wait_ready(server, 2)
    seen = {}
    for _ in range(10):
        status, body = get(server, "/import-pid")
        imported, pid = map(int, body.split())
        seen[pid] = imported
    assert set(seen) == set(workers)
    assert all(imported == pid for pid, imported in seen.items()), seen
    loaded = matches(server, r"WSGI app 0 \(mountpoint=''\) ready in \d+ seconds on pid (\d+)")
    assert sorted(int(m.group(1)) for m in loaded) == sorted(workers)


def test_without_lazy_apps_the_master_imports(portico_server):
    server = portico_server("--wsgi-file", APP, "--master", "-p", "2")
    workers = wait_ready(server, 2)
    master = server.proc.pid
    seen = {}
    for _ in range(10):
        status, body = get(server, "/import-pid")
        imported, pid = map(int, body.split())
        seen[pid] = imported
    assert set(seen) == set(workers)
    assert set(seen.values()) == {master}, seen
    loaded = matches(server, r"WSGI app 0 \(mountpoint=''\) ready in \d+ seconds on pid (\d+)")
    assert [int(m.group(1)) for m in loaded] == [master]


# --- privileges --------------------------------------------------------------------


def nobody_ids():
    import grp
    import pwd

    try:
        uid = pwd.getpwnam("nobody").pw_uid
        user = "nobody"
    except KeyError:
        uid, user = 65534, "65534"
    for name in ("nogroup", "nobody"):
        try:
            return user, uid, name, grp.getgrnam(name).gr_gid
        except KeyError:
            pass
    return user, uid, "65534", 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_gid_drops_the_group(portico_server):
    _, _, group, gid = nobody_ids()
    server = portico_server("--wsgi-file", APP, "--master", "-p", "1", "--gid", group)
    wait_ready(server, 1)
    assert get(server, "/ids") == (200, f"0 {gid}")
    assert f"setgid() to {gid}" in server.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_uid_and_gid_drop_privileges(portico_server):
    user, uid, group, gid = nobody_ids()
    # Portico (like uWSGI) drops privileges before it starts Python, so the
    # interpreter's files must be readable by that user.
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    probe = subprocess.run(["/bin/ls", stdlib], user=uid, group=gid, capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"uid {uid} cannot read the Python stdlib at {stdlib} (environment, not Portico)")
    server = portico_server("--wsgi-file", APP, "--master", "-p", "1", "--uid", user, "--gid", group)
    wait_ready(server, 1)
    assert get(server, "/ids") == (200, f"{uid} {gid}")
    log = server.log()
    assert f"setgid() to {gid}" in log and f"setuid() to {uid}" in log
    with open(f"/proc/{server.proc.pid}/status") as f:
        status = f.read()
    assert re.search(rf"^Uid:\s+{uid}\s", status, re.M), status


# --- the log -----------------------------------------------------------------------


def test_lifecycle_lines_from_several_processes_are_never_interleaved(portico_server):
    """Each lifecycle line is one write: 8 workers starting at once (three
    times: start-up and two reloads) never mix their lines."""
    server = portico_server("--wsgi-file", APP, "--master", "-p", "8")

    def wait_ready_text(count):
        deadline = time.monotonic() + 15
        while server.log().count("is ready to serve") < count:
            assert time.monotonic() < deadline, summary(server)
            time.sleep(0.02)

    wait_ready_text(8)
    for n in (2, 3):
        os.kill(server.proc.pid, signal.SIGHUP)
        wait_ready_text(8 * n)
    shapes = {
        "is ready to serve": r"\*\*\* portico worker \d+ is ready to serve \(pid: \d+\) \*\*\*",
        "spawned uWSGI worker": r"spawned uWSGI worker \d+ \(pid: \d+, cores: 1\)",
        "Gracefully killing worker": r"Gracefully killing worker \d+ \(pid: \d+\)\.\.\.",
        "buried after": r"worker \d+ buried after \d+ seconds",
    }
    bad = [
        line
        for line in list(server.lines)
        if any(key in line and not re.fullmatch(shape, line) for key, shape in shapes.items())
    ]
    assert not bad, "interleaved log lines:\n" + "\n".join(bad)
    assert len(matches(server, shapes["is ready to serve"])) == 24
    assert len(matches(server, shapes["spawned uWSGI worker"])) == 24
