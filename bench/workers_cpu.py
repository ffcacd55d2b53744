#!/usr/bin/env python3
"""Server CPU, context switches and req/s per request for one Portico binary
with N workers (the hello app), to compare 1 and 2 workers quickly.

    bench/workers_cpu.py BIN WORKERS hello|close|uwsgi|flask [SECONDS] [perf]

Runs `wrk -t1 -c64` (with `Connection: close` for `close`; `flask`: GET
/json of bench/apps/flask_app.py, keep-alive, with the virtualenv
`BENCH_VENV` names, default bench/.venv; `BENCH_APP` another file) after a 1 s warm-up; CPU is utime+stime of every thread of the server tree (/proc)
over the requests completed, context switches the voluntary+involuntary
counts of the same threads. `uwsgi` serves the app on `--socket` behind
an nginx (`uwsgi_pass`, two nginx workers, bench/servers.py's
uwsgi-nginx row); BIN may then be a uWSGI binary (its name ends in
`uwsgi`: the row's other side, `--master`). The line then also gives
nginx's CPU per request and the machine's idle share over the run
(/proc/stat), which says whether the cores waited. With `perf`, `perf stat --per-thread` counts
the accept/epoll/kill/getsockopt system calls into /tmp/workers_cpu.perf.N.
The server inherits the environment: `PORTICO_REST_QUEUE=off` runs two
workers without resting (accept_rest.rs), for the other side of a pair.
docs/design-notes.md §2 (fifth and sixth passes) has what it measured.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from ports import free_port  # noqa: E402  (the e2e tests' port helper: no pick-then-bind race)

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")
SYSCALLS = "accept4,epoll_wait,epoll_ctl,futex,kill,read,openat,getsockopt,poll"


def main():
    bin_, workers, mode = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    dur = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    perf_on = len(sys.argv) > 5 and sys.argv[5] == "perf"
    port = free_port()
    listen = "--socket" if mode == "uwsgi" else "--http"
    extra = ["--master", "--need-app", "--listen", "1024"] if bin_.endswith("uwsgi") else []
    app = ["--wsgi-file", os.path.join(APPS, "hello.py")]
    if mode == "flask":
        venv = os.environ.get("BENCH_VENV", os.path.join(APPS, "..", ".venv"))
        app_file = os.environ.get("BENCH_APP", os.path.join(APPS, "flask_app.py"))
        app = ["--wsgi-file", app_file, "--virtualenv", venv]
    p = subprocess.Popen([bin_, listen, f"127.0.0.1:{port}", *app, "--processes", workers,
                          "--disable-logging", *extra, *os.environ.get("XARGS", "").split()],
                         cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    front = None
    try:
        wait_for(port)
        if mode == "uwsgi":
            front, port = nginx_front(port)
            wait_for(port)
        time.sleep(0.5)
        run(p, port, workers, mode, dur, perf_on, front)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait()
        if front:
            front.send_signal(signal.SIGTERM)
            front.wait()
            shutil.rmtree(front.prefix, ignore_errors=True)


def wait_for(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)


def nginx_front(backend_port):
    """An nginx with two workers passing every request to the backend over
    the uwsgi protocol (bench/servers.py nginx_uwsgi_pass's block)."""
    prefix = tempfile.mkdtemp(prefix="workers_cpu-nginx-")
    os.makedirs(os.path.join(prefix, "logs"))
    port = free_port()
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process on;
worker_processes 2;
error_log stderr warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    uwsgi_temp_path {prefix}/uwsgi;
    client_body_temp_path {prefix}/client_body;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include /etc/nginx/uwsgi_params;
            uwsgi_pass 127.0.0.1:{backend_port};
        }}
    }}
}}
""")
    nginx = "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else "nginx"
    proc = subprocess.Popen([nginx, "-p", prefix, "-c", conf, "-e", "stderr"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.prefix = prefix
    return proc, port


def machine_idle():
    """(idle+iowait ticks, all ticks) of every CPU, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def tree(p):
    out = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                         text=True).stdout.split()
    return [p.pid] + [int(x) for x in out]


def sample(p):
    """(cpu ticks, user ticks, context switches) of every thread of the tree."""
    cpu = user = cs = 0
    for pid in tree(p):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    st = f.read()
                fields = st[st.rindex(")") + 2:].split()
                user += int(fields[11])
                cpu += int(fields[11]) + int(fields[12])
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    cs += sum(int(m) for m in re.findall(r"ctxt_switches:\s+(\d+)", f.read()))
        except FileNotFoundError:
            pass
    return cpu, user, cs


def run(p, port, workers, mode, dur, perf_on, front=None):
    url = f"http://127.0.0.1:{port}/" + ("json" if mode == "flask" else "")
    hdr = ["-H", "Connection: close"] if mode == "close" else []
    subprocess.run(["wrk", "-t1", "-c64", "-d1", *hdr, url], capture_output=True)
    perf = None
    if perf_on:
        events = ",".join(["task-clock,context-switches,cpu-migrations"]
                          + [f"syscalls:sys_enter_{c}" for c in SYSCALLS.split(",")])
        perf = subprocess.Popen(["perf", "stat", "--per-thread", "-e", events, "-o",
                                 f"/tmp/workers_cpu.perf.{workers}", "-p",
                                 ",".join(str(t) for t in tree(p))])
        time.sleep(0.3)
    c0, u0, x0 = sample(p)
    f0 = sample(front) if front else (0, 0, 0)
    i0, t0 = machine_idle()
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{dur}", *hdr, url],
                         capture_output=True, text=True).stdout
    i1, t1 = machine_idle()
    c1, u1, x1 = sample(p)
    f1 = sample(front) if front else (0, 0, 0)
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    m = re.search(r"(\d+) requests in", out)
    r = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or not r:
        sys.exit(f"wrk said: {out}")
    n = int(m.group(1))
    tick = os.sysconf("SC_CLK_TCK")
    print(f"workers={workers} {mode}: {float(r.group(1)):.0f} req/s  "
          f"{1e6 * (c1 - c0) / tick / n:.1f} us/req (user {1e6 * (u1 - u0) / tick / n:.1f})  "
          f"{(x1 - x0) / n:.2f} cs/req  n={n} load={os.getloadavg()[0]:.1f}"
          + (f"  nginx {1e6 * (f1[0] - f0[0]) / tick / n:.1f} us/req "
             f"{(f1[2] - f0[2]) / n:.2f} cs/req" if front else "")
          + f"  idle {100 * (i1 - i0) / max(1, t1 - t0):.0f}%")


if __name__ == "__main__":
    main()
