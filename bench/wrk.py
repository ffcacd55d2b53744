"""Runs wrk against a loopback URL and returns its numbers as a dict.

wrk runs with one thread (-t1 by default): on a 2-core machine the client
shares the cores with the server, and a second wrk thread would take CPU
from the server under test. wrk_report.lua prints one "WRK_JSON {...}" line
from wrk's done() hook with latency percentiles (µs) and error counts.
"""

import json
import math
import os
import shlex
import signal
import subprocess

from procs import LOOPBACK

LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_report.lua")


def wrk_argv(url, duration, connections, threads, timeout_s=4, headers=()):
    assert url.startswith((f"http://{LOOPBACK}:", f"https://{LOOPBACK}:")), \
        "wrk only ever targets loopback"
    # wrk takes whole seconds only
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s",
            "--timeout", f"{timeout_s}s"]
    for h in headers:
        argv += ["-H", h]
    return argv + ["-s", LUA, url]


def warm_up(url, seconds, connections, threads, headers=()):
    """Load the server for `seconds` (may be fractional) and drop the numbers.

    wrk's -d takes whole seconds, so wrk runs with the next whole second and
    is stopped with SIGINT (wrk's own "stop now") after `seconds`."""
    if seconds <= 0:
        return None
    argv = wrk_argv(url, math.ceil(seconds), connections, threads, headers=headers)
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return argv


def run_wrk(url, duration, connections, threads, headers=()):
    """Returns (result dict, argv); duration in whole seconds; headers are
    extra request headers ("Name: value"). Raises RuntimeError if wrk fails."""
    argv = wrk_argv(url, duration, connections, threads, headers=headers)
    p = subprocess.run(argv, capture_output=True, text=True,
                       timeout=duration + 60)
    for line in p.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            res = json.loads(line[len("WRK_JSON "):])
            secs = res["duration_us"] / 1e6 or 1e-9
            e = res["errors"]
            res["rps"] = res["requests"] / secs
            res["mb_per_s"] = res["bytes"] / secs / 1e6
            res["socket_errors"] = e["connect"] + e["read"] + e["write"] + e["timeout"]
            res["error_total"] = res["socket_errors"] + e["status"]
            return res, argv
    raise RuntimeError(
        f"wrk failed (exit {p.returncode}): {shlex.join(argv)}\n"
        f"{p.stdout[-800:]}{p.stderr[-800:]}")
