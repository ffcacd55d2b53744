"""The command line: --version, --help, usage errors, the start-up banner,
the access log, listeners (--http, --http-socket, ADDR forms) and --threads.
"""

import http.client
import json
import os
import re
import socket
import threading
import tomllib
from pathlib import Path

import pytest

from conftest import APPS, EXAMPLES, ROOT

HELLO = EXAMPLES / "hello.py"
HELLO_BODY = b"Hello, World!\n"


def cargo_version():
    """The version the binary must report: the portico crate's, or the workspace's."""
    crate = tomllib.loads((ROOT / "crates" / "portico" / "Cargo.toml").read_text())
    version = crate["package"]["version"]
    if isinstance(version, dict):  # version.workspace = true
        version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    return version


def get(host, port, path="/", timeout=10.0):
    """GET http://host:port/path with a fresh connection; return (status, headers, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def output(proc):
    return proc.stdout.decode("utf-8", "replace")


# --- --version / --help ---------------------------------------------------------


def test_version_prints_the_crate_version_and_python_and_exits_0(run_portico):
    proc = run_portico("--version")
    out = output(proc)
    assert proc.returncode == 0, out
    assert re.search(rf"\bportico {re.escape(cargo_version())}\b", out), out
    assert re.search(r"Python 3\.\d+", out), f"no Python version in --version output:\n{out}"


HELP_OPTIONS = [
    "--http",
    "--http-socket",
    "--wsgi-file",
    "--file",
    "--module",
    "-w",
    "--wsgi",
    "--callable",
    "--pythonpath",
    "--chdir",
    "--virtualenv",
    "--home",
    "-H",
    "--env",
    "--threads",
    "--version",
    "--help",
]


def test_help_lists_every_option_and_exits_0(run_portico):
    proc = run_portico("--help")
    out = output(proc)
    assert proc.returncode == 0, out
    assert re.search(r"(?i)usage", out), out
    missing = [
        opt for opt in HELP_OPTIONS if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", out)
    ]
    assert not missing, f"--help does not list {missing}:\n{out}"


# --- usage errors -------------------------------------------------------------------


def test_unknown_option_exits_1_naming_it_with_a_did_you_mean(run_portico):
    proc = run_portico("--http", "127.0.0.1:0", "--wsgi-file", HELLO, "--pythonpth", "/tmp")
    out = output(proc)
    assert proc.returncode == 1, out
    assert "unknown option" in out, out
    assert "--pythonpth" in out, out
    assert re.search(r"(?i)did you mean[^\n]*\bpythonpath\b", out), out
    assert "ready to serve" not in out, out


def test_unknown_option_far_from_any_exits_1_naming_it(run_portico):
    proc = run_portico("--wsgi-file", HELLO, "--zzqqxx-not-an-option")
    out = output(proc)
    assert proc.returncode == 1, out
    assert "--zzqqxx-not-an-option" in out, out
    assert "ready to serve" not in out, out


@pytest.mark.parametrize("option", ["--http", "--wsgi-file", "--chdir", "--env"])
def test_option_missing_its_value_exits_1_naming_it(run_portico, option):
    args = ["--http", "127.0.0.1:0", "--wsgi-file", HELLO] if option != "--http" else ["--wsgi-file", HELLO]
    proc = run_portico(*args, option)
    out = output(proc)
    assert proc.returncode == 1, out
    name = re.escape(option.lstrip("-"))
    assert re.search(rf"(--|[\"'`]){name}\b", out), f"the error does not name {option}:\n{out}"
    assert "ready to serve" not in out, out


# --- banner and log -------------------------------------------------------------------


def test_banner_shows_version_python_version_and_path_listener_and_app(portico_server):
    report = APPS / "load_report.py"
    server = portico_server("--wsgi-file", report)
    status, _, body = get(server.host, server.port)
    assert status == 200, body
    facts = json.loads(body)

    ready = next(i for i, line in enumerate(server.lines) if "ready to serve" in line)
    banner = "\n".join(server.lines[: ready + 1])

    assert f"portico {cargo_version()}" in banner, banner
    # The Python version the app really runs on is the one the banner announces.
    assert facts["python_version"] in banner, (facts["python_version"], banner)
    # The banner names the interpreter by a real path inside the installation the
    # app runs on (its executable, libpython or prefix), not some other Python.
    roots = {os.path.realpath(facts["base_prefix"]), os.path.realpath(facts["prefix"])}
    paths = [p.rstrip(".,;:)]'\"") for p in re.findall(r"/[^\s'\"(),]+", banner)]
    pythons = [p for p in paths if "python" in p.lower() and os.path.exists(p)]
    assert pythons, f"no existing interpreter path in the banner:\n{banner}"
    assert any(
        os.path.realpath(p).startswith(tuple(roots)) or p.startswith(tuple(roots)) for p in pythons
    ), f"banner paths {pythons} are not inside the running interpreter's prefix {roots}"
    # the listener and the app
    assert f"127.0.0.1:{server.port}" in banner, banner
    assert "load_report.py" in banner, banner


ACCESS_RE = re.compile(
    r"\[pid: (\d+)\|app: 0\|req: (\d+)/(\d+)\] (\S+) \(\) \{(\d+) vars in (\d+) bytes\} "
    r"\[[^\]]+\] (\S+) (\S+) => generated (\d+) bytes in (\d+) msecs "
    r"\((HTTP/1\.[01]) (\d{3})\) (\d+) headers in (\d+) bytes \(1 switches on core 0\)"
)


def test_access_log_has_one_uwsgi_shaped_line_per_request(portico_server):
    server = portico_server("--wsgi-file", HELLO)
    uris = ("/first", "/second?x=1")
    for uri in uris:
        status, _, body = get(server.host, server.port, uri)
        assert (status, body) == (200, HELLO_BODY)
    for uri in uris:
        server.wait_for_line(rf"GET {re.escape(uri)} =>")
    matches = [m for m in map(ACCESS_RE.search, server.lines) if m]
    assert len(matches) == 2, server.log()
    by_uri = {m.group(8): m for m in matches}
    assert set(by_uri) == set(uris), server.log()
    # Each request counted once. (Which one is logged first is a race: the log
    # line may be written after the response reached the client.)
    assert sorted(int(m.group(2)) for m in matches) == [1, 2], server.log()
    for uri in uris:
        m = by_uri[uri]
        assert int(m.group(1)) == server.proc.pid, m.group(0)
        assert m.group(2) == m.group(3), m.group(0)
        assert m.group(4) == "127.0.0.1", m.group(0)
        assert m.group(7) == "GET", m.group(0)
        assert int(m.group(9)) == len(HELLO_BODY), m.group(0)
        assert (m.group(11), m.group(12)) == ("HTTP/1.1", "200"), m.group(0)


# --- listeners ---------------------------------------------------------------------------


def test_two_http_listeners_both_answer(portico_server):
    server = portico_server("--http", "127.0.0.1:0", "--http", "127.0.0.1:0", "--wsgi-file", HELLO)
    assert len(server.addresses) == 2, server.log()
    assert server.addresses[0][1] != server.addresses[1][1]
    for host, port in server.addresses:
        status, _, body = get(host, port)
        assert (status, body) == (200, HELLO_BODY), (host, port)


def test_http_socket_listener_answers_http(portico_server):
    server = portico_server("--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO)
    status, _, body = get(server.host, server.port)
    assert (status, body) == (200, HELLO_BODY)


def test_http_and_http_socket_listeners_together_both_answer(portico_server):
    server = portico_server(
        "--http-socket", "127.0.0.1:0", "--http", "127.0.0.1:0", "--wsgi-file", HELLO
    )
    assert len(server.addresses) == 2, server.log()
    for host, port in server.addresses:
        status, _, body = get(host, port)
        assert (status, body) == (200, HELLO_BODY), (host, port)


@pytest.mark.parametrize("option", ["--http", "--http-socket"])
def test_colon_port_binds_all_interfaces(portico_server, option):
    server = portico_server(option, ":0", "--wsgi-file", HELLO)
    assert server.bound[0][0] in ("", "*", "0.0.0.0", "::"), server.log()
    port = server.port
    status, _, body = get("127.0.0.1", port)
    assert (status, body) == (200, HELLO_BODY)
    # 127.0.0.2 is loopback too on Linux, but only a wildcard bind accepts it:
    # a listener bound to 127.0.0.1 alone refuses this connection.
    status, _, body = get("127.0.0.2", port)
    assert (status, body) == (200, HELLO_BODY)


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_bracketed_address_binds_and_answers(portico_server):
    server = portico_server("--http", "[::1]:0", "--wsgi-file", HELLO)
    assert server.bound[0][0] == "::1", server.log()
    assert re.search(rf"bound to TCP address \[::1\]:{server.port}\b", server.log()), server.log()
    status, _, body = get("::1", server.port)
    assert (status, body) == (200, HELLO_BODY)


# --- --threads ---------------------------------------------------------------------------------


def test_threads_2_runs_two_requests_at_once(portico_server):
    server = portico_server("--threads", "2", "--wsgi-file", APPS / "load_barrier.py")
    results = [None, None]

    def hit(i):
        results[i] = get(server.host, server.port, f"/{i}", timeout=20)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [(r[0], r[2]) if r else None for r in results] == [(200, b"met\n")] * 2, server.log()


# --- what a new user trips on (issue 12) ------------------------------------------------


@pytest.mark.parametrize(
    "app_args, callable_name",
    [
        (["--module", "load_callables:alt_app"], "alt_app"),
        (["--module", "load_callables"], "application"),
        (["--module", "load_callables", "--callable", "alt_app"], "alt_app"),
        (["--wsgi-file", APPS / "load_callables.py"], "application"),
    ],
    ids=["module-colon-name", "module-default", "callable-option", "wsgi-file"],
)
def test_banner_names_the_callable_really_loaded(portico_server, app_args, callable_name):
    server = portico_server("--pythonpath", APPS, *app_args)
    line = server.wait_for_line(r"WSGI app 0 .*\(callable: ([^)]*)\)")
    assert line.group(1) == callable_name, server.log()
    status, _, body = get(server.host, server.port)
    assert status == 200 and callable_name.encode() in body, (status, body, server.log())


def test_no_listener_error_names_every_listener_option(run_portico):
    proc = run_portico("--wsgi-file", HELLO)
    out = output(proc)
    assert proc.returncode == 1, out
    assert "no listener" in out, out
    for option in ("--http", "--http-socket", "--socket"):
        assert re.search(rf"{option}\b(?!-)", out), f"{option} not named:\n{out}"


def test_static_map_is_logged_once_by_the_master_not_per_worker(portico_server, tmp_path):
    server = portico_server(
        "--master", "--processes", "3", "--wsgi-file", HELLO, "--static-map", f"/s={tmp_path}"
    )
    # a worker builds its handler (where the maps were logged) before it is ready
    for worker in range(1, 4):
        server.wait_for_line(rf"portico worker {worker} is ready to serve")
    maps = [line for line in server.lines if re.search(r"static-map /s -> ", line)]
    assert len(maps) == 1, server.log()


def test_venv_of_another_python_version_is_refused_naming_both_versions(run_portico, tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/bin/true")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.99.0\n")
    proc = run_portico("--http", "127.0.0.1:0", "--wsgi-file", HELLO, "--virtualenv", venv)
    out = output(proc)
    assert proc.returncode == 1, out
    assert "made with Python 3.99" in out, out
    assert re.search(r"embeds Python 3\.\d+", out), out
    assert "ready to serve" not in out, out
