"""Instructions per static-file request, counted by valgrind's callgrind: the
4 KiB file of `conf-static-4k` over HTTP/1.1, HTTPS, h2c or HTTP/2 on TLS,
Portico or nginx, one worker each, every request driven by h2load.

    python3 bench/static_instructions.py [--proto h1|https|h2c|h2] [--requests N]
                                         [--streams M] [--binary PATH] [--nginx]

Writes a generated nginx.conf (`worker_processes 1`, `master_process off`,
`open_file_cache max=1000`, `sendfile on`, `root DIR` holding static/4k.bin;
`listen ... ssl [http2]` with a self-signed RSA-2048 certificate for https
and h2, `listen ... http2` for h2c) and runs the server under callgrind
twice, from exec to exit: once answering 500 requests, once 500 + N
(default 20,000), each time on one connection with `h2load -c1 -mM` (M
streams in flight, default 10; `--h1` for h1 and https, one request at a
time). The instructions per request are the difference of the two totals
over N: start-up, shutdown and the TLS handshake cancel out. (No
`callgrind_control -z/-d`: vgdb reaches a process blocked in epoll_wait
only when it next wakes, so zeroing and dumping land at unpredictable
points and the figures jumped by 50x between runs.)

Every process is counted (Portico's master is idle; nginx runs without
one), so the figure includes the event loop. Like bench/instructions.py,
meaningful on a busy shared machine: instruction counts do not depend on
the load. `--keep` names the directory of the larger run's dumps, for
`callgrind_annotate`.
"""

import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from instructions import free_port  # noqa: E402
from proxy_instructions import wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tls(d):
    cert, key = f"{d}/cert.pem", f"{d}/key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def write_conf(d, port, proto):
    os.makedirs(f"{d}/www/static")
    with open(f"{d}/www/static/4k.bin", "wb") as f:
        f.write(os.urandom(4096))
    listen = {"h1": ";", "h2c": " http2;", "https": " ssl;", "h2": " ssl http2;"}[proto]
    tls = ""
    if proto in ("https", "h2"):
        cert, key = make_tls(d)
        tls = (f"ssl_certificate {cert}; ssl_certificate_key {key};\n"
               "        ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;")
    temp = " ".join(f"{k}_temp_path {d}/t;" for k in ("client_body", "proxy", "fastcgi",
                                                      "uwsgi", "scgi"))
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1;
error_log stderr warn; pid {d}/pid;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types; default_type application/octet-stream;
    access_log off; sendfile on; tcp_nopush on; open_file_cache max=1000;
    keepalive_requests 1000000; {temp}
    server {{
        listen 127.0.0.1:{port}{listen}
        {tls}
        root {d}/www;
    }}
}}
""")


def h2load(url, proto, n, streams):
    argv = ["h2load", "-t1", "-c1", f"-m{streams}", f"-n{n}", url]
    if proto in ("h1", "https"):
        argv.insert(1, "--h1")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if f"{n} succeeded" not in p.stdout or f"{n} 2xx" not in p.stdout:
        raise SystemExit(f"h2load: not all {n} requests succeeded:\n{p.stdout}{p.stderr}")
    return p.stdout


WARMUP = 500


def run(args, d, name, url, streams, n):
    """Every instruction of the server's processes, from exec to exit, when
    it answers `n` requests."""
    out = f"{d}/{name}"
    os.makedirs(out)
    if args.nginx:
        front = ["/usr/sbin/nginx", "-p", d + "/", "-c", "nginx.conf", "-e", "stderr"]
    else:
        front = [args.binary, "-c", f"{d}/nginx.conf"]
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes", "--compress-strings=no",
         f"--callgrind-out-file={out}/cg.%p", *front],
        stdout=subprocess.DEVNULL, stderr=open(f"{out}/front.err", "w"), start_new_session=True)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        wait_port(port, server, "the server", f"{out}/front.err")
        h2load(url, args.proto, n, streams)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
    total = 0
    for dump in glob.glob(f"{out}/cg.*"):
        with open(dump) as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("summary:"))
    if not total:
        raise SystemExit(f"no callgrind dump; see {out}")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proto", choices=("h1", "https", "h2c", "h2"), default="h2c")
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/portico"))
    ap.add_argument("--nginx", action="store_true", help="measure nginx instead of Portico")
    ap.add_argument("--keep", action="store_true", help="print the dumps' directory")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="portico-static-callgrind-")
    os.chmod(d, 0o755)
    port = free_port()
    write_conf(d, port, args.proto)
    scheme = "https" if args.proto in ("https", "h2") else "http"
    url = f"{scheme}://127.0.0.1:{port}/static/4k.bin"
    streams = args.streams if args.proto in ("h2", "h2c") else 1
    small = run(args, d, "small", url, streams, WARMUP)
    big = run(args, d, "big", url, streams, WARMUP + args.requests)
    who = "nginx" if args.nginx else "portico"
    print(f"{who}, static 4 KiB over {args.proto} (-m{streams}): "
          f"{(big - small) / args.requests:.0f} instructions per request ({args.requests} requests)"
          + (f"; dumps in {d}/big" if args.keep else ""))


if __name__ == "__main__":
    sys.exit(main())
