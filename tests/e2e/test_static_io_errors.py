"""Issue 16 item 3, through the real binary: an I/O error on a static file
that exists is never 404. Out of file descriptors (EMFILE) it is 503 with
Retry-After, logged once with the errno, and serving recovers by itself once
descriptors are free again; other errors are 500 (unit tests:
`statics::respond::tests`).

The worker runs under `prlimit --nofile=64:64`. Clients open keep-alive
connections one after another, each fetching a file too big for the content
cache (so every answer opens it) and staying open; the connection accepted
with the worker's last descriptor cannot open the file. Before the fix that
request got 404. Both ways of serving files are covered: `--static-map`
(uWSGI's) and `root` in an nginx.conf (`portico -c`).
"""

import shutil
import time

import pytest

from conftest import APPS, BIN, Server
from httpraw import Conn, build
from ports import free_port

FD_LIMIT = 64
BIG = 256 * 1024  # above the 64 KiB content cache: every answer opens the file
ERRNO_LINE = r'"[^"]*/big\.bin" failed \(24: Too many open files\)'


def start(style, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / "big.bin").write_bytes(b"b" * BIG)
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is missing"
    limit = [f"--nofile={FD_LIMIT}:{FD_LIMIT}", BIN]
    if style == "static-map":
        args = limit + [
            "--http", "127.0.0.1:0", "--wsgi-file", APPS / "uw_echo.py",
            "--static-map", f"/s={files}",
        ]
        path = "/s/big.bin"
    else:
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            "worker_processes 1;\nerror_log stderr;\nevents {}\n"
            f"http {{ access_log off; server {{ listen 127.0.0.1:{free_port()}; root {files}; }} }}\n"
        )
        args = limit + ["-p", f"{tmp_path}/", "-c", conf]
        path = "/big.bin"
    server = Server(args, binary=prlimit).wait_started()
    return server, path


@pytest.mark.parametrize("style", ["static-map", "nginx-root"])
def test_static_file_out_of_fds_is_503_logged_once_and_recovers(tmp_path, style):
    server, path = start(style, tmp_path)
    held = []
    try:
        check_exhaustion_and_recovery(server, path, style, held)
    finally:
        for conn in held:
            conn.close()
        server.stop()


def check_exhaustion_and_recovery(server, path, style, held):
    """Fill the worker's descriptors until a file request gets 503; then free them."""
    exhausted = None
    for n in range(FD_LIMIT + 1):
        conn = Conn.to(server, timeout=10)
        held.append(conn)
        assert conn.send(build("GET", path)), f"connection {n} closed"
        resp = conn.read_response()
        if resp.status == 503:
            exhausted = resp
            break
        assert resp.status == 200 and len(resp.body) == BIG, (n, resp.status)
    assert exhausted is not None, f"no 503 after {len(held)} connections:\n{server.log()}"
    assert len(held) > 10, "the limit was hit before the base descriptors were counted"
    assert exhausted.header("retry-after") == "1" or style == "nginx-root", exhausted.headers
    assert b"big.bin" not in exhausted.body, "an error page must not name the path"
    line = server.wait_for_line(ERRNO_LINE)
    if style == "static-map":
        assert "answered 503" in line.string, line.string
    else:  # nginx's error_log wording, with the request
        assert line.string.startswith("portico: open() "), line.string
        assert f'request: "GET {path} HTTP/1.1"' in line.string, line.string
    assert len([l for l in server.lines if "big.bin" in l and "failed" in l]) == 1, server.log()
    for conn in held:
        conn.close()
    # Recovers by itself: once the connections are gone the file is served again.
    deadline = time.monotonic() + 10
    while True:
        with Conn.to(server, timeout=5) as conn:
            conn.send(build("GET", path))
            resp = conn.read_response()
        if resp.status == 200:
            break
        assert time.monotonic() < deadline, f"still {resp.status} after the connections closed"
        time.sleep(0.1)
    assert len(resp.body) == BIG
