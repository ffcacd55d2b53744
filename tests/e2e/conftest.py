"""Fixtures that start the real `portico` binary and talk to it.

`portico_server(*args)` starts `target/release/portico` (or $PORTICO_BIN) with
the given arguments plus `--http 127.0.0.1:0` unless the test passes its own
listener, waits for the "bound to TCP address" line, and returns a `Server`
with the chosen port, helpers to send raw bytes, and the captured log.
Every process started here is killed at the end of its test.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
EXAMPLES = ROOT / "examples"
BIN = Path(os.environ.get("PORTICO_BIN", ROOT / "target" / "release" / "portico"))
# The venv with the examples' dependencies (Flask, Django, web.py), made by scripts/test.sh.
EXAMPLES_VENV = Path(os.environ.get("PORTICO_EXAMPLES_VENV", ROOT / "target" / "examples-venv"))

# HOST may be empty (`:8000`, all interfaces, as uWSGI prints it), a name, an
# IPv4 address or a bracketed IPv6 address.
BOUND_RE = re.compile(r"bound to TCP address (\[[^\]]*\]|[^\s:]*):(\d+)")
# Where to connect to reach a listener bound to a wildcard address.
WILDCARD_CONNECT = {"": "127.0.0.1", "*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
START_TIMEOUT = 30.0


def venv_tool(name):
    """Path of the console script NAME (uwsgi, uwsgitop...) of the test venv: the one
    beside the Python running the tests (whichever venv that is: a worktree runs
    pytest with the main checkout's), else ROOT/target/test-venv/bin/NAME, else NAME
    on PATH; None if there is none."""
    for path in (
        Path(sys.executable).parent / name,
        ROOT / "target" / "test-venv" / "bin" / name,
        shutil.which(name),
    ):
        if path and os.access(path, os.X_OK):
            return Path(path)
    return None


def binary_env(extra=None):
    """The environment for a `portico` (or uWSGI) process started by a test: this
    process's, less VIRTUAL_ENV and every UWSGI_*/PORTICO_* variable (portico reads
    those as options, and PORTICO_BIN and the like are for this harness), plus
    `extra`, which is how a test sets such a variable on purpose."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UWSGI_", "PORTICO_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(extra or {})
    return env


class Server:
    """A running portico process with its log captured line by line."""

    def __init__(self, args, env=None, cwd=None, binary=None):
        self.args = [str(binary or BIN)] + [str(a) for a in args]
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=binary_env(env),
            cwd=cwd,
        )
        self.lines = []
        # True once the output ended (the process exited): no line comes after that.
        self._eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.bound = []  # every (host, port) the server bound, as logged, in log order
        self.addresses = []  # the same, wildcard hosts replaced by loopback (connectable)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for_line(self, pattern, timeout=10.0, start=0):
        """Wait until a log line (from index `start`) matches `pattern`; return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    m = regex.search(line)
                    if m:
                        return m
                remaining = deadline - time.monotonic()
                # (at the end of the output the reader thread may still be alive for a
                # moment and the process not yet reaped: the flag, not those, says so)
                if remaining <= 0 or self._eof:
                    raise AssertionError(
                        f"no log line matched {pattern!r}; log so far:\n" + "\n".join(self.lines)
                    )
                self._cond.wait(remaining)

    def wait_started(self, listeners=1):
        deadline = time.monotonic() + START_TIMEOUT
        while len(self.addresses) < listeners:
            with self._cond:
                # (host as logged, port) for every listener, in log order
                self.bound = [
                    (m.group(1).strip("[]"), int(m.group(2)))
                    for m in (BOUND_RE.search(l) for l in self.lines)
                    if m
                ]
                # the same, with wildcard hosts replaced by a loopback address to connect to
                self.addresses = [(WILDCARD_CONNECT.get(h, h), p) for h, p in self.bound]
                if len(self.addresses) >= listeners:
                    break
                if self._eof:
                    raise AssertionError(
                        f"portico exited with {self.exit_code()} before listening:\n"
                        + "\n".join(self.lines)
                    )
                if time.monotonic() > deadline:
                    raise AssertionError("portico did not start:\n" + "\n".join(self.lines))
                self._cond.wait(0.1)
        self.wait_for_line(r"ready to serve|serving", timeout=START_TIMEOUT)
        return self

    def exit_code(self):
        """The process's exit status, waiting a moment for it (None if it still runs)."""
        try:
            return self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return None

    @property
    def host(self):
        return self.addresses[0][0]

    @property
    def port(self):
        return self.addresses[0][1]

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def connect(self, timeout=10.0):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect((self.host, self.port))
        return sock

    def raw(self, data, timeout=10.0):
        """Send raw bytes, half-close nothing, read until the server closes; return all bytes."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return read_until_close(sock)

    def log(self):
        with self._cond:
            return "\n".join(self.lines)

    def stop(self):
        stop_process(self.proc)
        self._reader.join(5)


def stop_process(proc, sig=signal.SIGTERM, grace=10.0):
    """Stop a process we started, if it still runs: `sig`, then SIGKILL when it
    has not exited within `grace` seconds (and wait as long again)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


def wait_until(predicate, timeout=10.0, what="condition"):
    """Poll `predicate` every 50 ms until it is truthy and return its value; an
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read_until_close(sock):
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def has_listener(args):
    return any(a in ("--http", "--http-socket", "--socket", "-s") for a in map(str, args))


@pytest.fixture
def portico_server():
    """Factory: portico_server(*args, env=None, cwd=None, listeners=None, binary=None)
    -> started Server (`binary`: another portico than BIN, e.g. one pip installed)."""
    started = []

    def start(*args, env=None, cwd=None, listeners=None, wait=True, binary=None):
        args = list(args)
        if not has_listener(args):
            args = ["--http", "127.0.0.1:0"] + args
        server = Server(args, env=env, cwd=cwd, binary=binary)
        started.append(server)
        if wait:
            count = listeners or sum(
                1 for a in map(str, args) if a in ("--http", "--http-socket", "--socket", "-s")
            )
            server.wait_started(max(count, 1))
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def app_log(tmp_path_factory):
    """An empty file, one per test module, that the module's apps append to (its path
    given to them with `--env VAR=PATH`) and its tests read."""
    path = tmp_path_factory.mktemp("app-log") / "app.log"
    path.write_text("")
    return path


@pytest.fixture
def run_portico():
    """Run portico to completion (for exit-code tests): run_portico(*args) -> CompletedProcess."""

    def run(*args, env=None, cwd=None, timeout=60):
        return subprocess.run(
            [str(BIN)] + [str(a) for a in args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=binary_env(env),
            cwd=cwd,
            timeout=timeout,
        )

    return run


@pytest.fixture
def http():
    """A `requests` session that ignores proxy settings from the environment."""
    import requests

    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture(scope="session")
def examples_venv():
    """The venv holding the examples' dependencies; FAILS (never skips) if it is missing."""
    python = EXAMPLES_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"the examples venv is missing: {EXAMPLES_VENV} has no bin/python. "
            "Run `bash scripts/test.sh`, or make it by hand with "
            f"`python3 -m venv {EXAMPLES_VENV} && "
            f"{EXAMPLES_VENV}/bin/pip install -r {EXAMPLES / 'requirements.txt'}`, "
            "or point PORTICO_EXAMPLES_VENV at such a venv.",
            pytrace=False,
        )
    return EXAMPLES_VENV
