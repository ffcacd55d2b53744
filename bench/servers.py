"""Command lines of every server bench/ runs, built the same way for all.

A Stack is what one row of the table measures: one server, or nginx in
front of a uwsgi-protocol backend. It knows the exact argv of each process,
the URL wrk hits (always on 127.0.0.1), which Portico options it needs
(checked against `portico --help` before the run), and how to stop each
process. All servers get the same app file, the same worker count and the
same environment (PYTHONPATH = the apps dir), and have their access logs off.
"""

import os
import shlex
import signal
import sys

from procs import LOOPBACK, Server, free_port

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
APPS_DIR = os.path.join(BENCH_DIR, "apps")
VENV_BIN = os.path.dirname(sys.executable)

APPS = {
    # name: (file, module, path wrk requests, expected body prefix)
    "hello": ("hello.py", "hello", "/", b"Hello, World!"),
    "flask": ("flask_app.py", "flask_app", "/json", b'{"message":"Hello, World!"}'),
}


def venv_tool(name):
    path = os.path.join(VENV_BIN, name)
    return path if os.path.exists(path) else name


def nginx_binary():
    for p in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.path.exists(p):
            return p
    return "nginx"


class Stack:
    def __init__(self, name, servers, url, expect, needs_portico=(), is_portico=False):
        self.name, self.servers, self.url, self.expect = name, servers, url, expect
        self.needs_portico = list(needs_portico)
        self.is_portico = is_portico

    def command_lines(self):
        return [shlex.join(s.argv) for s in self.servers]


class Ctx:
    """What every builder needs: worker count, paths, env, the tmp dir."""

    def __init__(self, workers, tmpdir, logdir, portico_bin):
        self.workers, self.tmpdir, self.logdir = workers, tmpdir, logdir
        self.portico_bin = portico_bin
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = APPS_DIR
        self.env["PYTHONUNBUFFERED"] = "1"
        venv = os.path.dirname(VENV_BIN)
        if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
            # Portico honours VIRTUAL_ENV (DESIGN.md decision 1): Flask imports
            # from the bench venv, as it does for the Python-based peers.
            self.env["VIRTUAL_ENV"] = venv
        self._n = 0

    def log(self, label):
        self._n += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
        return os.path.join(self.logdir, f"{self._n:03d}-{safe}.log")

    def server(self, label, argv, stop=signal.SIGTERM):
        return Server(label, argv, self.log(label), stop_signal=stop,
                      env=self.env, cwd=APPS_DIR)


# ---- application servers speaking HTTP ---------------------------------

def portico_http(ctx, app):
    f, _, path, expect = APPS[app]
    port = free_port()
    argv = [ctx.portico_bin, "--http", f"{LOOPBACK}:{port}",
            "--wsgi-file", os.path.join(APPS_DIR, f),
            "--processes", str(ctx.workers), "--disable-logging"]
    return Stack("portico", [ctx.server("portico", argv, signal.SIGINT)],
                 f"http://{LOOPBACK}:{port}{path}", expect,
                 needs_portico=["--http", "--wsgi-file", "--processes", "--disable-logging"],
                 is_portico=True)


def granian(ctx, app):
    _, mod, path, expect = APPS[app]
    port = free_port()
    argv = [venv_tool("granian"), "--interface", "wsgi", "--host", LOOPBACK,
            "--port", str(port), "--workers", str(ctx.workers),
            "--blocking-threads", "1", "--no-access-log",
            "--working-dir", APPS_DIR, f"{mod}:app"]
    return Stack("granian", [ctx.server("granian", argv, signal.SIGINT)],
                 f"http://{LOOPBACK}:{port}{path}", expect)


def uwsgi_http(ctx, app, keepalive=True):
    """uWSGI's own HTTP socket. keepalive=True: --http11-socket (a worker
    stays on one keep-alive connection while it is busy, so new clients can
    wait). keepalive=False: --http-socket, which closes every connection
    after one response; it is told to say so with "Connection: close"
    (without it, wrk counts each close as a read error)."""
    f, _, path, expect = APPS[app]
    port = free_port()
    if keepalive:
        name, sock = "uwsgi", ["--http11-socket", f"{LOOPBACK}:{port}"]
    else:
        name = "uwsgi-close"
        sock = ["--http-socket", f"{LOOPBACK}:{port}", "--add-header", "Connection: close"]
    argv = [venv_tool("uwsgi")] + sock + [
        "--wsgi-file", os.path.join(APPS_DIR, f),
        "--processes", str(ctx.workers), "--master", "--disable-logging",
        "--need-app"]
    # uWSGI 2.0: SIGTERM means "reload"; SIGINT means "stop now".
    return Stack(name, [ctx.server(name, argv, signal.SIGINT)],
                 f"http://{LOOPBACK}:{port}{path}", expect)


def gunicorn(ctx, app, threads=None):
    _, mod, path, expect = APPS[app]
    port = free_port()
    argv = [venv_tool("gunicorn"), "--bind", f"{LOOPBACK}:{port}",
            "--workers", str(ctx.workers), "--chdir", APPS_DIR]
    name = "gunicorn-sync"
    if threads:
        argv += ["--worker-class", "gthread", "--threads", str(threads)]
        name = "gunicorn-gthread"
    argv.append(f"{mod}:app")
    return Stack(name, [ctx.server(name, argv, signal.SIGINT)],
                 f"http://{LOOPBACK}:{port}{path}", expect)


def app_servers(ctx, app, load=True):
    """The rows of the hello/flask/idle-rss/startup scenarios, Portico first.
    Under load uWSGI gets two rows (keep-alive and close-per-request); at
    rest and at start-up the two are the same processes, so one row."""
    rows = [
        lambda: portico_http(ctx, app),
        lambda: granian(ctx, app),
        lambda: uwsgi_http(ctx, app),
    ]
    if load:
        rows.append(lambda: uwsgi_http(ctx, app, keepalive=False))
    return rows + [
        lambda: gunicorn(ctx, app),
        lambda: gunicorn(ctx, app, threads=4),
    ]


# ---- nginx ---------------------------------------------------------------

def _nginx(ctx, label, server_block):
    prefix = os.path.join(ctx.tmpdir, f"nginx-{free_port()}")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    port = free_port()
    conf = f"""# written by bench/servers.py
daemon off;
master_process on;
worker_processes {ctx.workers};
error_log stderr warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {LOOPBACK}:{port};
{server_block}
    }}
}}
"""
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    argv = [nginx_binary(), "-p", prefix, "-c", path, "-e", "stderr"]
    # SIGTERM/SIGINT = nginx's fast shutdown
    return ctx.server(label, argv, signal.SIGTERM), port, path


def nginx_return(ctx):
    srv, port, _ = _nginx(ctx, "nginx", '        location / { default_type text/plain; return 200 "Hello, World!"; }')
    return Stack("nginx", [srv], f"http://{LOOPBACK}:{port}/", b"Hello, World!")


def nginx_static(ctx, static_dir, fname):
    parent = os.path.dirname(static_dir)
    srv, port, _ = _nginx(ctx, "nginx", f"        location /static/ {{ root {parent}; }}")
    return Stack("nginx", [srv], f"http://{LOOPBACK}:{port}/static/{fname}", None)


def portico_static(ctx, static_dir, fname):
    port = free_port()
    argv = [ctx.portico_bin, "--http", f"{LOOPBACK}:{port}",
            "--static-map", f"/static={static_dir}",
            "--processes", str(ctx.workers), "--disable-logging"]
    return Stack("portico", [ctx.server("portico", argv, signal.SIGINT)],
                 f"http://{LOOPBACK}:{port}/static/{fname}", None,
                 needs_portico=["--http", "--static-map", "--processes", "--disable-logging"],
                 is_portico=True)


def nginx_uwsgi_pass(ctx, backend):
    """nginx -> uwsgi protocol -> backend ("portico" or "uwsgi"), hello app."""
    bport = free_port()
    app_file = os.path.join(APPS_DIR, APPS["hello"][0])
    if backend == "portico":
        argv = [ctx.portico_bin, "--socket", f"{LOOPBACK}:{bport}",
                "--wsgi-file", app_file, "--processes", str(ctx.workers),
                "--disable-logging"]
        needs = ["--socket", "--wsgi-file", "--processes", "--disable-logging"]
    else:
        argv = [venv_tool("uwsgi"), "--socket", f"{LOOPBACK}:{bport}",
                "--wsgi-file", app_file, "--processes", str(ctx.workers),
                "--master", "--disable-logging", "--need-app"]
        needs = []
    back = ctx.server(backend, argv, signal.SIGINT)
    # no upstream keepalive: the uwsgi protocol closes per request anyway
    block = ("        location / {\n"
             "            include /etc/nginx/uwsgi_params;\n"
             f"            uwsgi_pass {LOOPBACK}:{bport};\n"
             "        }")
    front, port, _ = _nginx(ctx, "nginx-front", block)
    return Stack(f"nginx → {backend}", [back, front], f"http://{LOOPBACK}:{port}/",
                 b"Hello, World!", needs_portico=needs, is_portico=backend == "portico")
