"""Instructions per request on the hello app, counted by valgrind's callgrind.

    python3 bench/instructions.py [BINARY] [--requests N] [--all]

Starts BINARY (default target/release/portico) under callgrind serving
examples/hello.py on one HTTP port, warms up with 200 requests, zeroes the
counters, sends N (default 20,000) keep-alive GETs on one connection, dumps
the counters and prints the instructions and the instructions per request.

By default only the request path is counted (`--toggle-collect` on the
connection task and the WSGI job: `serve_stream`, `run_request`): runs
agree within about 0.3 %, with an occasional one 3 % higher (take the
median of three or more). `--all` counts every thread, tokio's idle
polling included: that moves by 2-3 % with the machine's timing.
Instruction counts do not depend on the machine being busy, so this is the
one measurement that is meaningful on a shared machine (perf's hardware
counters are not available in every VM).
"""

import argparse
import glob
import os
import socket
import subprocess
import sys
import tempfile
import time

REQUEST = (b"GET /hello/world?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: load/1.0\r\n"
           b"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nCookie: a=1\r\n\r\n")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port, n):
    """N requests in turn on one keep-alive connection; the count of 200s."""
    ok = 0
    buf = b""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for _ in range(n):
            s.sendall(REQUEST)
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = buf[:end]
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.lower() == b"content-length":
                            length = int(value)
                    if len(buf) >= end + 4 + length:
                        ok += head.startswith(b"HTTP/1.1 200")
                        buf = buf[end + 4 + length:]
                        break
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit("the server closed the connection")
                buf += chunk
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "target/release/portico"))
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--all", action="store_true", help="count every thread, idle polling too")
    args = ap.parse_args()
    port = free_port()
    out = tempfile.mkdtemp(prefix="portico-callgrind-")
    collect = (["--collect-atstart=yes"] if args.all else
               ["--collect-atstart=no", "--toggle-collect=*serve_stream*",
                "--toggle-collect=*run_request*"])
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p", *collect,
           args.binary, "--http", f"127.0.0.1:{port}",
           "--wsgi-file", os.path.join(ROOT, "examples/hello.py"), "--disable-logging"]
    env = dict(os.environ, PYTHONHASHSEED="0")
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
        send(port, 200)
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = send(port, args.requests)
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        server.terminate()
        server.wait()
    dump = glob.glob(f"{out}/cg.{server.pid}.1")
    if ok != args.requests or not dump:
        raise SystemExit(f"{ok}/{args.requests} requests answered 200; dumps: {dump}")
    with open(dump[0]) as f:
        total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
    print(f"{total} instructions, {total / args.requests:.0f} per request "
          f"({args.requests} requests, {'all threads' if args.all else 'request path'})")


if __name__ == "__main__":
    sys.exit(main())
