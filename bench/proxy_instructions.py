"""Instructions per proxied request, counted by valgrind's callgrind: the front of
the `proxy-ka`/`proxy-noka` scenarios, Portico or nginx, one worker each.

    python3 bench/proxy_instructions.py [--mode ka|noka|static] [--requests N]
                                        [--binary PATH] [--nginx] [--all] [--cache-sim]

Starts one Granian (bench/.venv, hello app, 1 worker) as the upstream, then the
front under callgrind with a generated nginx.conf (`worker_processes 1`,
`upstream app { server ...; [keepalive 32;] }`, `proxy_pass http://app;` with
`proxy_http_version 1.1; proxy_set_header Connection "";` for `ka`, 1.0 for
`noka`; `static`: `root` with a 13-byte file at the requested path, to see
what a change to a shared path, the allocator say, does to static files),
warms up with 300 requests, zeroes the counters, sends N (default
3,000) keep-alive GETs on one client connection and prints the instructions
per request.

Portico: only the request path is counted (`--toggle-collect` on every
task poll: the connection's, the proxy's read-ahead; the event loop's epoll
and timer work is left out). nginx (`--nginx`): every instruction of its worker (`master_process
off`), its event loop included, so nginx's figure holds some idle-loop work
Portico's leaves out. Like bench/instructions.py, the one measurement that
means something on a shared, busy machine: instruction counts do not depend
on the load.
"""

import argparse
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from instructions import free_port, send_keepalive as send  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Valgrind runs some 50 times slower: an exchange would exceed the
# fair-share limit (conn.rs, 50 µs) and yield every request, which a native
# run almost never does; raised so the count is the native path's.
VALGRIND_ENV = dict(os.environ, PORTICO_FAIR_SHARE_US="5000")


def wait_port(port, proc, what, err_file):
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{what} did not start: {open(err_file).read()[-2000:]}")
            time.sleep(0.2)


def ours(d):
    """The pids of this run's valgrind processes (the front and its worker).
    `callgrind_control` without pids zeroes and dumps every callgrind on the
    machine, another run's too, which spoils both counts; this run's own
    `--vgdb-prefix` also keeps other runs' (older) script from reaching it."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if d.encode() in f.read():
                    pids.append(pid)
        except OSError:
            pass
    return pids


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("ka", "noka", "static"), default="ka")
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/portico"))
    ap.add_argument("--nginx", action="store_true", help="measure nginx instead of Portico")
    ap.add_argument("--all", action="store_true",
                    help="Portico: count every instruction of the worker, its event loop too "
                         "(as nginx's figure does)")
    ap.add_argument("--cache-sim", action="store_true",
                    help="also simulate the caches and branch predictor: data reads and "
                         "writes, L1/last-level misses and mispredicted branches per request "
                         "(where the time goes when instruction counts are close)")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="portico-proxy-callgrind-")
    up_port, port = free_port(), free_port()
    granian = os.path.join(ROOT, "bench/.venv/bin/granian")
    backend = subprocess.Popen(
        [granian, "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(up_port),
         "--workers", "1", "--no-access-log", "--working-dir", os.path.join(ROOT, "bench/apps"),
         "hello:app"],
        stdout=subprocess.DEVNULL, stderr=open(f"{d}/granian.err", "w"), start_new_session=True)
    ka = "keepalive 32;" if args.mode == "ka" else ""
    version = ('proxy_http_version 1.1; proxy_set_header Connection "";' if args.mode == "ka"
               else "proxy_http_version 1.0;")
    content = f"proxy_pass http://app; {version}"
    if args.mode == "static":
        os.makedirs(f"{d}/www/hello")
        with open(f"{d}/www/hello/world", "w") as f:  # the path `send` asks for
            f.write("Hello, world!")
        content = f"root {d}/www;"
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1;
error_log stderr warn; pid {d}/pid;
events {{ worker_connections 1024; }}
http {{
    access_log off; keepalive_requests 100000;
    proxy_temp_path {d}/t; client_body_temp_path {d}/t;
    upstream app {{ server 127.0.0.1:{up_port}; {ka} }}
    server {{ listen 127.0.0.1:{port}; location / {{ {content} }} }}
}}
""")
    if args.nginx:
        front = ["/usr/sbin/nginx", "-p", d + "/", "-c", "nginx.conf", "-e", "stderr"]
        collect = ["--collect-atstart=yes"]
    elif args.all:
        front = [args.binary, "-c", f"{d}/nginx.conf"]
        collect = ["--trace-children=yes", "--collect-atstart=yes"]
    else:
        front = [args.binary, "-c", f"{d}/nginx.conf"]
        # Every task poll (the connection's, the proxy's read-ahead, the
        # pool's): the event loop's epoll and timer work is left out. Only
        # one pattern: a nested match would toggle collection back off.
        collect = ["--trace-children=yes", "--collect-atstart=no",
                   "--toggle-collect=*task::raw::poll*"]
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.%p",
         *(["--cache-sim=yes", "--branch-sim=yes"] if args.cache_sim else []),
         f"--vgdb-prefix={d}/vgdb", *collect, *front],
        stdout=subprocess.DEVNULL, stderr=open(f"{d}/front.err", "w"), start_new_session=True,
        env=VALGRIND_ENV)
    try:
        wait_port(up_port, backend, "granian", f"{d}/granian.err")
        wait_port(port, server, "the front", f"{d}/front.err")
        send(port, 300)
        subprocess.run(["callgrind_control", f"--vgdb-prefix={d}/vgdb", "-z", *ours(d)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = send(port, args.requests)
        subprocess.run(["callgrind_control", f"--vgdb-prefix={d}/vgdb", "-d", *ours(d)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        for proc in (server, backend):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    events = {}
    for dump in glob.glob(f"{d}/cg.*.1"):
        with open(dump) as f:
            lines = f.read().splitlines()
        names = next(line.split()[1:] for line in lines if line.startswith("events:"))
        counts = next(line.split()[1:] for line in lines if line.startswith("summary:"))
        for name, count in zip(names, counts):
            events[name] = events.get(name, 0) + int(count)
    total = events.get("Ir", 0)
    if ok != args.requests or not total:
        raise SystemExit(f"{ok}/{args.requests} requests answered 200; see {d}")
    who = ("nginx (all of its worker)" if args.nginx else
           "portico (all of its worker)" if args.all else "portico (request path)")
    print(f"{who}, proxy-{args.mode}: {total / args.requests:.0f} instructions per request "
          f"({args.requests} requests)")
    if args.cache_sim:
        print("per request: " + ", ".join(f"{name} {count / args.requests:.1f}"
                                          for name, count in events.items() if name != "Ir"))
    print(f"callgrind dumps: {d}/cg.*.1 (callgrind_annotate --inclusive=yes FILE)")


if __name__ == "__main__":
    sys.exit(main())
