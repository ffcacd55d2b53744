#!/usr/bin/env python3
"""The proxy front's CPU and system calls per request, Portico or nginx, on
the setup of the proxy-ka/proxy-noka/proxy-lc scenarios, one front at a time.

    bench/proxy_front.py ka|noka|lc portico|nginx [SECONDS] [BIN]

Starts the scenario's backends and writes its nginx.conf with bench/servers.py's
own builders (`ka`, `noka`: one Granian with WORKERS workers, default 2;
`lc`: three with one worker each, `least_conn`; WORKERS front workers),
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
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(BENCH_DIR, ".venv")
# servers.py finds Granian beside the running Python: run in the bench's venv
if os.path.realpath(sys.prefix) != os.path.realpath(VENV) and os.path.exists(VENV):
    os.execv(os.path.join(VENV, "bin", "python"), [os.path.join(VENV, "bin", "python"), *sys.argv])

import servers as S  # noqa: E402
from procs import LOOPBACK, _thread_switches, tree_pids, wait_ready  # noqa: E402

ROOT = os.path.dirname(BENCH_DIR)
MODES = ("ka", "noka", "lc")
FRONTS = ("portico", "nginx")
HZ = os.sysconf("SC_CLK_TCK")


def cpu_of(pids):
    """(user s, system s, context switches) of every thread of `pids`: the
    bench's TreeUsage, with user and system time kept apart."""
    user = system = switches = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended between the listing and the read
        user += int(fields[11])
        system += int(fields[12])
        switches += sum(_thread_switches(pid).values())
    return user / HZ, system / HZ, switches


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


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in MODES or sys.argv[2] not in FRONTS:
        raise SystemExit(__doc__)
    mode, front = sys.argv[1], sys.argv[2]
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    binary = sys.argv[4] if len(sys.argv) > 4 else os.path.join(ROOT, "target", "release", "portico")
    tmp = tempfile.mkdtemp(prefix="portico-proxy-front-")
    ctx = S.Ctx(int(os.environ.get("WORKERS", "2")), tmp, tmp, os.path.abspath(binary))
    # the proxy rows' backends and config, as bench/scenarios.py builds them
    if mode == "lc":
        backends = [S.granian_backend(ctx, f"granian-{i}", 1) for i in (1, 2, 3)]
    else:
        backends = [S.granian_backend(ctx, "granian", ctx.workers)]
    conf, d, port = S.proxy_site_conf(ctx, f"proxy-{mode}", [p for _, p in backends],
                                      keepalive=mode != "noka",
                                      balancer="least_conn" if mode == "lc" else None)
    front_server = (S.nginx_conf_server(ctx, "nginx", conf, d) if front == "nginx"
                    else S.portico_conf_server(ctx, conf))
    started = []
    try:
        for srv, p in backends:
            started.append(srv.start())
            wait_ready([srv], f"http://{LOOPBACK}:{p}/", timeout=60.0)
        url = f"http://{LOOPBACK}:{port}/"
        started.append(front_server.start())
        wait_ready([front_server], url, timeout=60.0)
        subprocess.run(["wrk", "-t1", "-c64", "-d1", url], capture_output=True)
        front_pids = tree_pids(front_server.pid)
        workers_pids = sorted(set(front_pids) - {front_server.pid}) or [front_server.pid]
        if os.environ.get("STRACE") == "1":
            strace_counts(front, mode, workers_pids, url)
            return
        backend_pids = [pid for srv, _ in backends for pid in tree_pids(srv.pid)]
        measure(front, mode, seconds, workers_pids, front_pids, backend_pids, url, tmp)
    finally:
        for srv in reversed(started):
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
