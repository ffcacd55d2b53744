"""Differential harness: the same nginx.conf and the same file tree served by
the real nginx 1.22 (/usr/sbin/nginx) and by `portico -c`, answer by answer.

    with DiffPair(CONF, TREE) as pair:
        a, b = pair.both("GET", "/a/b")        # nginx's answer, portico's answer
        pair.compare(a, b)                      # status, Location, types, lengths, body
        status, headers, body = pair.fetch("portico", "GET", "/x")

CONF is the body of the `http {}` block, with placeholders: `{port}`, `{port2}`,
... (each side gets its own free loopback ports), `{root}` (the file tree; it
is also the `-p` prefix of both sides, so a relative `root html` means
TREE/html on both) and any `subs` given. The harness wraps it the same way
for both sides (`user nobody nogroup; daemon off; master_process on;
worker_processes 1; error_log stderr; pid STATE/x.pid; events {...}` and
`http { access_log off; ... }`); only nginx gets its `*_temp_path` lines
(Debian's build puts them in /var/lib/nginx otherwise) and a copy of
/etc/nginx/uwsgi_params beside its config (Portico ships its own).

TREE is a dict (relative path -> bytes or str; a path ending in `/` is an empty
directory; a value (data, mtime) sets that file's mtime) or a function given
the root Path. Every file and directory gets mode 0644/0755 (workers run as
nobody) and the mtime MTIME unless told otherwise, so ETag, Last-Modified and
autoindex listings are the same on both sides and from run to run.

The second side is `$PORTICO_BIN -p TREE/ -c STATE/portico.conf [portico_args]`
(stdout and stderr in STATE/portico.log; `portico_subs` override `subs` for it
alone, e.g. an upstream that is its own in-process app); with
NGINX_DIFF_SELFTEST=1 it is a second nginx on the same config, which proves
the harness and the expectations are deterministic before Portico can serve
anything.

compare() asserts equal: the status (0 = closed without an answer), Location,
Content-Type, Content-Length, ETag, Last-Modified (plus any headers a case
adds) and the body, after normalising each side's own port numbers to
`{port}`..., the server token of error pages (`<center>nginx/1.22.1</center>`,
`<center>portico</center>` -> SERVER, Content-Length adjusted to match) and
multipart boundaries; Expires is compared as its offset from Date. Where nginx
streams a body (chunked), the other side may stream it too or send its exact
Content-Length. For HEAD, each side's Content-Length is checked against its
own GET. Date and Server are never compared.

`live_mark()` is the module mark of the suites built on this: it skips them
(reason "portico -c not wired yet") only while `$PORTICO_BIN -t -c VALID`
exits non-zero saying `not wired yet` (the temporary stub); any other
failure runs the suite, so a broken `-c` shows as failures, never as skips.
`proxy_live_mark()` is the same for the reverse-proxy suites (test_proxy_*.py):
it skips them (reason "proxy_pass not wired yet") only while `$PORTICO_BIN -t
-c` refuses a tiny `proxy_pass` config saying proxy_pass is not supported yet.

`seed_config(name, backends)` makes one of the seeds' verbatim proxy configs
(configs/nginx/seed000_*.conf: `listen 80`, `127.0.0.1:9090`...) runnable: the
listen line gets `{port}`, each seed backend address the test's own.
"""

import email.utils
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

import nginxctl
from conftest import BIN, binary_env, stop_process
from httpraw import Conn, Incomplete, build
from ports import free_port, port_taken

SELFTEST = os.environ.get("NGINX_DIFF_SELFTEST", "") not in ("", "0")
MTIME = 0x5E0D5DA5  # Thu, 02 Jan 2020 03:04:05 GMT
START_TIMEOUT = 15.0
CONFIGS = Path(__file__).resolve().parent / "configs" / "nginx"
NOT_WIRED = "portico -c not wired yet"
PROXY_NOT_WIRED = "proxy_pass not wired yet"

# Placeholders: `{name}` not preceded by `$` (so nginx's `${var}` is left alone).
PLACEHOLDER_RE = re.compile(r"(?<!\$)\{([a-z][a-z0-9_]*)\}")
PORT_NAME_RE = re.compile(r"^port\d*$")

# The headers compare() looks at unless told otherwise (Date and Server always differ).
COMPARED = ("location", "content-type", "content-length", "etag", "last-modified")

# The server token in nginx's and Portico's own error pages.
TOKEN_RE = re.compile(rb"<center>(?:nginx|portico)(?:/[^<]*)?</center>")
BOUNDARY_RE = re.compile(r"boundary=([^\s;]+)")


# --- the file tree --------------------------------------------------------------------


def build_tree(root, tree):
    """Write `tree` (see the module doc) under `root`, readable by nobody, fixed mtimes."""
    root = Path(root)
    if callable(tree):
        tree(root)
    else:
        for rel, value in tree.items():
            path = root / rel
            if rel.endswith("/"):
                path.mkdir(parents=True, exist_ok=True)
                continue
            mtime = MTIME
            if isinstance(value, tuple):
                value, mtime = value
            if isinstance(value, str):
                value = value.encode()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(value)
            os.utime(path, (mtime, mtime))
    # modes first, then directory mtimes (deepest first: writing a child touches its parent)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)
    for dirpath, dirnames, _ in sorted(os.walk(root), key=lambda t: -t[0].count(os.sep)):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.utime(path, (MTIME, MTIME))


# --- the config -----------------------------------------------------------------------


def port_names(body):
    """The `{portN}` placeholders of a config body, in order of first use."""
    seen = []
    for name in PLACEHOLDER_RE.findall(body):
        if PORT_NAME_RE.match(name) and name not in seen:
            seen.append(name)
    return seen


def render(body, values):
    """Fill the known placeholders of `body`; unknown `{x}` stay as they are."""

    def sub(m):
        name = m.group(1)
        return str(values[name]) if name in values else m.group(0)

    return PLACEHOLDER_RE.sub(sub, body)


def config_file(body, values, state_dir, pid_name, nginx_only=""):
    """The whole config file of one side (see the module doc)."""
    return (
        nginxctl.main_preamble(Path(state_dir) / pid_name)
        + "http {\n"
        + "    access_log off;\n"
        + textwrap.indent(nginx_only, "    ")
        + textwrap.indent(render(textwrap.dedent(body).strip("\n"), values), "    ")
        + "\n}\n"
    )


# --- the two sides --------------------------------------------------------------------


class NginxSide(nginxctl.NginxMaster):
    """nginx serving `body` (placeholders filled with its own ports)."""

    def __init__(self, label, body, prefix, subs):
        super().__init__(prefix=prefix, dir_prefix=f"portico-diff-{label}-")
        self.label = label
        self.body = body
        self.subs = dict(subs)
        nginxctl.uwsgi_params()
        shutil.copy(nginxctl.UWSGI_PARAMS, self.dir / "uwsgi_params")

    def port_names(self):
        return port_names(self.body)

    def values(self):
        return {"root": self.prefix, **self.subs, **self.ports}

    def config_text(self):
        return config_file(self.body, self.values(), self.dir, "nginx.pid",
                           nginx_only=nginxctl.temp_paths(self.dir))

    @property
    def pid(self):
        return self.proc.pid

    def reload(self, body):
        """Write a new config body (same ports) and send SIGHUP to the master."""
        self.body = body
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)


class PorticoSide:
    """`$PORTICO_BIN -p PREFIX/ -c STATE/portico.conf [ARGS]` serving `body` (ARGS: e.g.
    the app's options, for uwsgi_pass to an app in the same process)."""

    def __init__(self, label, body, prefix, subs, args=()):
        self.label = label
        self.args = [str(a) for a in args]
        self.body = body
        self.prefix = Path(prefix)
        self.subs = dict(subs)
        self.dir = Path(tempfile.mkdtemp(prefix=f"portico-diff-{label}-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.conf_path = self.dir / "portico.conf"
        self.log_path = self.dir / "portico.log"
        self.ports = {}
        self.proc = None

    def values(self):
        return {"root": self.prefix, **self.subs, **self.ports}

    def config_text(self):
        return config_file(self.body, self.values(), self.dir, "portico.pid")

    def write_config(self):
        self.conf_path.write_text(self.config_text())

    def start(self):
        for attempt in range(3):
            self.ports = {name: free_port() for name in port_names(self.body)}
            self.write_config()
            env = binary_env()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [str(BIN), "-p", f"{self.prefix}/", "-c", str(self.conf_path)] + self.args,
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.dir, env=env,
                )
            if wait_listening(self.proc, self.ports.values()):
                return self
            self.stop()
            if not port_taken(self.log()) or attempt == 2:
                raise AssertionError(
                    f"portico -c did not start (exit {self.proc.returncode}); config:\n"
                    + self.conf_path.read_text() + "\nlog:\n" + self.log()
                )
        raise AssertionError("unreachable")

    @property
    def pid(self):
        return self.proc.pid

    def reload(self, body):
        self.body = body
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        stop_process(self.proc, signal.SIGQUIT, 5)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def wait_listening(proc, ports, timeout=START_TIMEOUT):
    """True once every port accepts a connection; False if `proc` exits first."""
    return nginxctl.wait_ports(proc, ports, timeout)


def other_side(body, prefix, subs, portico_args=(), portico_subs=None):
    """The side compared with nginx: Portico (with `portico_args`, and `portico_subs`
    over `subs`), or a second nginx on `subs` alone in self-test mode."""
    if SELFTEST:
        return NginxSide("nginx2", body, prefix, subs)
    return PorticoSide("portico", body, prefix, {**subs, **(portico_subs or {})}, portico_args)


# --- answers --------------------------------------------------------------------------


class Answer(tuple):
    """(status, headers, body): headers a dict with lower-cased names (repeated
    headers joined with ", "). Status 0: the connection closed without an answer.
    Also .side, .chunked, .complete, .raw_headers."""

    def __new__(cls, status, headers, body, side="", chunked=False, complete=True, raw_headers=()):
        self = super().__new__(cls, (status, headers, body))
        self.side = side
        self.chunked = chunked
        self.complete = complete
        self.raw_headers = list(raw_headers)
        return self

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    body = property(lambda self: self[2])

    def __repr__(self):
        return f"<{self.side} {self.status} {self.headers!r} {self.body[:300]!r}>"


def fetch_port(port, method="GET", target="/", headers=None, body=None, *,
               version="HTTP/1.1", host="localhost", side="", timeout=10.0, addr="127.0.0.1",
               source=None):
    """Send one raw request on a fresh connection to addr:port; return an Answer.
    `headers`: dict or list of pairs; a Host given there replaces `host`; host=None
    sends no Host (for any version). `source`: the client address to connect from
    (any 127.x.y.z works on Linux loopback: ip_hash, X-Real-IP)."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or ())
    if host is not None and not any(k.lower() == "host" for k, _ in pairs):
        pairs.insert(0, ("Host", host))
    data = build(method, target, pairs, body or b"", version=version, host=None)
    with Conn(addr, port, timeout, source=source) as conn:
        if not conn.send(data):
            return Answer(0, {}, b"", side)
        try:
            resp = conn.read_response(method)
        except Incomplete:
            return Answer(0, {}, b"", side)
    merged = {}
    for k, v in resp.headers:
        k = k.lower()
        merged[k] = f"{merged[k]}, {v}" if k in merged else v
    return Answer(resp.status, merged, resp.body, side, chunked=resp.framing == "chunked",
                  complete=resp.complete, raw_headers=resp.headers)


# --- normalisation and comparison -----------------------------------------------------


def normalise_ports(text, ports):
    """Each of a side's port numbers -> `{name}` (only where it stands alone as a number)."""
    for name, port in sorted(ports.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(rf"(?<![0-9]){port}(?![0-9])", "{" + name + "}", text)
    return text


def normalise_body(body, headers, ports):
    """Server token of error pages, multipart boundary, ports."""
    body = TOKEN_RE.sub(b"<center>SERVER</center>", body)
    m = BOUNDARY_RE.search(headers.get("content-type", ""))
    if m:
        body = body.replace(m.group(1).encode(), b"BOUNDARY")
    text = body.decode("latin-1")
    return normalise_ports(text, ports).encode("latin-1")


def http_date(value):
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def normalised(answer, ports, reference, names=COMPARED):
    """A dict of what is compared, for one side. `reference` is nginx's answer (it
    decides whether Content-Length is compared exactly: see compare())."""
    status, headers, body = answer
    out = {"status": status}
    norm_body = normalise_body(body, headers, ports)
    for name in names:
        value = headers.get(name)
        if name == "content-length":
            if reference.chunked:
                # nginx streamed it: the other side may stream too or send the exact length
                ok = answer.chunked or value == str(len(body))
                value = "<chunked or exact>" if ok else f"<{value!r} for {len(body)} bytes>"
            elif value is not None and value.isdigit() and len(body) == int(value):
                value = str(len(norm_body))  # the length of the normalised body
        elif name == "content-type" and value is not None:
            value = BOUNDARY_RE.sub("boundary=BOUNDARY", value)
        elif name == "expires" and value is not None:
            exp, date = http_date(value), http_date(headers.get("date"))
            # relative (`expires 1h`): as an offset from Date; fixed dates (epoch, max) as sent
            if exp is not None and date is not None and abs((exp - date).days) < 400:
                value = f"Date{int((exp - date).total_seconds()):+d}s"
        elif value is not None:
            value = normalise_ports(value, ports)
        out[name] = value
    out["body"] = norm_body
    out["complete"] = answer.complete
    return out


def compare(a, b, a_ports, b_ports, headers=COMPARED):
    """Assert nginx's answer `a` and the other side's `b` are the same (after
    normalising ports, the server token and multipart boundaries). Content-Length
    must be equal, except where nginx streamed the body (chunked): there the other
    side may stream it too or send its exact length."""
    left = normalised(a, a_ports, a, headers)
    right = normalised(b, b_ports, a, headers)
    assert right == left, f"\nnginx:   {a!r}\n{b.side}: {b!r}"


# --- the pair -------------------------------------------------------------------------


class DiffPair:
    """nginx and the other side on one config and one file tree (see the module doc)."""

    def __init__(self, body, tree=None, subs=None, portico_args=(), portico_subs=None):
        if isinstance(body, Path):
            body = body.read_text()
        self.body = body
        self.tree = tree or {}
        self.subs = dict(subs or {})
        self.portico_args = tuple(portico_args)
        self.portico_subs = dict(portico_subs or {})
        self.root = None
        self.sides = {}

    def start(self):
        self.root = Path(tempfile.mkdtemp(prefix="portico-diff-tree-", dir="/tmp"))
        try:
            build_tree(self.root, self.tree)
            os.chmod(self.root, 0o755)
            os.utime(self.root, (MTIME, MTIME))
            self.sides["nginx"] = NginxSide("nginx", self.body, self.root, self.subs).start()
            side = other_side(self.body, self.root, self.subs, self.portico_args, self.portico_subs)
            self.sides["portico"] = side
            side.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        for side in self.sides.values():
            side.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def nginx(self):
        return self.sides["nginx"]

    @property
    def portico(self):
        return self.sides["portico"]

    def fetch(self, side, method="GET", target="/", headers=None, body=None, *,
              port="port", **kw):
        """One raw request to `side` ("nginx" or "portico") on its listener `port`."""
        s = self.sides[side]
        return fetch_port(s.ports[port], method, target, headers, body, side=side, **kw)

    def both(self, method="GET", target="/", headers=None, body=None, **kw):
        """The same request to nginx, then to the other side: (nginx's, other's)."""
        return (self.fetch("nginx", method, target, headers, body, **kw),
                self.fetch("portico", method, target, headers, body, **kw))

    def compare(self, a, b, headers=COMPARED):
        compare(a, b, self.nginx.ports, self.portico.ports, headers)

    def check(self, method="GET", target="/", headers=None, body=None, *,
              compared=COMPARED, **kw):
        """both() + compare(); returns nginx's answer (tests pin nginx's behaviour on it).

        HEAD: each side's Content-Length, when it sends one, must be the length of its
        own GET body (error pages differ in length by the server token, and nginx sends
        none where it streams the GET); the rest is compared across sides as usual."""
        a, b = self.both(method, target, headers, body, **kw)
        if method == "HEAD":
            for head, get in zip((a, b), self.both("GET", target, headers, body, **kw)):
                cl = head.headers.get("content-length")
                assert head.body == b"", head
                assert cl is None or int(cl) == len(get.body), (
                    f"HEAD Content-Length {cl} but GET sends {len(get.body)} bytes: {head!r}")
            compared = tuple(h for h in compared if h != "content-length")
        self.compare(a, b, compared)
        return a


def load_config(name):
    """A config body from tests/e2e/configs/nginx/."""
    return (CONFIGS / name).read_text()


SEED_LISTEN_RE = re.compile(r"\blisten\s+80\s*;")
SEED_BACKEND_RE = re.compile(r"\b127\.0\.0\.1:(9\d\d\d)\b")


def seed_config(name, backends, port="port"):
    """A seed's verbatim config (configs/nginx/NAME) with only what a test must change:
    `listen 80;` -> `listen 127.0.0.1:{PORT};` (PORT: `port`), and each `127.0.0.1:909N`
    -> the address `backends` maps "909N" to (KeyError if the test forgot one)."""
    text = SEED_LISTEN_RE.sub(f"listen 127.0.0.1:{{{port}}};", load_config(name))
    return SEED_BACKEND_RE.sub(lambda m: backends[m.group(1)], text)



# --- going live by itself -------------------------------------------------------------


def probe_not_wired(binary):
    """NOT_WIRED if `binary -t -c VALID` exits non-zero saying `not wired yet`, else None
    (a missing or hanging binary is None too: the suite runs and fails loudly)."""
    d = Path(tempfile.mkdtemp(prefix="portico-diff-probe-", dir="/tmp"))
    try:
        conf = d / "probe.conf"
        conf.write_text(config_file(
            "server { listen 127.0.0.1:{port}; return 200 \"ok\\n\"; }",
            {"port": free_port()}, d, "probe.pid"))
        try:
            r = subprocess.run([str(binary), "-t", "-c", str(conf)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode != 0 and b"not wired yet" in r.stdout:
            return NOT_WIRED
        return None
    finally:
        shutil.rmtree(d, ignore_errors=True)


PROXY_PROBE = "server { listen 127.0.0.1:{port}; location / { proxy_pass http://127.0.0.1:9; } }"
PROXY_REFUSED_RE = re.compile(rb'"?proxy_pass"? is not supported[^\n]*yet')


def probe_proxy_not_wired(binary):
    """PROXY_NOT_WIRED if `binary -t -c` on a tiny proxy_pass config exits non-zero saying
    proxy_pass is not supported yet, else None (any other failure: None, the suite runs)."""
    d = Path(tempfile.mkdtemp(prefix="portico-proxy-probe-", dir="/tmp"))
    try:
        conf = d / "probe.conf"
        conf.write_text(config_file(PROXY_PROBE, {"port": free_port()}, d, "probe.pid"))
        try:
            r = subprocess.run([str(binary), "-t", "-c", str(conf)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode != 0 and PROXY_REFUSED_RE.search(r.stdout):
            return PROXY_NOT_WIRED
        return None
    finally:
        shutil.rmtree(d, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def proxy_not_wired_reason():
    """probe_proxy_not_wired($PORTICO_BIN), once per session; never skips in self-test mode."""
    return None if SELFTEST else probe_proxy_not_wired(BIN)


def skip_if_not_wired(reason):
    """A module mark skipping the suite when `reason` (a probe's answer) is set."""
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def proxy_live_mark():
    """The module mark of the reverse-proxy suites (see the module doc)."""
    return skip_if_not_wired(proxy_not_wired_reason())


@functools.lru_cache(maxsize=None)
def not_wired_reason():
    """probe_not_wired($PORTICO_BIN), once per session; never skips in self-test mode."""
    return None if SELFTEST else probe_not_wired(BIN)


def live_mark():
    """The module mark of the differential suites (see the module doc)."""
    return skip_if_not_wired(not_wired_reason())
