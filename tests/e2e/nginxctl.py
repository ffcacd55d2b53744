"""Start and stop a real nginx (the Debian package's /usr/sbin/nginx) for the
end-to-end tests, with its own prefix directory, config and free loopback
ports; and start the portico processes it sits in front of.

    with public_dir() as d, Nginx({"main": "location / { ... }"}) as ngx:
        ngx.url("main")

nginx runs `daemon off; master_process on; worker_processes 1;` as root with
workers as `nobody` (group `nogroup` on Debian), logs to stderr (captured in
DIR/nginx.log), keeps its pid and temp files under DIR and never touches port
80. It is stopped with SIGQUIT, then SIGKILL (master and workers), at exit of
the `with` block and, as a backstop, at interpreter exit.

A missing nginx FAILS the test (never skips): scripts/test.sh installs it.
So does a missing uWSGI for `real_uwsgi()` (tests/requirements.txt installs it
into the test venv that scripts/test.sh runs pytest with).
"""

import atexit
import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import stop_process, venv_tool
from ports import free_port, port_taken

UWSGI_PARAMS = Path("/etc/nginx/uwsgi_params")
START_TIMEOUT = 10.0

_running = set()


def nginx_binary():
    """Path of the nginx binary (Debian's /usr/sbin/nginx first); fails the test if there is none."""
    path = "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else shutil.which("nginx")
    if path is None:
        pytest.fail(
            "nginx is not installed (no `nginx` on PATH, no /usr/sbin/nginx). "
            "scripts/test.sh installs it: apt-get install -y nginx",
            pytrace=False,
        )
    return path


def uwsgi_binary():
    """Path of the real uWSGI: $PORTICO_TEST_UWSGI, else the `uwsgi` beside the Python
    running the tests (the test venv), else target/test-venv/bin/uwsgi, else PATH;
    fails the test if there is none."""
    named = os.environ.get("PORTICO_TEST_UWSGI")
    if named:
        path = named if os.access(named, os.X_OK) else None
    else:
        path = venv_tool("uwsgi")
    if path is None:
        pytest.fail(
            f"no uWSGI binary ({named or 'no uwsgi in the test venv or on PATH'}). "
            "scripts/test.sh installs it into target/test-venv from tests/requirements.txt; "
            "or set PORTICO_TEST_UWSGI",
            pytrace=False,
        )
    return str(path)


@contextlib.contextmanager
def real_uwsgi(app, sock_dir, *extra):
    """A real uWSGI serving `app` (a --wsgi-file) on a free loopback TCP port and on the
    unix socket SOCK_DIR/uwsgi.sock (mode 666: nginx's and Portico's workers run as
    nobody), one process; yields {"tcp": "127.0.0.1:PORT", "unix": PATH, "proc": Popen,
    "log": PATH}. Its output goes to SOCK_DIR/uwsgi.log. Killed at the end."""
    binary = uwsgi_binary()
    sock = Path(sock_dir) / "uwsgi.sock"
    log_path = Path(sock_dir) / "uwsgi.log"
    for attempt in range(3):
        port = free_port()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [binary, "--socket", f"127.0.0.1:{port}", "--socket", str(sock),
                 "--chmod-socket=666", "--wsgi-file", str(app), "--processes", "1",
                 "--die-on-term", *extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        up = wait_ports(proc, [port], START_TIMEOUT)
        while up and not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if up and sock.exists():
            break
        proc.kill()
        proc.wait(5)
        text = log_path.read_text(errors="replace")
        if not port_taken(text) or attempt == 2:
            raise AssertionError(f"uwsgi did not start:\n{text}")
    try:
        yield {"tcp": f"127.0.0.1:{port}", "unix": str(sock), "proc": proc, "log": log_path}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def uwsgi_params():
    """The Debian uwsgi_params file's text; fails the test if it is missing."""
    if not UWSGI_PARAMS.is_file():
        pytest.fail(f"{UWSGI_PARAMS} is missing (it comes with Debian's nginx-common)", pytrace=False)
    return UWSGI_PARAMS.read_text()


def worker_user():
    """(user, group) for nginx workers: nobody, and nogroup where it exists."""
    user = "nobody"
    try:
        grp.getgrnam("nogroup")
        group = "nogroup"
    except KeyError:
        group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    return user, group


def wait_ports(proc, ports, timeout):
    """True once every port accepts a connection on 127.0.0.1 or [::1]; False if `proc`
    exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    pending = set(ports)
    while pending and time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        for port in list(pending):
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    s.settimeout(1.0)
                    if s.connect_ex((host, port)) == 0:
                        pending.discard(port)
                        break
        if pending:
            time.sleep(0.02)
    return not pending and proc.poll() is None


@contextlib.contextmanager
def public_dir(prefix="portico-uw-"):
    """A fresh directory under /tmp with mode 0755 (nginx workers, running as
    nobody, must be able to reach the unix sockets in it); removed afterwards."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _children(pid):
    """Pids whose parent is `pid` (nginx workers of a master we started)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def stop_master(proc, workers=()):
    """Stop an nginx master we started: SIGQUIT (graceful), SIGKILL after 5 s,
    then SIGKILL to any of its workers still alive."""
    if proc is None:
        return
    workers = set(workers) | set(_children(proc.pid))
    stop_process(proc, signal.SIGQUIT, 5)
    for pid in workers:
        with contextlib.suppress(OSError):
            # only if it is still an nginx process (pids are not reused this fast, but be sure)
            with open(f"/proc/{pid}/comm") as f:
                if "nginx" in f.read():
                    os.kill(pid, signal.SIGKILL)


def main_preamble(pid_path):
    """The main-context lines every test nginx gets: workers as nobody, no daemon, one
    worker, errors to stderr, its own pid file, and an events block."""
    user, group = worker_user()
    return (
        f"user {user} {group};\n"
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 1;\n"
        "error_log stderr;\n"
        f"pid {pid_path};\n"
        "events { worker_connections 256; }\n"
    )


def temp_paths(state_dir):
    """http-context lines that keep nginx's temp files under `state_dir` (Debian's build
    points them at /var/lib/nginx, which `-p` does not move)."""
    d = state_dir
    return (
        f"client_body_temp_path {d}/client_body;\n"
        f"proxy_temp_path {d}/proxy;\n"
        f"fastcgi_temp_path {d}/fastcgi;\n"
        f"uwsgi_temp_path {d}/uwsgi;\n"
        f"scgi_temp_path {d}/scgi;\n"
    )


class NginxMaster:
    """The lifecycle of one nginx master started by a test: a state directory
    (config, pid, temp files, log) under /tmp, free loopback ports picked anew on
    each start attempt (a port taken meanwhile is retried), `-p PREFIX -e stderr`,
    and a stop that never leaves a worker behind.

    Subclasses say which ports they need (`port_names()`) and write the config
    (`config_text()`, using `self.ports` and `self.dir`)."""

    def __init__(self, prefix=None, dir_prefix="portico-nginx-"):
        self.binary = nginx_binary()
        self.dir = Path(tempfile.mkdtemp(prefix=dir_prefix, dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.prefix = Path(prefix) if prefix else self.dir
        self.conf_path = self.dir / "nginx.conf"
        self.ports = {}
        self.proc = None
        self.workers = []
        self.log_path = self.dir / "nginx.log"

    # --- what subclasses provide ------------------------------------------------------

    def port_names(self):
        raise NotImplementedError

    def config_text(self):
        raise NotImplementedError

    # --- lifecycle --------------------------------------------------------------------

    def write_config(self):
        self.conf_path.write_text(self.config_text())

    def start(self):
        for attempt in range(3):
            self.ports = {name: free_port() for name in self.port_names()}
            self.write_config()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "-p", f"{self.prefix}/", "-c", str(self.conf_path), "-e", "stderr"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            _running.add(self)
            if self._wait_listening():
                self.workers = _children(self.proc.pid)
                return self
            self.stop()
            if not port_taken(self.log()) or attempt == 2:
                raise AssertionError(
                    "nginx did not start; config:\n" + self.conf_path.read_text()
                    + "\nlog:\n" + self.log()
                )
        raise AssertionError("unreachable")

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        if not wait_ports(self.proc, self.ports.values(), START_TIMEOUT):
            return False
        # the workers (that serve) must exist too, not only the master's listening sockets
        while time.monotonic() < deadline and not _children(self.proc.pid):
            time.sleep(0.02)
        return self.proc.poll() is None

    def stop(self):
        """SIGQUIT (graceful), then SIGKILL to the master and any worker left."""
        _running.discard(self)
        stop_master(self.proc, self.workers)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class Nginx(NginxMaster):
    """One nginx master with one `server` block per entry of `servers`
    (name -> the block's body; the `listen` line is added, on a free port)."""

    def __init__(self, servers, http_extra=""):
        super().__init__()
        self.servers = dict(servers)
        self.http_extra = http_extra
        uwsgi_params()

    def port_names(self):
        return list(self.servers)

    def config_text(self):
        blocks = []
        for name, body in self.servers.items():
            blocks.append(
                f"    server {{  # {name}\n"
                f"        listen 127.0.0.1:{self.ports[name]};\n"
                f"        server_name localhost;\n"
                + textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
                + "\n    }\n"
            )
        return (
            main_preamble(self.dir / "nginx.pid")
            + "http {\n"
            + "    access_log off;\n"
            + textwrap.indent(temp_paths(self.dir), "    ")
            + textwrap.indent(textwrap.dedent(self.http_extra).strip(), "    ")
            + "\n"
            + "".join(blocks)
            + "}\n"
        )

    def url(self, name, path="/"):
        return f"http://127.0.0.1:{self.ports[name]}{path}"


@atexit.register
def _stop_all():
    for ngx in list(_running):
        ngx.stop()


# --- the portico processes behind nginx ------------------------------------------------

BOUND_ANY_RE = re.compile(r"(uwsgi|http) socket (\d+) bound to (TCP|UNIX) address (\S+) fd \d+")


def listeners(server):
    """[(kind, family, address)] from the log: kind 'uwsgi'|'http', family 'TCP'|'UNIX',
    address (host, port) for TCP, a path for UNIX."""
    out = []
    for line in list(server.lines):
        m = BOUND_ANY_RE.search(line)
        if not m:
            continue
        kind, _, family, addr = m.groups()
        if family == "TCP":
            host, _, port = addr.rpartition(":")
            out.append((kind, family, (host.strip("[]") or "127.0.0.1", int(port))))
        else:
            out.append((kind, family, addr))
    return out


def address(server, kind, family="TCP", index=0):
    found = [a for k, f, a in listeners(server) if k == kind and f == family]
    assert len(found) > index, f"no {kind} {family} listener in the log:\n{server.log()}"
    return found[index]


@contextlib.contextmanager
def portico(*args, env=None, cwd=None):
    """Start portico with exactly `args` (no listener added), wait for `ready to serve`,
    stop it at the end."""
    from conftest import Server

    server = Server([str(a) for a in args], env=env, cwd=cwd)
    try:
        server.wait_for_line(r"ready to serve", timeout=30)
        yield server
    finally:
        server.stop()
