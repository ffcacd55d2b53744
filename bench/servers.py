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
import shutil
import signal
import subprocess
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


# Portico's listen queue when no `--listen` is given (crates/config model.rs
# DEFAULT_LISTEN); uWSGI's own default is 100.
PORTICO_DEFAULT_LISTEN = 1024


def uwsgi_listen():
    """`--listen N` for a uWSGI that nginx fronts: nginx opens one upstream
    connection per request (per HTTP/2 stream: h2load's -c C/4 -m 10 is
    160 at once by default), and on a unix socket a full listen queue
    refuses the connect() at once (EAGAIN, nginx answers 502) where TCP
    would retry. uWSGI's docs tell to raise `--listen` (its startup log says
    "your server socket listen backlog is limited to 100 connections"); it
    is given the queue Portico has by default, capped at
    net.core.somaxconn (above it uWSGI refuses to start)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            somaxconn = int(f.read())
    except (OSError, ValueError):
        somaxconn = 128
    return ["--listen", str(min(PORTICO_DEFAULT_LISTEN, somaxconn))]


def nginx_binary():
    for p in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.path.exists(p):
            return p
    return "nginx"


class Stack:
    def __init__(self, name, servers, url, expect, needs_portico=(), is_portico=False,
                 portico_conf=None, conf=None, front=None, backend=None):
        self.name, self.servers, self.url, self.expect = name, servers, url, expect
        # proxy-*: the name of the front server (its CPU is shown apart);
        # the others are backends shared by every row (Server.shared)
        self.front = front
        # uwsgi-nginx: the name of the backend behind the same nginx (its
        # CPU is shown apart: the one figure that differs between the rows)
        self.backend = backend
        self.needs_portico = list(needs_portico)
        self.is_portico = is_portico
        # the nginx.conf a `portico -c` stack serves: checked with
        # `portico -t -c` before the row runs (see portico.py)
        self.portico_conf = portico_conf
        # the generated nginx.conf this stack serves, if any (for the JSON)
        self.conf = conf or portico_conf
        # the server answers HTTP/2 only: checked and probed with curl --http2
        self.h2_only = False

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

def portico_http(ctx, app, connections=None):
    """`connections`: room for that many idle keep-alive connections per
    worker (idle-conns; the same room nginx_idle gives nginx)."""
    f, _, path, expect = APPS[app]
    port = free_port()
    argv = [ctx.portico_bin, "--http", f"{LOOPBACK}:{port}",
            "--wsgi-file", os.path.join(APPS_DIR, f),
            "--processes", str(ctx.workers), "--disable-logging"]
    needs = ["--http", "--wsgi-file", "--processes", "--disable-logging"]
    if connections is not None:
        argv += ["--worker-connections", str(2 * connections + 100)]
        needs.append("--worker-connections")
    return Stack("portico", [ctx.server("portico", argv, signal.SIGINT)],
                 f"http://{LOOPBACK}:{port}{path}", expect,
                 needs_portico=needs, is_portico=True)


def granian(ctx, app):
    _, mod, path, expect = APPS[app]
    port = free_port()
    argv = [venv_tool("granian"), "--interface", "wsgi", "--host", LOOPBACK,
            "--port", str(port), "--workers", str(ctx.workers),
            "--blocking-threads", "1", "--no-access-log",
            "--working-dir", APPS_DIR, f"{mod}:app"]
    return Stack("granian", [ctx.server("granian", argv, signal.SIGINT)],
                 f"http://{LOOPBACK}:{port}{path}", expect)


def uwsgi_http(ctx, app, keepalive=True, name=None):
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
        name = name or "uwsgi-close"
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


def close_servers(ctx):
    """The rows of the `close` scenario (hello app; wrk sends "Connection:
    close" on every request): Portico, Granian, uWSGI's --http-socket (which
    closes after each response anyway), gunicorn's default sync worker."""
    return [
        lambda: portico_http(ctx, "hello"),
        lambda: granian(ctx, "hello"),
        lambda: uwsgi_http(ctx, "hello", keepalive=False, name="uwsgi"),
        lambda: gunicorn(ctx, "hello"),
    ]


# ---- nginx ---------------------------------------------------------------

def _nginx(ctx, label, server_block, worker_connections=4096, http_extra=""):
    prefix = os.path.join(ctx.tmpdir, f"nginx-{free_port()}")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    port = free_port()
    conf = f"""# written by bench/servers.py
daemon off;
master_process on;
worker_processes {ctx.workers};
error_log stderr warn;
pid {prefix}/nginx.pid;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;{http_extra}
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


def nginx_idle(ctx, connections):
    """nginx `return 200` with room for `connections` idle keep-alive
    connections per worker (idle-conns)."""
    srv, port, _ = _nginx(ctx, "nginx", '        location / { default_type text/plain; return 200 "Hello, World!"; }',
                          # twice: nginx closes idle keep-alive connections
                          # when fewer than 1/16 of its connections are free
                          worker_connections=2 * connections + 100,
                          http_extra="\n    keepalive_timeout 300s;")
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
                *uwsgi_listen(),
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
                 b"Hello, World!", needs_portico=needs, is_portico=backend == "portico",
                 backend=backend)


# ---- one nginx.conf, served by nginx and by `portico -c` ------------------

NGINX_MIME_TYPES = "/etc/nginx/mime.types"
NGINX_UWSGI_PARAMS = "/etc/nginx/uwsgi_params"


def site_conf(ctx, name, server_body, http_extra="", tls=None, h2_port=None, http2=False):
    """Write <tmp>/<name>/nginx.conf — the one file both nginx and `portico
    -c` serve in a conf-* or stack scenario — and return (path, dir, port).
    Everything it names is an absolute path in that directory, except
    mime.types (nginx's, absolute: Portico reads the same file) and, in
    the stack scenario, `include uwsgi_params` (a copy of nginx's beside the
    config, as the seeds' configs have it). `h2_port`: a second `listen
    ... http2` address (prior-knowledge h2c; nginx 1.22 speaks only HTTP/2
    there) for the h2c-* scenarios."""
    d = os.path.join(ctx.tmpdir, name)
    os.makedirs(d, exist_ok=True)
    # nginx workers run as nobody: the path to the files must be readable
    for p in (ctx.tmpdir, d):
        os.chmod(p, 0o755)
    port = free_port()
    temp = "".join(f"    {k}_temp_path {d}/{k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    h2_listen = f"        listen {LOOPBACK}:{h2_port} http2;\n" if h2_port else ""
    conf = f"""# written by bench/servers.py: served as it is by nginx and by `portico -c`
daemon off;
master_process on;
worker_processes {ctx.workers};
error_log stderr warn;
pid {d}/run.pid;
events {{ worker_connections 4096; }}
http {{
    include {NGINX_MIME_TYPES};
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000;
    keepalive_requests 100000;
{temp}{http_extra}    server {{
        listen {LOOPBACK}:{port}{tls_lines(tls, http2)}
{h2_listen}{server_body}
    }}
}}
"""
    path = os.path.join(d, "nginx.conf")
    for p in (path, os.path.join(ctx.logdir, f"{name}-nginx.conf")):
        with open(p, "w") as f:
            f.write(conf)
    os.chmod(path, 0o644)
    return path, d, port


def nginx_conf_server(ctx, label, conf, d):
    argv = [nginx_binary(), "-p", d + "/", "-c", conf, "-e", "stderr"]
    return ctx.server(label, argv, signal.SIGTERM)


def portico_conf_server(ctx, conf, extra=()):
    # SIGINT: fast shutdown for nginx and for uWSGI alike
    argv = [ctx.portico_bin, "-c", conf] + list(extra)
    return ctx.server("portico", argv, signal.SIGINT)


def conf_static_stacks(ctx, conf, d, port, fname, scheme="http"):
    url = f"{scheme}://{LOOPBACK}:{port}/static/{fname}"
    return [
        lambda: Stack("portico -c", [portico_conf_server(ctx, conf)], url, None,
                      is_portico=True, portico_conf=conf),
        lambda: Stack("nginx", [nginx_conf_server(ctx, "nginx", conf, d)], url, None,
                      conf=conf),
    ]


def app_site_conf(ctx, name, tls=None, h2_port=None, http2=False):
    """stack: the seeds' front end, `uwsgi_pass unix:SOCK` for every URI
    (https-hello: on a `listen ... ssl`; h2-hello: `listen ... ssl http2`;
    h2c-stack: plus a `listen ... http2`). Returns (conf, dir, port, sock)."""
    d = os.path.join(ctx.tmpdir, name)
    sock = os.path.join(d, "app.sock")
    body = ("        location / {\n"
            "            include uwsgi_params;\n"
            f"            uwsgi_pass unix:{sock};\n"
            "        }")
    conf, d, port = site_conf(ctx, name, body, tls=tls, h2_port=h2_port, http2=http2)
    shutil.copyfile(NGINX_UWSGI_PARAMS, os.path.join(d, "uwsgi_params"))
    os.chmod(os.path.join(d, "uwsgi_params"), 0o644)
    return conf, d, port, sock


def app_site_stacks(ctx, conf, d, port, sock, scheme="http"):
    """One Portico serving the conf with the app in process (uwsgi_pass names
    its own --socket), vs nginx on the same conf in front of uWSGI on SOCK."""
    app_file = os.path.join(APPS_DIR, APPS["hello"][0])
    url = f"{scheme}://{LOOPBACK}:{port}/"
    extra = ["--socket", sock, "--wsgi-file", app_file, "--disable-logging"]

    def portico():
        _unlink(sock)
        return Stack("portico -c", [portico_conf_server(ctx, conf, extra)], url,
                     b"Hello, World!", needs_portico=["--socket", "--wsgi-file",
                                                      "--disable-logging"],
                     is_portico=True, portico_conf=conf)

    def nginx_uwsgi():
        # --chmod-socket: nginx's workers (nobody) must be able to connect
        # (the seed's own advice: "chmod" the socket)
        argv = [venv_tool("uwsgi"), "--socket", sock, "--chmod-socket=666",
                *uwsgi_listen(), "--processes", str(ctx.workers), "--master",
                "--wsgi-file", app_file, "--disable-logging", "--need-app"]
        _unlink(sock)
        back = ctx.server("uwsgi", argv, signal.SIGINT)
        front = nginx_conf_server(ctx, "nginx-front", conf, d)
        return Stack("nginx + uwsgi", [back, front], url, b"Hello, World!", conf=conf)

    return [portico, nginx_uwsgi]


# ---- TLS: the https-* scenarios ----------------------------------------------

def tls_pair(ctx):
    """The run's certificate: self-signed RSA 2048 for 127.0.0.1 (the usual
    deployment key), PEM, the key PKCS#8 (Granian reads only that), made
    once with the openssl CLI. Returns (cert, key)."""
    d = os.path.join(ctx.tmpdir, "tls")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    if not os.path.exists(cert):
        os.makedirs(d, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "30",
                        "-subj", f"/CN={LOOPBACK}", "-addext", f"subjectAltName=IP:{LOOPBACK}"],
                       check=True, capture_output=True)
        for p in (d, cert, key):
            os.chmod(p, 0o755 if p == d else 0o644)
    return cert, key


def tls_lines(tls, http2=False):
    """The end of the `listen` line, and the server's TLS directives: the same
    for nginx and `portico -c` (TLS 1.2 and 1.3, as Portico offers them);
    `http2`: ALPN offers h2 too (`listen ... ssl http2`)."""
    if tls is None:
        return ";"
    cert, key = tls
    return (" ssl http2;\n" if http2 else " ssl;\n") + (
            f"        ssl_certificate {cert};\n"
            f"        ssl_certificate_key {key};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;\n"
            "        ssl_session_cache shared:SSL:10m;")


def portico_https(ctx, tls, http2=False):
    """`portico --https` (h2-hello: plus `--http2`, ALPN h2 beside http/1.1)."""
    cert, key = tls
    f, _, path, expect = APPS["hello"]
    port = free_port()
    argv = [ctx.portico_bin, "--https", f"{LOOPBACK}:{port},{cert},{key}",
            "--wsgi-file", os.path.join(APPS_DIR, f),
            "--processes", str(ctx.workers), "--disable-logging"]
    needs = ["--https", "--wsgi-file", "--processes", "--disable-logging"]
    if http2:
        argv.append("--http2")
        needs.append("--http2")
    return Stack("portico --https --http2" if http2 else "portico --https",
                 [ctx.server("portico", argv, signal.SIGINT)],
                 f"https://{LOOPBACK}:{port}{path}", expect,
                 needs_portico=needs, is_portico=True)


def granian_https(ctx, tls, http2=False):
    """Granian with TLS (h2-hello: `--http 2`, which answers HTTP/2 only,
    so the stack is checked and probed over HTTP/2: `h2_only`)."""
    cert, key = tls
    _, mod, path, expect = APPS["hello"]
    port = free_port()
    argv = [venv_tool("granian"), "--interface", "wsgi", "--host", LOOPBACK,
            "--port", str(port), "--workers", str(ctx.workers),
            "--blocking-threads", "1", "--no-access-log",
            "--ssl-certificate", cert, "--ssl-keyfile", key,
            "--working-dir", APPS_DIR, f"{mod}:app"]
    if http2:
        argv[-3:-3] = ["--http", "2"]
    stack = Stack("granian --http 2 --ssl" if http2 else "granian --ssl",
                  [ctx.server("granian", argv, signal.SIGINT)],
                  f"https://{LOOPBACK}:{port}{path}", expect)
    stack.h2_only = http2
    return stack


# ---- proxy_pass to Granian: one nginx.conf, portico -c vs nginx -----------

def granian_backend(ctx, label, workers):
    """A Granian serving the hello app on a free port, shared by every row
    of a proxy-* scenario (started once, stopped after the last row).
    Returns (server, port)."""
    _, mod, _, _ = APPS["hello"]
    port = free_port()
    argv = [venv_tool("granian"), "--interface", "wsgi", "--host", LOOPBACK,
            "--port", str(port), "--workers", str(workers),
            "--blocking-threads", "1", "--no-access-log",
            "--working-dir", APPS_DIR, f"{mod}:app"]
    srv = ctx.server(label, argv, signal.SIGINT)
    srv.shared = True
    return srv, port


def proxy_site_conf(ctx, name, ports, keepalive, balancer=None):
    """proxy-*: `upstream app { [least_conn;] server ...; [keepalive 32;] }`
    and `location / { proxy_pass http://app; }`. With keepalive, nginx's
    documented setup for upstream keep-alive (`proxy_http_version 1.1`,
    `proxy_set_header Connection ""`; nginx 1.22 needs both). Without it,
    `proxy_http_version 1.0` — nginx 1.22's default, written out so that
    Portico (nginx 1.29.7+'s defaults: HTTP/1.1 and an implicit keep-alive
    pool) runs the same wire: a connection per request, `Connection: close`.
    Returns (conf, dir, port)."""
    lines = [f"        {balancer};"] if balancer else []
    lines += [f"        server {LOOPBACK}:{p};" for p in ports]
    if keepalive:
        lines.append("        keepalive 32;")
        loc = ("            proxy_http_version 1.1;\n"
               '            proxy_set_header Connection "";\n')
    else:
        loc = "            proxy_http_version 1.0;\n"
    upstream = "    upstream app {\n" + "\n".join(lines) + "\n    }\n"
    body = ("        location / {\n"
            "            proxy_pass http://app;\n"
            f"{loc}"
            "        }")
    return site_conf(ctx, name, body, http_extra=upstream)


def proxy_stacks(ctx, conf, d, port, backends):
    """The rows of a proxy-* scenario: `portico -c` and nginx on the same
    conf, each in front of the same running backends."""
    url = f"http://{LOOPBACK}:{port}/"
    return [
        lambda: Stack("portico -c", backends + [portico_conf_server(ctx, conf)], url,
                      b"Hello, World!", is_portico=True, portico_conf=conf,
                      front="portico"),
        lambda: Stack("nginx", backends + [nginx_conf_server(ctx, "nginx", conf, d)], url,
                      b"Hello, World!", conf=conf, front="nginx"),
    ]


def _unlink(path):
    """A socket file left by the previous stack would make the next bind fail."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
