"""The results of a bench run: ratios, the text table, the JSON files and
the PNG chart of the ratios.

Ratio ("portico ÷ best peer") is computed per scenario on the Portico row:
  * throughput scenarios: Portico req/s ÷ the best peer's req/s;
  * idle-rss and startup (lower is better): best peer ÷ Portico,
so that in every scenario a ratio above 1 means Portico wins.
Scenarios without a Portico side (nginx-return) show n/a.

Beside it, for throughput scenarios, the CPU-per-request ratio: Portico's
server CPU per request ÷ the lowest of the peers' (lower is better: below 1
means Portico spends less CPU on a request than the most frugal peer).
"""

import json
import os
import shutil

LOWER_IS_BETTER = {"idle-rss", "idle-conns", "startup"}


def compute_ratios(rows, scenario_order):
    for scen in scenario_order:
        srows = [r for r in rows if r["scenario"] == scen]
        portico = [r for r in srows if r.get("is_portico")]
        peers = [r for r in srows if not r.get("is_portico")
                 and r.get("value") is not None]
        if not portico:
            for r in srows:
                r["ratio"] = None
                r["ratio_note"] = "n/a (no portico side)"
            continue
        p = portico[0]
        if p.get("value") is None or not peers:
            p["ratio"] = None
            p["ratio_note"] = "n/a"
            continue
        if scen in LOWER_IS_BETTER:
            best = min(peers, key=lambda r: r["value"])
            p["ratio"] = best["value"] / p["value"] if p["value"] else None
        else:
            best = max(peers, key=lambda r: r["value"])
            p["ratio"] = p["value"] / best["value"] if best["value"] else None
        p["ratio_vs"] = best["server"]
        _cpu_ratio(p, peers)


def _cpu_ratio(p, peers):
    """Portico's CPU per request ÷ the lowest peer's (throughput rows only)."""
    cpu_peers = [r for r in peers if r.get("cpu_us_per_req")]
    if p.get("cpu_us_per_req") is None or not cpu_peers:
        return
    best = min(cpu_peers, key=lambda r: r["cpu_us_per_req"])
    p["cpu_ratio"] = p["cpu_us_per_req"] / best["cpu_us_per_req"]
    p["cpu_ratio_vs"] = best["server"]
    if p.get("front_cpu_us_per_req") and best.get("front_cpu_us_per_req"):
        p["front_cpu_ratio"] = p["front_cpu_us_per_req"] / best["front_cpu_us_per_req"]
    if p.get("backend_cpu_us_per_req") and best.get("backend_cpu_us_per_req"):
        p["backend_cpu_ratio"] = p["backend_cpu_us_per_req"] / best["backend_cpu_us_per_req"]


def _fmt_result(r):
    v = r.get("value")
    if v is None:
        return "-"
    unit = r.get("unit")
    if unit == "req/s":
        s = f"{v:,.0f} req/s"
        if r.get("show_mb"):
            s += f" ({r['mb_per_s']:,.0f} MB/s)"
        return s
    if unit == "MiB/worker":
        return f"{v:.1f} MiB/worker"
    if unit == "s":
        return f"{v * 1000:.0f} ms"
    return f"{v:g} {unit}"


def _fmt_lat(us):
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if us < 1_000_000 else f"{us / 1e6:.2f} s"


def _fmt_probe(p):
    if not p or not p["probes"]:
        return "-"
    if p["failed"]:
        return f"{p['failed']}/{p['probes']} lost"
    if p.get("p99_ms") is None:  # a JSON from before the p99 was kept
        return f"{p['max_ms']:.0f} ms"
    return f"{p['p99_ms']:.0f}/{p['max_ms']:.0f} ms"


def _fmt_cpu(r):
    v = r.get("cpu_us_per_req")
    if v is None:
        return "-"
    front = r.get("front_cpu_us_per_req")
    if front is not None:
        # proxy-*: the front alone beside the total (front + backends)
        return f"{v:,.1f} µs (front {front:,.1f})"
    backend = r.get("backend_cpu_us_per_req")
    if backend is not None:
        # uwsgi-nginx: the backend alone beside the total (nginx + backend)
        return f"{v:,.1f} µs (backend {backend:,.1f})"
    return f"{v:,.1f} µs"


def _fmt_cs(r):
    v = r.get("ctx_switches_per_req")
    return "-" if v is None else f"{v:.2f}"


def _fmt_cpu_ratio(r):
    if r.get("cpu_ratio") is None:
        return ""
    text = f"{r['cpu_ratio']:.2f}× (vs {r['cpu_ratio_vs']})"
    if r.get("front_cpu_ratio") is not None:
        text += f", front {r['front_cpu_ratio']:.2f}×"
    if r.get("backend_cpu_ratio") is not None:
        text += f", backend {r['backend_cpu_ratio']:.2f}×"
    return text


def _fmt_ratio(r):
    if r.get("ratio") is not None:
        return f"{r['ratio']:.2f}× (vs {r['ratio_vs']})"
    return r.get("ratio_note", "")


def table(rows):
    head = ["scenario", "server", "result", "CPU/req", "cs/req", "p50", "p99", "errors",
            "new conn", "peak RSS", "portico ÷ best peer", "CPU/req ÷ best peer", "status"]
    lines = []
    for r in rows:
        lines.append([
            r["scenario"], r["server"], _fmt_result(r), _fmt_cpu(r), _fmt_cs(r),
            _fmt_lat(r.get("p50_us")), _fmt_lat(r.get("p99_us")),
            "-" if r.get("errors") is None else str(r["errors"]),
            _fmt_probe(r.get("probe")),
            "-" if not r.get("peak_rss_kib") else f"{r['peak_rss_kib'] / 1024:.0f} MiB",
            _fmt_ratio(r) if r.get("is_portico") or r.get("ratio_note") else "",
            _fmt_cpu_ratio(r),
            r["status"],
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [fmt(head), fmt(["-" * w for w in widths])]
    prev = None
    for l in lines:
        if prev is not None and l[0] != prev:
            out.append("")
        prev = l[0]
        out.append(fmt(l))
    return "\n".join(out)


HEADER_NOTE = (
    "ratio = portico ÷ best peer: req/s for throughput scenarios; for idle-rss "
    "and startup (lower is better) it is best peer ÷ portico. >1 means Portico wins.\n"
    "CPU/req = server CPU (utime+stime of every process of the server tree(s), from "
    "/proc, over the wrk run) ÷ requests answered; cs/req = voluntary+involuntary "
    "context switches of every thread of the tree(s) ÷ requests. "
    "CPU/req ÷ best peer = Portico's ÷ the lowest peer's: <1 means Portico spends less.\n"
    "new conn = p99/slowest answer to a fresh connection opened every 50 ms (after the "
    "previous one's answer) during the run (\"k/n lost\": no answer within 3 s).\n"
    "status: ok | ERR (wrk saw errors >= 400 or socket errors, or new connections were "
    "not answered) | FAIL (did not start or answered wrongly) | unsupported (Portico lacks "
    "an option, or `portico -t` rejects the row's nginx.conf) | unavailable (no Portico "
    "binary, or no `portico -c` yet).")


def write_json(doc, results_dir, stamp):
    os.makedirs(results_dir, exist_ok=True)
    latest = os.path.join(results_dir, "latest.json")
    dated = os.path.join(results_dir, f"{stamp}.json")
    with open(dated, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    shutil.copyfile(dated, latest)
    return latest, dated


def chart(rows, path, subtitle=""):
    """PNG bar chart of the Portico ratios. Returns None or an error string."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001 - any import problem is reported
        return f"matplotlib unavailable: {e}"
    try:
        pts = [(r["scenario"], r["ratio"], r.get("ratio_vs", ""))
               for r in rows if r.get("is_portico") and r.get("ratio") is not None]
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
        if pts:
            names = [p[0] for p in pts]
            vals = [p[1] for p in pts]
            colors = ["#2e8b57" if v >= 1 else "#c0504d" for v in vals]
            bars = ax.bar(names, vals, color=colors)
            for b, (_, v, vs) in zip(bars, pts):
                ax.annotate(f"{v:.2f}×\nvs {vs}", (b.get_x() + b.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=8)
            ax.set_ylim(0, max(vals + [1.0]) * 1.3)
        else:
            ax.text(0.5, 0.5, "no Portico ratio measured yet\n(see the table)",
                    ha="center", va="center", transform=ax.transAxes)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_ylabel("portico ÷ best peer (>1: Portico wins)")
        ax.set_title("Portico vs best peer per scenario" + (f"\n{subtitle}" if subtitle else ""),
                     fontsize=10)
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
        fig.tight_layout()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return None
    except Exception as e:  # noqa: BLE001 - a chart never fails the run
        return f"chart failed: {type(e).__name__}: {e}"
