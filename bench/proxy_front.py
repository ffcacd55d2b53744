#!/usr/bin/env python3
"""The proxy front's CPU and system calls per request, Portico or nginx, on
the setup of the proxy-ka/proxy-noka/proxy-lc scenarios, one front at a time.

    bench/proxy_front.py ka|noka|lc portico|nginx [SECONDS] [BIN]

Starts the backends (`ka`, `noka`: one Granian with two workers; `lc`: three
with one worker each, `least_conn`) from bench/.venv, writes the bench's
nginx.conf (two front workers; `keepalive 32` with `proxy_http_version 1.1`
and `Connection ""` for `ka` and `lc`, `proxy_http_version 1.0` for `noka`),
runs it with nginx or `BIN -c` (default target/release/portico), warms up
1 s and runs `wrk -t1 -c64` for SECONDS (default 5). Prints req/s, the
front's user and system CPU per request and context switches per request
(every thread of the front's tree, /proc), the backends' CPU, and with
`perf stat` the events `EVENTS` names per request (default: every system
call and the context switches; `PERF=0`: none).

`STRACE=1`: instead, `strace -c` of the front's workers over a 2 s
`wrk -c4` run, system calls per request. `PERFREC=1`: also a `perf record
-g` of the workers into /tmp/perf.FRONT.MODE.data.

Run it alternately for both fronts: the front's own CPU is what differs, and
one round of either is as noisy as the machine. docs/design-notes.md §15
and §17 have what it measured.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.append(os.path.join(ROOT, "tests", "e2e"))
from ports import free_port  # noqa: E402  (the e2e tests' port helper)

VENV = os.path.join(ROOT, "bench", ".venv")
APPS = os.path.join(ROOT, "bench", "apps")
LOOPBACK = "127.0.0.1"
MODES = ("ka", "noka", "lc")
FRONTS = ("portico", "nginx")


def wait_open(port):
    for _ in range(300):
        try:
            socket.create_connection((LOOPBACK, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"proxy_front: port {port} never opened")


def process_tree(root):
    """`root` and every process below it, from /proc."""
    tree = {root}
    grew = True
    while grew:
        grew = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in tree:
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if parent in tree:
                tree.add(int(entry))
                grew = True
    return tree


def cpu_of(pids):
    """(user s, system s, context switches) of every thread of `pids`."""
    user = system = switches = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                user += int(fields[11])
                system += int(fields[12])
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    status = f.read()
                for key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                    switches += int(re.search(rf"^{key}:\s+(\d+)", status, re.M).group(1))
        except OSError:
            pass  # a thread that ended between the listing and the read
    hz = os.sysconf("SC_CLK_TCK")
    return user / hz, system / hz, switches


def site_conf(mode, workers, port, backends, tmp):
    keepalive = mode in ("ka", "lc")
    upstream = ["        least_conn;"] if mode == "lc" else []
    upstream += [f"        server {LOOPBACK}:{p};" for p in backends]
    if keepalive:
        upstream.append("        keepalive 32;")
        location = '            proxy_http_version 1.1;\n            proxy_set_header Connection "";\n'
    else:
        location = "            proxy_http_version 1.0;\n"
    temp = "".join(f"    {k}_temp_path {tmp}/{k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    upstream_lines = "\n".join(upstream)
    return f"""daemon off;
master_process on;
worker_processes {workers};
error_log stderr warn;
pid {tmp}/run.pid;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
{temp}    upstream app {{
{upstream_lines}
    }}
    server {{
        listen {LOOPBACK}:{port};
        location / {{
            proxy_pass http://app;
{location}        }}
    }}
}}
"""


def requests_of(wrk_output):
    return int(re.search(r"(\d+) requests in", wrk_output).group(1))


def strace_counts(front, mode, workers_pids, url):
    """System calls per request of the front's workers, `strace -c`."""
    out = f"/tmp/strace.{front}.{mode}"
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", ",".join(map(str, workers_pids))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    load = subprocess.run(["wrk", "-t1", "-c4", "-d2", url], capture_output=True, text=True).stdout
    tracer.send_signal(signal.SIGINT)
    tracer.wait()
    n = requests_of(load)
    print(f"{front} {mode}: {n} requests")
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[3].isdigit():
                print(f"   {parts[-1]:16s} {int(parts[3]) / n:6.2f}/req")


def measure(front, mode, seconds, workers_pids, front_pids, backend_pids, url, tmp):
    perf = record = None
    if os.environ.get("PERF", "1") == "1":
        events = os.environ.get("EVENTS", "raw_syscalls:sys_enter,context-switches")
        perf = subprocess.Popen(["perf", "stat", "-x,", "-o", f"{tmp}/perf.txt", "-e", events,
                                 "-p", ",".join(map(str, workers_pids))])
    if os.environ.get("PERFREC") == "1":
        record = subprocess.Popen(["perf", "record", "-F", "4999", "-g", "-o",
                                   f"/tmp/perf.{front}.{mode}.data",
                                   "-p", ",".join(map(str, workers_pids))],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if perf or record:
        time.sleep(0.3)
    u0, s0, c0 = cpu_of(front_pids)
    b0 = cpu_of(backend_pids)
    load = subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}", url],
                          capture_output=True, text=True).stdout
    u1, s1, c1 = cpu_of(front_pids)
    b1 = cpu_of(backend_pids)
    for tool in (perf, record):
        if tool:
            tool.send_signal(signal.SIGINT)
            tool.wait()
    n = requests_of(load)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", load).group(1))
    us = lambda seconds_: 1e6 * seconds_ / n  # noqa: E731
    print(f"{front:8s} {mode:5s} req/s {rps:9.0f}  front user {us(u1 - u0):5.2f} "
          f"sys {us(s1 - s0):6.2f} = {us(u1 - u0 + s1 - s0):6.2f} us  cs {(c1 - c0) / n:5.2f}  "
          f"backends {us(b1[0] - b0[0] + b1[1] - b0[1]):6.2f} us")
    if perf:
        with open(f"{tmp}/perf.txt") as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                    print(f"    {parts[2]:28s} {float(parts[0]) / n:10.2f} /req")


def stop(proc, sig):
    proc.send_signal(sig)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in MODES or sys.argv[2] not in FRONTS:
        raise SystemExit(__doc__)
    mode, front = sys.argv[1], sys.argv[2]
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    binary = sys.argv[4] if len(sys.argv) > 4 else os.path.join(ROOT, "target", "release", "portico")
    workers = int(os.environ.get("WORKERS", "2"))
    backends = [free_port() for _ in range(3 if mode == "lc" else 1)]
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="portico-proxy-front-")
    os.chmod(tmp, 0o755)  # nginx's workers read the conf's includes as nobody
    granians = [subprocess.Popen(
        [f"{VENV}/bin/granian", "--interface", "wsgi", "--host", LOOPBACK, "--port", str(p),
         "--workers", "1" if mode == "lc" else "2", "--blocking-threads", "1",
         "--no-access-log", "--working-dir", APPS, "hello:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in backends]
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(site_conf(mode, workers, port, backends, tmp))
    argv = ["nginx", "-p", tmp, "-c", conf] if front == "nginx" else [binary, "-c", conf]
    with open(os.path.join(tmp, "front.err"), "w") as err:
        front_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    try:
        for p in backends + [port]:
            wait_open(p)
        time.sleep(0.5)
        url = f"http://{LOOPBACK}:{port}/"
        subprocess.run(["wrk", "-t1", "-c64", "-d1", url], capture_output=True)
        front_pids = process_tree(front_proc.pid)
        workers_pids = sorted(front_pids - {front_proc.pid}) or [front_proc.pid]
        if os.environ.get("STRACE") == "1":
            strace_counts(front, mode, workers_pids, url)
            return
        backend_pids = set().union(*(process_tree(g.pid) for g in granians))
        measure(front, mode, seconds, workers_pids, front_pids, backend_pids, url, tmp)
    finally:
        stop(front_proc, signal.SIGQUIT if front == "nginx" else signal.SIGINT)
        for g in granians:
            stop(g, signal.SIGINT)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
