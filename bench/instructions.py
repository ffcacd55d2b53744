"""Instructions per request on the hello app, counted by valgrind's callgrind.

    python3 bench/instructions.py [BINARY] [--requests N] [--all] [--mode M]
                                  [--app FILE --target PATH --virtualenv DIR]

Starts BINARY (default target/release/portico) under callgrind serving
examples/hello.py on one port, warms up with 200 requests, zeroes the
counters, sends N requests, dumps the counters and prints the instructions
and the instructions per request. `--mode keepalive` (the default): N
keep-alive GETs on one HTTP connection (default N 20,000). `--mode close`:
one HTTP connection per request, `Connection: close` (default N 2,000);
`--mode uwsgi`: one connection per uwsgi packet on a `--socket` port, as
nginx's `uwsgi_pass` sends them (default N 2,000). The two per-connection
modes count every thread (`--all`): accepting, registering and closing a
connection happen outside the request path's functions.

By default only the request path is counted (`--toggle-collect` on the
connection task and the WSGI job: `serve_stream`, `run_request`): runs
agree within about 0.3 %, with an occasional one 3 % higher (take the
median of three or more). `--all` counts every thread, tokio's idle
polling included: that moves by 2-3 % with the machine's timing.
`--app bench/apps/flask_app.py --target /json --virtualenv bench/.venv`
counts the Flask scenario's requests instead of the hello app's.
`--master` runs it under a master with one worker (the per-request
supervision hooks: scoreboard counters, the running request's text) and
counts that worker's whole life at N requests less its life at none (two
runs: callgrind_control cannot reach a forked child); `--extra "ARGS"`
adds server arguments (`--extra "--stats 127.0.0.1:9191"`).
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


sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from ports import free_port  # noqa: E402  (the e2e tests' port helper: no pick-then-bind race)


def send_keepalive(port, n):
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


# The vars nginx 1.22 sends with its stock uwsgi_params (captured from a wrk
# request): the 14 params in their order; a request header is not passed when
# a param names it (HTTP_HOST), and wrk sends no other. REMOTE_PORT changes
# per connection, as it does behind nginx.
UWSGI_VARS = [(b"QUERY_STRING", b"x=1"), (b"REQUEST_METHOD", b"GET"),
              (b"CONTENT_TYPE", b""), (b"CONTENT_LENGTH", b""),
              (b"REQUEST_URI", b"/hello/world?x=1"), (b"PATH_INFO", b"/hello/world"),
              (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"), (b"SERVER_PROTOCOL", b"HTTP/1.1"),
              (b"REQUEST_SCHEME", b"http"), (b"REMOTE_ADDR", b"127.0.0.1"),
              (b"REMOTE_PORT", b"40000"), (b"SERVER_PORT", b"80"),
              (b"SERVER_NAME", b"localhost"), (b"HTTP_HOST", b"localhost")]


def uwsgi_packet(remote_port=40000):
    body = b"".join(len(k).to_bytes(2, "little") + k + len(v).to_bytes(2, "little") + v
                    for k, v in UWSGI_VARS
                    for v in [str(remote_port).encode() if k == b"REMOTE_PORT" else v])
    return b"\0" + len(body).to_bytes(2, "little") + b"\0" + body


def send_per_connection(port, n, mode):
    """N requests, each on its own connection (closed by the server after the
    answer); the count of 200s."""
    request = REQUEST.replace(b"Cookie: a=1\r\n", b"Cookie: a=1\r\nConnection: close\r\n")
    ok = 0
    for i in range(n):
        if mode == "uwsgi":
            request = uwsgi_packet(40000 + i % 20000)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(request)
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        ok += answer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
    return ok


APP_CALL = "<portico_wsgi::handler::WsgiHandler as portico_server::handler::Handler>::handle"


def calls_in_dump(path, name):
    """Calls recorded in a callgrind dump to the function `name`: the requests that really fell between the zeroing and the
    dump (callgrind_control's commands are seen when the server next runs,
    which can be a few hundred requests late on an idle event loop)."""
    names = {}
    calls = 0
    caller = target = None
    with open(path) as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                ref = line.split("=", 1)[1].strip()
                if ref.startswith("(") and ")" in ref:
                    key, _, given = ref[1:].partition(")")
                    given = given.strip()
                    if given:
                        names[key] = given
                    ref = names.get(key, "")
                if line.startswith("cfn="):
                    target = ref
                else:
                    caller = ref
            elif line.startswith("calls=") and target is not None:
                # (calls between inlined parts of the function itself are not calls to it)
                if target == name and caller != name:
                    calls += int(line.split()[0].split("=", 1)[1])
                target = None
    return calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "target/release/portico"))
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--all", action="store_true", help="count every thread, idle polling too")
    ap.add_argument("--mode", choices=("keepalive", "close", "uwsgi"), default="keepalive")
    ap.add_argument("--app", default=os.path.join(ROOT, "examples/hello.py"),
                    help="the WSGI file to serve (default examples/hello.py)")
    ap.add_argument("--target", default=None, help="the request target (default /hello/world?x=1)")
    ap.add_argument("--virtualenv", default=None, help="passed to the server (the app's packages)")
    ap.add_argument("--master", action="store_true",
                    help="under a master (`--master --processes 1`): count the worker, "
                         "its supervision hooks (the scoreboard's writes) included")
    ap.add_argument("--extra", default="", help="more server arguments, space-separated")
    args = ap.parse_args()
    if args.target is not None:
        global REQUEST
        REQUEST = REQUEST.replace(b"/hello/world?x=1", args.target.encode())
    per_connection = args.mode != "keepalive"
    if args.requests is None:
        args.requests = 2_000 if per_connection else 20_000
    args.all = args.all or per_connection
    if per_connection:
        def send(port, n):
            return send_per_connection(port, n, args.mode)
    else:
        send = send_keepalive
    if args.master:
        # callgrind_control cannot reach a forked worker (no vgdb in the
        # child): count the worker's whole life, at N requests and at none,
        # and take the difference.
        total = serve_and_count(args, send, args.requests, True)
        total -= serve_and_count(args, send, 0, True)
        print(f"{total} instructions, {total / args.requests:.0f} per request "
              f"({args.requests} requests, {args.mode}, the worker under a master, "
              f"difference of two runs)")
        return
    total, counted = serve_and_count(args, send, args.requests, False)
    print(f"{total} instructions, {total / counted:.0f} per request "
          f"({counted} of {args.requests} requests counted, {args.mode}, "
          f"{'all threads' if args.all else 'request path'})")


def serve_and_count(args, send, requests, whole_worker):
    """Serve 200 warm-up requests and `requests` more under callgrind.
    Without `whole_worker`: the counters are zeroed after the warm-up and
    dumped after the rest, and (instructions, requests counted) returned.
    With it: the instructions of the master's one worker over its life."""
    port = free_port()
    out = tempfile.mkdtemp(prefix="portico-callgrind-")
    collect = (["--collect-atstart=yes"] if args.all else
               ["--collect-atstart=no", "--toggle-collect=*serve_stream*",
                "--toggle-collect=*run_request*"])
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p", *collect,
           args.binary, "--socket" if args.mode == "uwsgi" else "--http", f"127.0.0.1:{port}",
           "--wsgi-file", args.app, "--disable-logging",
           *(["--virtualenv", args.virtualenv] if args.virtualenv else []),
           *(["--master", "--processes", "1"] if args.master else []), *args.extra.split()]
    # Valgrind's slowdown would make every exchange exceed the fair-share
    # limit (conn.rs, 50 µs) and yield, which a native run does not do.
    env = dict(os.environ, PYTHONHASHSEED="0", PORTICO_FAIR_SHARE_US="5000")
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
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
        if whole_worker:
            children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                      text=True).stdout.split()
            if len(children) != 1:
                raise SystemExit(f"expected one worker under the master, found {children}")
            worker = int(children[0])
            ok = send(port, requests) if requests else 0
        else:
            subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ok = send(port, requests)
            subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        server.terminate()
        server.wait()
    dump = glob.glob(f"{out}/cg.{worker}" if whole_worker else f"{out}/cg.{server.pid}.1")
    if ok != requests or not dump:
        raise SystemExit(f"{ok}/{requests} requests answered 200; dumps: {dump}")
    with open(dump[0]) as f:
        total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
    if whole_worker:
        return total
    return total, calls_in_dump(dump[0], APP_CALL) or requests

if __name__ == "__main__":
    sys.exit(main())
