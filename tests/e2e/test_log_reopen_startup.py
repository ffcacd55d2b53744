"""A log reopen asked for while a worker is still starting up reaches it.

The master sends its workers SIGUSR2 to reopen their logs (`--touch-logreopen`
here; nginx's `-s reopen` / SIGUSR1 the same way). A worker still loading its
app has no runtime listening for the signal yet; it used to ignore it there
and keep writing to the rotated file for good (test_nginx_reopen.py timed out
on a loaded machine, where a worker was slow to start). Now the signal is
remembered from the fork on and acted on once the worker serves. The worker
is held in its start-up by its app's import (--lazy-apps, apps/load_gate.py),
which waits for a file the test creates after the reopen.
"""

import os
import re
import time

import requests

from conftest import APPS, Server, wait_until


def test_touch_logreopen_reaches_a_worker_still_loading_its_app(tmp_path):
    log, rotated = tmp_path / "portico.log", tmp_path / "portico.log.1"
    trigger, gate = tmp_path / "reopen", tmp_path / "gate"
    trigger.write_text("")
    server = Server(["--http", "127.0.0.1:0", "--wsgi-file", APPS / "load_gate.py",
                     "--lazy-apps", "--master", "--processes", "1", "--logto", log,
                     "--touch-logreopen", trigger, "--env", f"LOAD_GATE={gate}"])
    try:
        text = lambda path: path.read_text() if path.exists() else ""  # noqa: E731
        port = int(wait_until(lambda: re.search(r"bound to TCP address 127\.0\.0\.1:(\d+)",
                                                text(log)), what="the bound line").group(1))
        wait_until(lambda: "spawned uWSGI worker 1" in text(log), what="the worker")
        assert "ready to serve" not in text(log), text(log)  # held in its import
        log.rename(rotated)
        os.utime(trigger, (time.time() + 5, time.time() + 5))
        wait_until(lambda: "reopening log" in text(log), what="the master's reopen line")
        assert "ready to serve" not in text(log) + text(rotated)  # still held
        gate.write_text("")
        url = f"http://127.0.0.1:{port}/after"
        assert requests.get(url, timeout=30).text == "loaded\n"
        wait_until(lambda: "GET /after" in text(log) + text(rotated), what="the request line")
        assert "GET /after" in text(log), "the worker kept the rotated file:\n" + text(rotated)
        assert server.proc.poll() is None
    finally:
        server.stop()
