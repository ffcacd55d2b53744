"""The bench scenarios. Each returns rows (dicts) for the results table.

Throughput scenarios (hello, flask, close, uwsgi-nginx, static-4k,
static-1m, conf-static-4k, conf-static-1m, stack, proxy-*, nginx-return)
start one stack at a time on a free loopback port, check that it answers 200 with the
right body, warm it up with wrk, then measure with wrk while sampling the
RSS of the server trees every 200 ms, and stop it. The CPU time and the
context switches of the server trees are read from /proc right before and
right after the measuring wrk run (procs.TreeUsage) and divided by the
requests answered in between. idle-rss and startup start the hello stacks
and measure memory at rest and time to the first 200 answer.
"""

import gzip
import json
import os
import shlex
import urllib.request
import statistics
import time

import procs
import servers as S
from procs import Prober, RssSampler, TreeUsage, http_get, tree_rss_kib, wait_ready
from h2load import run_h2load
from wrk import run_wrk, warm_up

DESCRIPTIONS = {
    "hello": "WSGI hello world (apps/hello.py) over HTTP, keep-alive",
    "flask": "Flask jsonify route /json (apps/flask_app.py) over HTTP",
    "close": 'hello over HTTP, "Connection: close" on every request',
    "uwsgi-nginx": "nginx uwsgi_pass -> portico --socket vs uwsgi --socket (hello app)",
    "static-4k": "a 4 KiB static file: portico --static-map vs nginx (sendfile on)",
    "static-1m": "a 1 MiB static file: portico --static-map vs nginx; MB/s too",
    "conf-static-4k": "a 4 KiB static file, one nginx.conf: portico -c vs nginx",
    "conf-static-1m": "a 1 MiB static file, one nginx.conf: portico -c vs nginx; MB/s too",
    "gzip-json": "a 100 KiB JSON file gzipped at level 1, one nginx.conf: portico -c vs nginx",
    "stack": "the seeds' stack: one portico -c (app in process) vs nginx + uwsgi (unix socket)",
    "proxy-ka": "proxy_pass to one Granian (hello), upstream keepalive: portico -c vs nginx",
    "proxy-noka": "proxy_pass to one Granian (hello), a connection per request: portico -c vs nginx",
    "proxy-lc": "proxy_pass, least_conn over three Granians (hello), keepalive: portico -c vs nginx",
    "h2c-static-4k": "a 4 KiB static file over HTTP/2 (h2c, h2load), one nginx.conf: portico -c vs nginx",
    "h2-static-4k": "a 4 KiB static file over HTTP/2 on TLS (ALPN h2, h2load), one nginx.conf: portico -c vs nginx",
    "h2c-stack": "the seeds' stack over HTTP/2 (h2c, h2load): portico -c (app in process) vs nginx + uwsgi",
    "nginx-return": 'nginx return 200 "Hello, World!": the machine\'s ceiling',
    "https-hello": "hello over HTTPS (TLS 1.3, keep-alive): portico --https, granian --ssl, "
                   "portico -c vs nginx + uwsgi on one nginx.conf with listen ssl",
    "https-static-4k": "a 4 KiB static file over HTTPS, one nginx.conf (listen ssl): "
                       "portico -c vs nginx",
    "h2-hello": "hello over HTTP/2 on TLS (ALPN h2, h2load): portico --https --http2, "
                "granian --http 2 --ssl, portico -c vs nginx + uwsgi on listen ssl http2",
    "idle-rss": "RSS of the whole server tree at rest, per worker (lower is better)",
    "idle-conns": "memory per idle keep-alive connection, 8,000 of them: portico vs nginx (lower is better)",
    "startup": "time from exec to the first 200 on the hello app (lower is better)",
}
ORDER = list(DESCRIPTIONS)


def _row(scen, stack, opts):
    row = {
        "scenario": scen, "server": stack.name, "is_portico": stack.is_portico,
        "status": "ok", "note": "", "value": None, "unit": None,
        "commands": stack.command_lines(), "url": stack.url,
        "workers": opts.workers,
    }
    if stack.conf:
        with open(stack.conf) as f:
            row["nginx_conf"] = f.read()
    return row


def _portico_gate(row, stack, portico):
    """Fills row and returns False if Portico can't run this stack."""
    if not stack.is_portico:
        return True
    why = portico.unusable_reason(stack.needs_portico)
    if why is None:
        if stack.portico_conf is None:
            return True
        gate = portico.conf_gate(stack.portico_conf)
        if gate is None:
            return True
        row["status"], row["note"] = gate
        return False
    row["status"] = why if why.startswith("unsupported") else "unavailable"
    row["note"] = why
    if "failed" in why:
        row["status"] = "FAIL"
    return False


NOT_WIRED = "not wired yet"


def _usage(stack):
    """One TreeUsage snapshot per server of the stack, by name."""
    return {s.name: TreeUsage([s.pid]) for s in stack.servers}


def _cpu_fields(before, after, requests):
    """The CPU-per-request and context-switches-per-request fields of a row:
    the whole stack's, and each server's under "cpu"."""
    per = {name: after[name].since(before[name]) for name in before}
    cpu_s = sum(u["cpu_s"] for u in per.values())
    switches = sum(u["ctx_switches"] for u in per.values())
    for u in per.values():
        u["cpu_us_per_req"] = u["cpu_s"] * 1e6 / requests if requests else None
        u["ctx_switches_per_req"] = u["ctx_switches"] / requests if requests else None
    return {
        "cpu_us_per_req": cpu_s * 1e6 / requests if requests else None,
        "ctx_switches_per_req": switches / requests if requests else None,
        "cpu": {"cpu_s": cpu_s, "ctx_switches": switches, "requests": requests,
                "clk_tck": procs.CLK_TCK, "by_server": per},
    }


def _check_answer(stack, status, body):
    if status != 200:
        return f"answered {status}"
    if stack.expect is not None:
        exact = getattr(stack, "exact", False)
        ok = body == stack.expect if exact else body.startswith(stack.expect)
        if not ok:
            return f"unexpected body ({len(body)} bytes): {body[:60]!r}"
    return None


def _check_gzip(stack):
    """gzip-json: with Accept-Encoding: gzip the answer is gzipped and decodes
    to the file (so both servers really compress what wrk asks for)."""
    req = urllib.request.Request(stack.url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=2) as r:
        coding, data = r.headers.get("Content-Encoding"), r.read()
    if coding != "gzip":
        return f"not gzipped (Content-Encoding {coding!r})"
    if gzip.decompress(data) != stack.expect:
        return "the gzipped body does not decode to the file"
    return None


def _getter(stack):
    """How the stack is checked and probed: over HTTP/2 if it speaks only that."""
    return procs.h2_get if getattr(stack, "h2_only", False) else None


def _start(stack, timeout=60.0):
    for s in stack.servers:
        if not getattr(s, "shared", False):
            s.start()
    return wait_ready(stack.servers, stack.url, timeout=timeout, get=_getter(stack))


def _stop(stack):
    """Stops the row's own servers; shared backends (proxy-*) stay up."""
    for s in reversed(stack.servers):
        if not getattr(s, "shared", False):
            s.stop()


def _h2load_clients(opts):
    """h2load connections for `--connections C`: C/4 connections, each with
    10 streams in flight (a browser's page load on a few connections)."""
    return max(1, opts.connections // 4), 10


# load_row's h2_url for "the stack's own URL" (known once the stack is made)
SAME_URL = "same"


def load_row(scen, make_stack, opts, portico, show_mb=False, headers=(), h2_url=None):
    """One throughput row; with `h2_url`, measured with h2load over HTTP/2
    on that URL (the stack's own URL, HTTP/1.1, still checks readiness,
    unless the stack speaks HTTP/2 only); SAME_URL: the stack's own URL."""
    stack = make_stack()
    if h2_url == SAME_URL:
        h2_url = stack.url
    row = _row(scen, stack, opts)
    row["unit"], row["show_mb"] = "req/s", show_mb
    if not _portico_gate(row, stack, portico):
        return row
    try:
        _, status, body = _start(stack)
        bad = _check_answer(stack, status, body)
        if not bad and getattr(stack, "gzip", False):
            bad = _check_gzip(stack)
        if bad:
            raise RuntimeError(f"sanity check failed: {bad}")
        if h2_url is None:
            warm = warm_up(stack.url, opts.warmup, opts.connections, opts.wrk_threads,
                           headers=headers)
            row["wrk_warmup_command"] = shlex.join(warm) if warm else None
        else:
            clients, streams = _h2load_clients(opts)
            warm, _ = run_h2load(h2_url, max(1, int(opts.warmup)), clients, streams)
        with RssSampler([s.pid for s in stack.servers], 0.2) as rss, \
                Prober(stack.url, get=_getter(stack)) as probe:
            before = _usage(stack)
            if h2_url is None:
                res, argv = run_wrk(stack.url, opts.duration, opts.connections,
                                    opts.wrk_threads, headers=headers)
            else:
                res, argv = run_h2load(h2_url, opts.duration, clients, streams)
            after = _usage(stack)
        # the probes' answers were work done in the same window
        row.update(_cpu_fields(before, after, res["requests"] + len(probe.latencies)))
        for s in stack.servers:
            if not s.alive():
                raise RuntimeError(f"{s.name} died during the run:\n{s.log_tail()}")
        row.update({
            "value": res["rps"], "mb_per_s": res["mb_per_s"],
            "p50_us": res["latency_us"]["p50"], "p99_us": res["latency_us"]["p99"],
            "errors": res["error_total"], "peak_rss_kib": rss.peak_kib,
            "rss_samples": rss.samples, "wrk": res, "wrk_command": shlex.join(argv),
            "probe": probe.summary(),
        })
        notes = []
        if res["error_total"]:
            e = res["errors"]
            notes.append("wrk errors: " + ", ".join(f"{k} {v}" for k, v in e.items() if v))
        pr = row["probe"]
        if pr["failed"]:
            notes.append(f"{pr['failed']} of {pr['probes']} fresh-connection probes got "
                         f"no answer within {probe.timeout:g} s (new clients starve)")
        if notes:
            row["status"] = "ERR"
        if h2_url is not None:
            notes.append(f"h2load over {res['protocol']}: p50 is the mean, p99 mean + 2 sd")
        by = row["cpu"]["by_server"]
        if stack.front in by:
            row["front"] = stack.front
            row["front_cpu_us_per_req"] = by[stack.front]["cpu_us_per_req"]
        if stack.backend in by:
            row["backend"] = stack.backend
            row["backend_cpu_us_per_req"] = by[stack.backend]["cpu_us_per_req"]
            row["backend_ctx_switches_per_req"] = by[stack.backend]["ctx_switches_per_req"]
        if len(by) > 1 and row["cpu_us_per_req"] is not None:
            notes.append("CPU/req by server: " + ", ".join(
                f"{name} {u['cpu_us_per_req']:.1f} µs ({u['ctx_switches_per_req']:.2f} cs)"
                for name, u in by.items()))
        row["note"] = "; ".join(notes)
    except Exception as e:  # noqa: BLE001 - a server failure is a row, not a crash
        row["status"] = "FAIL"
        row["note"] = f"{type(e).__name__}: {e}"
        if stack.portico_conf and NOT_WIRED in str(e):
            # `portico -t -c` works but serving is still being built
            row["status"] = "unavailable"
            row["note"] = "portico -c checks the config but does not serve it yet: " + \
                next((l.strip() for l in str(e).splitlines() if NOT_WIRED in l), NOT_WIRED)
    finally:
        _stop(stack)
        row["logs"] = [s.log_path for s in stack.servers]
    return row


def _static_dir(opts):
    d = os.path.join(opts.tmpdir, "www", "static")
    if not os.path.isdir(d):
        os.makedirs(d)
        # nginx workers run as nobody: everything on the path must be readable
        for p in (opts.tmpdir, os.path.dirname(d), d):
            os.chmod(p, 0o755)
        for name, size in (("4k.bin", 4096), ("1m.bin", 1 << 20)):
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            os.chmod(path, 0o644)
    return d


def _json_file(d):
    """100k.json in the static dir: an array of user records, 100 KiB."""
    path = os.path.join(d, "100k.json")
    if not os.path.exists(path):
        users, size, i = [], 2, 0
        while size < 100 * 1024:
            u = {"id": i, "name": f"user{i}", "email": f"user{i}@example.com",
                 "active": i % 3 == 0, "score": round(i * 7 % 1000 + i % 10 / 10, 1)}
            users.append(u)
            size += len(json.dumps(u)) + 2
            i += 1
        with open(path, "w") as f:
            json.dump(users, f)
        os.chmod(path, 0o644)
    return "100k.json"


def _static_stack(stack, d, fname):
    with open(os.path.join(d, fname), "rb") as f:
        stack.expect = f.read()
    stack.exact = True
    return stack


def _conf_static_rows(scen, ctx, opts, portico, fname, show_mb=False, headers=(),
                      http_extra="", gzip=False, tls=False, http2=False, h2c=False):
    """The rows of a scenario serving one file of the static dir through ONE
    generated nginx.conf (`root` holding static/), `portico -c` vs nginx:
    conf-static-*, gzip-json (`http_extra` gzip lines, `gzip`: the answer
    must come gzipped), https-static-4k (`tls`), h2-static-4k (`tls` and
    `http2`: `listen ... ssl http2`, h2load on it) and h2c-static-4k (`h2c`:
    a second `listen ... http2` address, h2load on it)."""
    d = _static_dir(opts)
    pair = S.tls_pair(ctx) if tls else None
    h2_port = S.free_port() if h2c else None
    conf, cdir, port = S.site_conf(ctx, scen, f"        root {os.path.dirname(d)};",
                                   http_extra, tls=pair, h2_port=h2_port, http2=http2)
    scheme = "https" if tls else "http"
    h2_url = None
    if h2c:
        h2_url = f"http://{procs.LOOPBACK}:{h2_port}/static/{fname}"
    elif http2:
        h2_url = f"https://{procs.LOOPBACK}:{port}/static/{fname}"

    def stack(mk):
        st = _static_stack(mk(), d, fname)
        st.gzip = gzip
        return st
    return [load_row(scen, lambda mk=mk: stack(mk), opts, portico, show_mb=show_mb,
                     headers=headers, h2_url=h2_url)
            for mk in S.conf_static_stacks(ctx, conf, cdir, port, fname, scheme)]


def run_scenario(scen, ctx, opts, portico):
    if scen in ("hello", "flask"):
        return [load_row(scen, mk, opts, portico) for mk in S.app_servers(ctx, scen)]
    if scen == "close":
        return [load_row(scen, mk, opts, portico, headers=("Connection: close",))
                for mk in S.close_servers(ctx)]
    if scen in ("conf-static-4k", "conf-static-1m"):
        fname = "4k.bin" if scen == "conf-static-4k" else "1m.bin"
        return _conf_static_rows(scen, ctx, opts, portico, fname, show_mb=True)
    if scen == "gzip-json":
        extra = ("    gzip on;\n    gzip_types application/json;\n"
                 "    gzip_comp_level 1;\n    gzip_min_length 20;\n")
        return _conf_static_rows(scen, ctx, opts, portico, _json_file(_static_dir(opts)),
                                 http_extra=extra, gzip=True,
                                 headers=("Accept-Encoding: gzip",))
    if scen == "https-static-4k":
        return _conf_static_rows(scen, ctx, opts, portico, "4k.bin", tls=True)
    if scen == "https-hello":
        tls = S.tls_pair(ctx)
        rows = [load_row(scen, lambda: S.portico_https(ctx, tls), opts, portico),
                load_row(scen, lambda: S.granian_https(ctx, tls), opts, portico)]
        conf, cdir, port, sock = S.app_site_conf(ctx, scen, tls=tls)
        return rows + [load_row(scen, mk, opts, portico)
                       for mk in S.app_site_stacks(ctx, conf, cdir, port, sock, "https")]
    if scen == "h2-hello":
        tls = S.tls_pair(ctx)
        rows = [load_row(scen, lambda f=f: f(ctx, tls, http2=True), opts, portico,
                         h2_url=SAME_URL)
                for f in (S.portico_https, S.granian_https)]
        conf, cdir, port, sock = S.app_site_conf(ctx, scen, tls=tls, http2=True)
        return rows + [load_row(scen, mk, opts, portico, h2_url=SAME_URL)
                       for mk in S.app_site_stacks(ctx, conf, cdir, port, sock, "https")]
    if scen == "stack":
        return [load_row(scen, mk, opts, portico)
                for mk in S.app_site_stacks(ctx, *S.app_site_conf(ctx, scen))]
    if scen.startswith("proxy-"):
        return proxy_rows(scen, ctx, opts, portico)
    if scen == "uwsgi-nginx":
        return [load_row(scen, lambda b=b: S.nginx_uwsgi_pass(ctx, b), opts, portico)
                for b in ("portico", "uwsgi")]
    if scen in ("static-4k", "static-1m"):
        d = _static_dir(opts)
        fname = "4k.bin" if scen == "static-4k" else "1m.bin"
        return [load_row(scen, lambda f=f: _static_stack(f(ctx, d, fname), d, fname),
                         opts, portico, show_mb=True)
                for f in (S.portico_static, S.nginx_static)]
    if scen == "h2c-static-4k":
        return _conf_static_rows(scen, ctx, opts, portico, "4k.bin", show_mb=True, h2c=True)
    if scen == "h2-static-4k":
        return _conf_static_rows(scen, ctx, opts, portico, "4k.bin", show_mb=True,
                                 tls=True, http2=True)
    if scen == "h2c-stack":
        h2_port = S.free_port()
        conf, cdir, port, sock = S.app_site_conf(ctx, scen, h2_port=h2_port)
        h2_url = f"http://{procs.LOOPBACK}:{h2_port}/"
        return [load_row(scen, mk, opts, portico, h2_url=h2_url)
                for mk in S.app_site_stacks(ctx, conf, cdir, port, sock)]
    if scen == "nginx-return":
        return [load_row(scen, lambda: S.nginx_return(ctx), opts, portico)]
    if scen == "idle-rss":
        return [idle_rss_row(mk, opts, portico)
                for mk in S.app_servers(ctx, "hello", load=False)]
    if scen == "idle-conns":
        return [idle_conns_row(mk, opts, portico)
                for mk in (lambda: S.portico_http(ctx, "hello", opts.idle_connections),
                           lambda: S.nginx_idle(ctx, opts.idle_connections))]
    if scen == "startup":
        return [startup_row(mk, opts, portico)
                for mk in S.app_servers(ctx, "hello", load=False)]
    raise KeyError(scen)


def proxy_rows(scen, ctx, opts, portico):
    """proxy-ka / proxy-noka: one Granian (N workers) behind `portico -c`
    and behind nginx, with and without upstream keep-alive; proxy-lc:
    least_conn over three Granians (one worker each), keep-alive. The
    backends are started once for the scenario and serve both rows, so
    the fronts are compared on the very same processes."""
    if scen == "proxy-lc":
        backs = [S.granian_backend(ctx, f"granian-{i}", 1) for i in (1, 2, 3)]
        keepalive, balancer = True, "least_conn"
    else:
        backs = [S.granian_backend(ctx, "granian", ctx.workers)]
        keepalive, balancer = scen == "proxy-ka", None
    servers = [srv for srv, _ in backs]
    try:
        for srv, port in backs:
            srv.start()
        for srv, port in backs:
            wait_ready([srv], f"http://{procs.LOOPBACK}:{port}/", timeout=60.0)
        conf, d, port = S.proxy_site_conf(ctx, scen, [p for _, p in backs], keepalive,
                                          balancer)
        rows = [load_row(scen, mk, opts, portico)
                for mk in S.proxy_stacks(ctx, conf, d, port, servers)]
    except RuntimeError as e:
        # a backend that does not start: both rows fail, the run goes on
        rows = [{"scenario": scen, "server": name, "is_portico": name != "nginx",
                 "status": "FAIL", "note": f"backend: {e}", "value": None,
                 "unit": "req/s", "workers": opts.workers}
                for name in ("portico -c", "nginx")]
    finally:
        for srv in servers:
            srv.stop()
    for r in rows:
        r.setdefault("logs", [])
        r["logs"] = sorted(set(r["logs"]) | {s.log_path for s in servers})
    return rows


def _started(stack):
    """Start `stack` and check its first answer; the seconds to that answer."""
    secs, status, body = _start(stack)
    bad = _check_answer(stack, status, body)
    if bad:
        raise RuntimeError(f"sanity check failed: {bad}")
    return secs


def _one_stack_row(name, unit, make_stack, opts, portico, measure):
    """A row measured on one started stack: `measure(stack, row)` fills it in;
    any exception makes the row FAIL with its message."""
    stack = make_stack()
    row = _row(name, stack, opts)
    row["unit"] = unit
    if not _portico_gate(row, stack, portico):
        return row
    try:
        _started(stack)
        measure(stack, row)
    except Exception as e:  # noqa: BLE001
        row["status"], row["note"] = "FAIL", f"{type(e).__name__}: {e}"
    finally:
        _stop(stack)
        row["logs"] = [s.log_path for s in stack.servers]
    return row


def idle_rss_row(make_stack, opts, portico, settle=2.0):
    def measure(stack, row):
        time.sleep(settle)
        kib, nproc = tree_rss_kib([s.pid for s in stack.servers])
        row.update({"value": kib / 1024 / opts.workers, "peak_rss_kib": kib,
                    "processes": nproc,
                    "note": f"{nproc} processes, {kib / 1024:.1f} MiB in all"})

    return _one_stack_row("idle-rss", "MiB/worker", make_stack, opts, portico, measure)


def idle_conns_row(make_stack, opts, portico, settle=2.0):
    """KiB of server RSS per idle keep-alive connection (idle_conns.py)."""
    import idle_conns

    def measure(stack, row):
        port = int(stack.url.split(":")[2].split("/")[0])
        per, details = idle_conns.measure([s.pid for s in stack.servers], port,
                                          opts.idle_connections, settle)
        row.update({"value": per, "idle": details,
                    "note": f"{details['connections']} connections "
                            f"({details['still_open']} still open at the end): "
                            f"{details['rss_before_kib'] / 1024:.1f} -> "
                            f"{details['rss_after_kib'] / 1024:.1f} MiB"})
        if details["still_open"] < details["connections"]:
            row["status"] = "ERR"

    return _one_stack_row("idle-conns", "KiB/conn", make_stack, opts, portico, measure)


def startup_row(make_stack, opts, portico):
    times, row = [], None
    for _ in range(opts.startup_runs):
        stack = make_stack()  # a fresh port each time
        if row is None:
            row = _row("startup", stack, opts)
            row["unit"] = "s"
            if not _portico_gate(row, stack, portico):
                return row
        try:
            times.append(_started(stack))
        except Exception as e:  # noqa: BLE001
            row["status"], row["note"] = "FAIL", f"{type(e).__name__}: {e}"
            break
        finally:
            _stop(stack)
            row.setdefault("logs", []).extend(s.log_path for s in stack.servers)
    if times and row["status"] == "ok":
        row["value"] = statistics.median(times)
        row["runs_s"] = times
        row["note"] = (f"median of {len(times)}: "
                       + ", ".join(f"{t * 1000:.0f}" for t in times) + " ms")
    return row


__all__ = ["DESCRIPTIONS", "ORDER", "run_scenario", "http_get"]
