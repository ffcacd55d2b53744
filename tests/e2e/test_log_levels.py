"""Diagnostic lines through the real binary: `--log-level` filters them,
`--log-json` writes them as JSON objects, and the request log line stays
as it is either way."""

import json
import socket
import time

from ports import free_port

APP = "def application(environ, start_response):\n" \
      "    start_response('200 OK', [('Content-Type', 'text/plain')])\n" \
      "    return [b'hi']\n"


def start_quiet(portico_server, tmp_path, *flags):
    """A server on a known port (its 'bound' lines may be filtered out),
    after one answered request."""
    app = tmp_path / "app.py"
    app.write_text(APP)
    port = free_port()
    server = portico_server("--http", f"127.0.0.1:{port}", "--wsgi-file", app, *flags,
                            wait=False)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /probe HTTP/1.0\r\n\r\n")
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
            if reply.startswith(b"HTTP/1.1 200") or reply.startswith(b"HTTP/1.0 200"):
                return server
        except OSError:
            pass
        assert time.monotonic() < deadline, "no answer:\n" + server.log()
        time.sleep(0.1)


def test_log_level_warn_drops_lifecycle_lines_but_keeps_the_request_line(portico_server, tmp_path):
    server = start_quiet(portico_server, tmp_path, "--log-level", "warn")
    server.wait_for_line(r"GET /probe ")
    log = server.log()
    assert "ready to serve" not in log, log
    assert "Python version" not in log, log


def test_log_level_info_is_the_default_and_keeps_uwsgi_lines(portico_server, tmp_path):
    server = start_quiet(portico_server, tmp_path)
    server.wait_for_line(r"GET /probe ")
    assert "*** portico is ready to serve" in server.log()


def test_log_json_writes_diagnostics_as_objects_and_the_request_line_as_before(
        portico_server, tmp_path):
    server = start_quiet(portico_server, tmp_path, "--log-json")
    request = server.wait_for_line(r"GET /probe ").string
    assert not request.startswith("{"), request
    objects = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            objects.append(json.loads(line))
    spawned = [o for o in objects if "portico is ready to serve" in o["message"]]
    assert spawned, server.log()
    assert spawned[0]["level"] == "info" and spawned[0]["target"] == "portico"
    assert isinstance(spawned[0]["time"], float)


def test_an_unknown_log_level_is_refused_with_the_levels(tmp_path):
    import subprocess
    from conftest import BIN, binary_env
    proc = subprocess.run([str(BIN), "--log-level", "loud", "--show-config"],
                          capture_output=True, text=True, env=binary_env(None), timeout=30)
    assert proc.returncode == 1
    assert '"loud" is not error, warn, info or debug' in proc.stderr, proc.stderr
