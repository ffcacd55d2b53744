"""Log rotation as nginx does it: `portico -s reopen -c CONF`, or SIGUSR1 to the
pid in the pid file (what logrotate configs written for nginx send), makes a
running `portico -c` reopen its log files: the master's own (`error_log FILE`),
the workers' output (the same file) and the workers' `access_log` files.

The test renames both files as logrotate does, signals, makes requests, and
checks that the new files were created and got the new lines while the
renamed ones keep the old ones only; with workers as root, and as `user
nobody` in a directory only root can create files in (the master creates
the files and gives them to the workers' user, as nginx's master does). Without `-c`, SIGUSR1 keeps uWSGI's
meaning (the request counters; test_process_model.py).

Same auto-skip rule as test_nginx_diff.py (nginx_diff.live_mark()).
"""

import os
import pwd
import signal
import subprocess
import time

import pytest

import nginx_diff
from conftest import BIN, stop_process, wait_until
from nginxctl import public_dir, wait_ports, worker_user
from ports import free_port

pytestmark = nginx_diff.live_mark()

# How long a step may take: generous, as a machine busy with the whole suite
# can hold a worker back for seconds; every wait ends when its condition holds.
WAIT = 15.0


def config(d, port, user):
    return (
        (f"user {user[0]} {user[1]};\n" if user else "")
        + "worker_processes 2;\n"
        f"error_log {d}/error.log;\n"
        f"pid {d}/portico.pid;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"    access_log {d}/access.log;\n"
        "    server {\n"
        f"        listen 127.0.0.1:{port};\n"
        "        location / { return 200 \"ok\\n\"; }\n"
        "    }\n"
        "}\n"
    )


def read(path):
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for(predicate, what, d):
    """wait_until with this module's WAIT; a failure shows every log file in
    `d` (which process wrote what where)."""
    try:
        wait_until(predicate, timeout=WAIT, what=what)
    except AssertionError as e:
        logs = "".join(f"\n--- {p.name}:\n{read(p)}" for p in sorted(d.glob("*.log*")))
        raise AssertionError(f"{e}{logs}") from None


def get(port, target):
    a = nginx_diff.fetch_port(port, "GET", target, timeout=5.0)
    assert a.status == 200 and a.body == b"ok\n", a
    return a


def served_into(port, path, tag):
    """Request `/TAG?n=N` until a line of it shows in `path` (a worker may reopen a
    moment after the signal: a request it served before that went to the old file)."""
    n = 0

    def logged():
        nonlocal n
        n += 1
        get(port, f"/{tag}?n={n}")
        time.sleep(0.05)
        return f"GET /{tag}?n=" in read(path)

    wait_for(logged, f"a /{tag} line in {path}", path.parent)


@pytest.fixture(params=["root", "user-nobody"])
def site(request):
    """`portico -c` with both logs in a root-owned directory; workers as root, or as
    nobody (`user`), who cannot create files there: the master creates the files
    and gives them to the workers' user, as nginx's master does."""
    user = worker_user() if request.param == "user-nobody" else None
    with public_dir("portico-reopen-") as d:
        port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(config(d, port, user))
        with open(d / "stdout.log", "wb") as out:
            proc = subprocess.Popen([str(BIN), "-c", str(conf)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d)
        try:
            assert wait_ports(proc, [port], 15.0), read(d / "stdout.log") + read(d / "error.log")
            yield d, conf, port, proc, user
        finally:
            stop_process(proc)


def rotate(d, suffix):
    """Rename both logs as logrotate does (the processes keep writing to the old
    inodes until they reopen)."""
    for name in ("access.log", "error.log"):
        os.rename(d / name, d / f"{name}.{suffix}")


def test_reopen_moves_access_and_error_logs_to_new_files(site):
    d, conf, port, proc, user = site
    access, error = d / "access.log", d / "error.log"
    get(port, "/first")
    wait_for(lambda: "GET /first HTTP/1.1" in read(access), "the /first access line", d)
    assert "ready to serve" in read(error), read(d / "stdout.log")

    # 1. `portico -s reopen -c CONF`
    rotate(d, 1)
    r = subprocess.run([str(BIN), "-s", "reopen", "-c", str(conf)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    assert r.returncode == 0, r.stdout
    served_into(port, access, "second")
    wait_for(lambda: read(error).count("reopened its logs") == 2, "both workers' reopen lines", d)
    assert "reopening logs" in read(error)
    line = next(l for l in read(access).splitlines() if "/second" in l)
    assert line.startswith("127.0.0.1 - - [") and '" 200 3 "-" "' in line, line
    old_access, old_error = read(d / "access.log.1"), read(d / "error.log.1")
    assert "/first" in old_access and "/first" not in read(access)
    assert "ready to serve" in old_error and "ready to serve" not in read(error)
    assert "reopening logs" not in old_error
    assert "failed" not in read(error) + old_error, read(error) + old_error
    if user:
        # the master made the new files and gave them to the workers' user
        uid = pwd.getpwnam(user[0]).pw_uid
        assert access.stat().st_uid == uid and error.stat().st_uid == uid

    # 2. SIGUSR1 to the pid in the pid file, as logrotate's postrotate does
    rotate(d, 2)
    pid = int((d / "portico.pid").read_text().strip())
    assert pid == proc.pid
    os.kill(pid, signal.SIGUSR1)
    served_into(port, access, "third")
    wait_for(lambda: read(error).count("reopened its logs") == 2, "both workers' reopen lines", d)
    assert "/second" in read(d / "access.log.2") and "/second" not in read(access)
    assert proc.poll() is None
