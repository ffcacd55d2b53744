"""Issue 16 (hardening), through the real binary: config readers and expansion
that must fail cleanly instead of crashing or hanging, uWSGI's log-format in an
ini, `--limit-post`, the uwsgi status line, `--show-config` escaping, and
accept() running out of file descriptors.

Each test names the item of the issue it pins; each failed before its fix.
"""

import re
import resource
import socket
import struct
import time

import pytest

from conftest import APPS, read_until_close
from httpraw import Conn, build
from test_config import fails, portico, show_config

ECHO = APPS / "uw_echo.py"
COUNTER_APP = APPS / "http_counter.py"
SEED_LOG_FORMAT = '%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size)'


# --- item 4: XML nesting ---------------------------------------------------------------


def test_item4_deeply_nested_xml_fails_with_file_line_and_limit_not_a_crash(tmp_path):
    deep = tmp_path / "deep.xml"
    deep.write_text("<uwsgi>\n" + "<a>\n" * 20_000 + "</a>" * 20_000 + "</uwsgi>\n")
    proc = portico("--xml", deep)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-500:])
    assert f"{deep}:65:1: expected at most 64 levels of nested elements" in proc.stderr
    # Never closed: the parser stops at the end of the file, cleanly.
    deep.write_text("<uwsgi>\n" + "<a>\n" * 20_000)
    proc = portico("--xml", deep)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-500:])
    assert f"{deep}:20002:1: expected a closing tag, found the end of the file" in proc.stderr


# --- item 5: expansion limits ----------------------------------------------------------


def test_item5_chained_placeholders_fail_fast_with_file_line_and_limit(tmp_path):
    lines = ["[uwsgi]", "set-placeholder = a0=xx"]
    lines += [f"set-placeholder = a{n}=%(a{n - 1})%(a{n - 1})" for n in range(1, 41)]
    ini = tmp_path / "chain.ini"
    ini.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    err = fails(ini)
    assert time.monotonic() - started < 5
    # a15 would be 2^16 bytes: line 17, one past the 64 KiB limit.
    assert f"{ini}:17: expanding %(...) makes the value longer than the limit of 65536 bytes" in err


def test_item5_at_file_reads_are_bounded(tmp_path):
    ini = tmp_path / "urandom.ini"
    ini.write_text("[uwsgi]\nenv = KEY=@(/dev/urandom)\n")
    started = time.monotonic()
    err = fails(ini)
    assert time.monotonic() - started < 5
    assert (
        f"{ini}:2: cannot read @(/dev/urandom): the file is larger than the limit of 65536 bytes"
        in err
    )


# --- item 6: log-format in an ini ------------------------------------------------------


def test_item6_seed_log_format_ini_runs_and_logs_in_that_format(portico_server, tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text(f"[uwsgi]\nwsgi-file = {ECHO}\nlog-format = {SEED_LOG_FORMAT}\n")
    server = portico_server(ini)
    with Conn.to(server) as conn:
        conn.send(build("GET", "/logged?x=1"))
        resp = conn.read_response()
    assert resp.status == 200
    size = len(resp.body)
    m = server.wait_for_line(r'^127\.0\.0\.1 - - \[(.+)\] "GET /logged\?x=1 HTTP/1\.1" 200 (\d+)$')
    # uWSGI's %(ltime): 01/Dec/2026:14:49:44 +0000
    assert re.fullmatch(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", m.group(1)), m.group(0)
    assert int(m.group(2)) >= size


# --- item 7: --limit-post --------------------------------------------------------------


@pytest.fixture
def counter(tmp_path):
    path = tmp_path / "calls.log"
    path.write_text("")
    return path


def test_item7_limit_post_refuses_a_larger_body_with_413_before_the_app(portico_server, counter):
    server = portico_server(
        "--wsgi-file", COUNTER_APP, "--env", f"HTTP_COUNTER_FILE={counter}", "--limit-post", "100"
    )
    with Conn.to(server, timeout=5) as conn:
        conn.send(build("POST", "/small", body=b"x" * 100))
        assert conn.read_response().status == 200
    # Announced over the limit, body not sent: 413 at once, never a 100 Continue.
    with Conn.to(server, timeout=5) as conn:
        conn.send(
            b"POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 101\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        resp = conn.read_response(skip_interim=False)
        assert resp.status == 413, resp
        assert conn.eof or conn.wait_closed(3)
    assert counter.read_text().splitlines() == ["POST /small 100"]
    server.wait_for_line(r"413 Content-Length 101 is over the limit of 100 bytes \(--limit-post\)")


def uwsgi_packet(pairs, body=b""):
    data = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
        for k, v in ((k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in pairs)
    )
    return struct.pack("<BHB", 0, len(data), 0) + data + body


def uwsgi_vars(method="GET", path="/", length="", protocol=b"HTTP/1.1"):
    return [
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", path),
        ("PATH_INFO", path),
        ("QUERY_STRING", ""),
        ("CONTENT_LENGTH", length),
        ("SERVER_PROTOCOL", protocol),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "localhost"),
    ]


def uwsgi_exchange(server, data):
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(data)
        return read_until_close(sock)


def test_item7_limit_post_on_the_uwsgi_protocol(portico_server, counter):
    server = portico_server(
        "--socket", "127.0.0.1:0", "--wsgi-file", COUNTER_APP,
        "--env", f"HTTP_COUNTER_FILE={counter}", "--limit-post", "100",
    )
    raw = uwsgi_exchange(server, uwsgi_packet(uwsgi_vars("POST", "/big", "101"), b"x" * 101))
    assert raw.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), raw[:200]
    raw = uwsgi_exchange(server, uwsgi_packet(uwsgi_vars("POST", "/small", "100"), b"x" * 100))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:200]
    assert counter.read_text().splitlines() == ["POST /small 100"]


# --- item 10: no injection through SERVER_PROTOCOL or --show-config --------------------


@pytest.mark.parametrize(
    "protocol, status_line",
    [
        (b"HTTP/1.1\r\nSet-Cookie: evil=1", b"HTTP/1.1 200 OK"),
        (b"HTTP/2.0", b"HTTP/1.1 200 OK"),
        (b"HTTP/1.0", b"HTTP/1.0 200 OK"),
        (b"HTTP/1.1", b"HTTP/1.1 200 OK"),
    ],
)
def test_item10_uwsgi_server_protocol_never_reaches_the_status_line(
    portico_server, protocol, status_line
):
    server = portico_server("--socket", "127.0.0.1:0", "--wsgi-file", ECHO)
    raw = uwsgi_exchange(server, uwsgi_packet(uwsgi_vars(protocol=protocol)))
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.split(b"\r\n")[0] == status_line, raw[:300]
    assert b"evil" not in head, head


def test_item10_show_config_escapes_newlines_and_reads_back_the_same(tmp_path):
    args = ["--env", "A=one\nmaster = true\r", "--env", " B=padded\t", "--http", ":0"]
    shown = show_config(*args)
    assert "\nmaster = true" not in shown, shown
    saved = tmp_path / "shown.ini"
    saved.write_text(shown)
    assert show_config("--ini", saved) == shown


# --- item 3: out of file descriptors ---------------------------------------------------

FD_LIMIT = 64


def test_item3_accept_out_of_fds_logs_once_per_episode_and_recovers(portico_server):
    server = portico_server("--wsgi-file", ECHO)
    resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    silent = []
    try:
        for _ in range(FD_LIMIT + 40):
            silent.append(server.connect(timeout=5))
        server.wait_for_line(r"accept\(\) on .* failed: Too many open files")
        first = len(server.lines)
        time.sleep(2)  # about 20 failed accepts at one try every 100 ms
        failures = [l for l in server.lines if "accept() on" in l and "failed" in l]
        assert len(failures) == 1, "\n".join(failures[:5])
        assert not any("accepting on" in l for l in server.lines[first:])
    finally:
        for sock in silent:
            sock.close()
    # Recovers by itself once descriptors are free again.
    deadline = time.monotonic() + 10
    while True:
        try:
            with Conn.to(server, timeout=2) as conn:
                conn.send(build("GET", "/after"))
                assert conn.read_response().status == 200
            break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    m = server.wait_for_line(r"accepting on .* again after (\d+) failed accept\(\) calls in [\d.]+ s")
    assert int(m.group(1)) >= 10, m.group(0)
