"""Runs h2load (nghttp2-client) against a loopback URL over HTTP/2 and returns
its numbers in the shape run_wrk gives (wrk.py), for the h2* scenarios.

h2load runs one thread (-t1): on a 2-core machine the client shares the cores
with the server. `-c` clients (connections) each keep `-m` streams in flight;
`-D` measures for a duration after `--warm-up-time`. h2load reports the mean
and the spread of the request time, not percentiles: p50 is its mean and p99
its mean + 2 sd (marked as such in the row's note).
"""

import re
import shlex
import subprocess

from procs import LOOPBACK


def h2load_argv(url, duration, clients, streams, warmup=0):
    assert url.startswith((f"http://{LOOPBACK}:", f"https://{LOOPBACK}:")), \
        "h2load only ever targets loopback"
    argv = ["h2load", "-t1", f"-c{clients}", f"-m{streams}", f"-D{int(duration)}"]
    if warmup:
        argv.append(f"--warm-up-time={max(1, int(round(warmup)))}")
    return argv + [url]


UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _time_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def run_h2load(url, duration, clients, streams, warmup=0):
    """Returns (result dict, argv). Raises RuntimeError if h2load fails."""
    argv = h2load_argv(url, duration, clients, streams, warmup)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 60)
    out = p.stdout
    fin = re.search(r"finished in ([0-9.]+)s, ([0-9.]+) req/s, ([0-9.]+)([KMG]?B)/s", out)
    req = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    rt = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if not (fin and req and codes and p.returncode == 0):
        raise RuntimeError(f"h2load failed (exit {p.returncode}): {shlex.join(argv)}\n"
                           f"{out[-800:]}{p.stderr[-800:]}")
    scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}[fin.group(4)]
    mean = _time_us(rt.group(3)) if rt else None
    sd = _time_us(rt.group(4)) if rt else None
    non_2xx = int(codes.group(2)) + int(codes.group(3)) + int(codes.group(4))
    failed = int(req.group(4)) + int(req.group(5)) + int(req.group(6))
    res = {
        "requests": int(req.group(3)),
        "rps": float(fin.group(2)),
        "mb_per_s": float(fin.group(3)) * scale / 1e6,
        "latency_us": {"p50": mean, "p99": None if mean is None or sd is None else mean + 2 * sd},
        "errors": {"failed": failed, "status": non_2xx},
        "socket_errors": failed,
        "error_total": failed + non_2xx,
        "protocol": "h2" if "Application protocol: h2" in out else "?",
        "raw": out[-1200:],
    }
    return res, argv
