"""bench/bench.py — Portico side by side with Granian, uWSGI, gunicorn, nginx.

Run it through bench/run (which installs nginx, wrk and bench/.venv first):

    bench/run                      # every scenario, defaults
    bench/run hello --duration 2   # one scenario
    bench/run --list               # the scenarios
    bench/run --smoke              # every scenario, 1 s each (CI)

Builds Portico (scripts/release-build.sh: cargo build --release with the
PGO profile), runs the scenarios one at a time, prints one table on stdout, writes bench/results/latest.json (plus a dated
copy) and bench/results/ratios.png. Exit code: 0 when every row ran or was
"unsupported"; 2 when a row FAILed (a server did not start or answer right,
or Portico did not build); 1 (a traceback) when the harness itself broke.
"""

import argparse
import datetime
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

from scenarios import DESCRIPTIONS, ORDER  # noqa: E402

NOTES = [
    "Same app files, same worker count (--workers) for every server; access logs off; "
    "Python servers run 1 Python thread per worker except gunicorn-gthread (--threads 4).",
    "Keep-alive is on for every server that has it. gunicorn's sync worker closes the "
    "connection after each response (that is how it works), so wrk reconnects per request. "
    "uWSGI has two rows: 'uwsgi' (--http11-socket, keep-alive; a busy worker stays on one "
    "connection, so new clients may wait: see 'new conn') and 'uwsgi-close' (--http-socket, "
    "which closes after each response; --add-header 'Connection: close' makes it say so, "
    "otherwise wrk counts every close as a read error).",
    "wrk counts as errors: socket errors (connect/read/write/timeout) and responses with "
    "status >= 400; each stack's first answer is checked to be 200 with the right body.",
    "Client and servers share the same cores (loopback); wrk runs with -t1 so it takes one "
    "core at most. Results on a shared, noisy machine vary by several percent run to run.",
    "uwsgi-nginx: nginx opens a new upstream connection per request (the uwsgi protocol "
    "closes after each response); peak RSS there is nginx plus the backend.",
    "nginx is given keepalive_requests 100000 (its default of 1000 would make it reconnect).",
    "CPU/req and cs/req: /proc snapshots of every server tree right before and right after "
    "the measuring wrk run; CPU = utime+stime+cutime+cstime summed over the tree (a process "
    "that exits and is reaped inside the tree hands its time to its parent, so nothing is "
    "lost; one that appears during the run starts from zero); context switches = voluntary+"
    "involuntary of every live thread (threads new in the window count from zero; a thread "
    "that ends inside the window loses its count). Divided by wrk's completed requests plus "
    "the answered fresh-connection probes. For stacks of two servers it is their sum; each "
    "server's share is in the JSON (cpu.by_server).",
    "close: wrk sends 'Connection: close' with every request; every server closes after "
    "the response (uWSGI's --http-socket says so with --add-header 'Connection: close').",
    "conf-static-*, stack: one generated nginx.conf per scenario, served as it is by nginx "
    "and by `portico -c`; a copy is in the logs dir and its text in the JSON (nginx_conf). "
    "stack: nginx + uwsgi --socket over a unix socket (--chmod-socket=666 so nginx's "
    "workers can connect) vs one Portico whose uwsgi_pass names its own --socket.",
    "Every uWSGI behind nginx runs with --listen 1024 (Portico's default listen queue; "
    "uWSGI's is 100): nginx opens an upstream connection per request, and on a unix socket "
    "a full queue makes nginx answer 502.",
]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios:\n" + "\n".join(f"  {k:15s} {v}" for k, v in DESCRIPTIONS.items()))
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help="scenarios to run (default: all)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes for every server (default: cores = %(default)s)")
    p.add_argument("--duration", type=int, default=None,
                   help="seconds of measurement per server (whole seconds; default 10)")
    p.add_argument("--connections", type=int, default=None,
                   help="wrk connections (default 64)")
    p.add_argument("--warmup", type=float, default=None,
                   help="warm-up seconds before measuring (default: min(2, duration/5), at least 0.5)")
    p.add_argument("--wrk-threads", type=int, default=1,
                   help="wrk threads (default 1: the client shares the cores with the server)")
    p.add_argument("--startup-runs", type=int, default=None,
                   help="start-ups timed per server in 'startup' (median; default 3)")
    p.add_argument("--idle-connections", type=int, default=None,
                   help="idle keep-alive connections opened per server in 'idle-conns' (default 8000)")
    p.add_argument("--smoke", action="store_true",
                   help="CI mode: duration 1, warm-up 0.5, 16 connections, 1 start-up run")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every scenario N times, its servers alternating, and keep each "
                        "server's median round (bench/rounds.py; default 1)")
    p.add_argument("--no-build", action="store_true",
                   help="don't run cargo build; use target/release/portico as it is")
    p.add_argument("--results", default=os.path.join(BENCH_DIR, "results"),
                   help="where latest.json, the dated copy, ratios.png and logs go")
    a = p.parse_args(argv)
    if a.smoke:
        a.duration = a.duration or 1
        a.warmup = 0.5 if a.warmup is None else a.warmup
        a.connections = a.connections or 16
        a.startup_runs = a.startup_runs or 1
        a.idle_connections = a.idle_connections or 500
    a.duration = a.duration or 10
    a.connections = a.connections or 64
    a.startup_runs = a.startup_runs or 3
    a.idle_connections = a.idle_connections or 8000
    if a.warmup is None:
        a.warmup = max(0.5, min(2.0, a.duration / 5))
    if a.duration < 1 or a.workers < 1 or a.connections < 1 or a.rounds < 1:
        p.error("--duration, --workers, --connections and --rounds must be >= 1")
    unknown = [s for s in a.scenarios if s not in DESCRIPTIONS]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}; try --list")
    return a


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        out = (p.stdout + p.stderr).strip().splitlines()
        return out[0] if out else None
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable: {e}"


def versions(portico):
    import servers as S
    return {
        "portico": portico.version or portico.problem,
        "nginx": _version([S.nginx_binary(), "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "granian": _version([S.venv_tool("granian"), "--version"]),
        "uwsgi": _version([S.venv_tool("uwsgi"), "--version"]),
        "gunicorn": _version([S.venv_tool("gunicorn"), "--version"]),
        "flask": _version([sys.executable, "-c", "import flask,importlib.metadata as m;"
                           "print(m.version('flask'))"]),
        "python": sys.version.split()[0] + " (" + sys.executable + ")",
    }


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.list:
        for k, v in DESCRIPTIONS.items():
            print(f"{k:15s} {v}")
        return 0

    import report
    import servers as S
    from portico import Portico
    import rounds
    from scenarios import run_scenario

    # a SIGTERM ends the run like Ctrl-C: the finally blocks stop every server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    todo = opts.scenarios or ORDER
    now = datetime.datetime.now().astimezone()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    logdir = os.path.join(opts.results, "logs", stamp)
    os.makedirs(logdir, exist_ok=True)
    say = lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True)

    say(f"building portico (scripts/release-build.sh; log {logdir}/cargo-build.log)"
        if not opts.no_build else "using the existing portico binary (--no-build)")
    portico = Portico().build(logdir, skip=opts.no_build)
    if portico.problem:
        say(f"portico: {portico.problem} — its rows will say so; the peers still run")

    rows = []
    with tempfile.TemporaryDirectory(prefix="portico-bench-") as tmp:
        opts.tmpdir = tmp
        ctx = S.Ctx(opts.workers, tmp, logdir, portico.bin)
        for scen in todo:
            say(f"scenario {scen}: {DESCRIPTIONS[scen]}")

            def one_round(i, scen=scen):
                if opts.rounds > 1:
                    say(f" round {i + 1} of {opts.rounds}")
                out = run_scenario(scen, ctx, opts, portico)
                for row in out:
                    shown = row["status"] if row["status"] != "ok" else ""
                    v = row.get("value")
                    say(f"  {row['server']:17s} "
                        + (f"{v:12,.2f} {row['unit']}" if v is not None else f"{'-':>12}")
                        + f" {shown}")
                return out

            rows.extend(rounds.run(one_round, opts.rounds))

    report.compute_ratios(rows, todo)
    png = os.path.join(opts.results, "ratios.png")
    chart_err = report.chart(rows, png, subtitle=(
        f"{now:%Y-%m-%d %H:%M} · {cpu_model()} · {os.cpu_count()} cores · "
        f"{opts.workers} workers · {opts.duration}s × {opts.connections} conns"
        + (" · smoke" if opts.smoke else "")))

    doc = {
        "date": now.isoformat(timespec="seconds"),
        "cpu_model": cpu_model(), "cores": os.cpu_count(),
        "kernel": platform.release(),
        "settings": {"workers": opts.workers, "duration_s": opts.duration,
                     "warmup_s": opts.warmup, "connections": opts.connections,
                     "wrk_threads": opts.wrk_threads, "smoke": opts.smoke,
                     "startup_runs": opts.startup_runs, "rounds": opts.rounds},
        "bench_command": shlex.join(["bench/run"] + (sys.argv[1:] if argv is None else argv)),
        "versions": versions(portico),
        "portico_build": {"problem": portico.problem, "log": portico.build_log,
                          "binary": portico.bin},
        "server_env": {k: ctx.env.get(k) for k in ("PYTHONPATH", "VIRTUAL_ENV")},
        "ratio_definition": report.HEADER_NOTE,
        "notes": NOTES,
        "chart": png if chart_err is None else None,
        "chart_error": chart_err,
        "results": rows,
    }
    latest, dated = report.write_json(doc, opts.results, stamp)

    print(f"Portico bench — {doc['date']} — {doc['cpu_model']}, {doc['cores']} cores; "
          f"workers={opts.workers} duration={opts.duration}s warm-up={opts.warmup:g}s "
          f"connections={opts.connections} wrk -t{opts.wrk_threads}"
          + (f" rounds={opts.rounds} (median of each server)" if opts.rounds > 1 else ""))
    print(report.HEADER_NOTE)
    print()
    print(report.table(rows))
    print()
    print("Notes:")
    for r in rows:
        if r.get("note"):
            print(f"  [{r['scenario']} / {r['server']}] {r['note']}")
    for n in NOTES:
        print(f"  - {n}")
    print()
    print("Command lines:")
    for r in rows:
        for c in r["commands"]:
            print(f"  [{r['scenario']} / {r['server']}] {c}")
        if r.get("wrk_command"):
            print(f"  [{r['scenario']} / {r['server']}] {r['wrk_command']}")
    print()
    print(f"JSON: {latest} (and {dated})")
    print(f"chart: {png}" if chart_err is None else f"chart: NOT written — {chart_err}")
    print(f"server logs: {logdir}")

    failed = [r for r in rows if r["status"] == "FAIL"]
    if failed:
        say(f"{len(failed)} row(s) FAILED: " + ", ".join(
            f"{r['scenario']}/{r['server']}" for r in failed))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
