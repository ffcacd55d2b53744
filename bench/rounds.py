"""`--rounds N`: every scenario run N times over, its servers alternating
(A B C, A B C, ...), and each server's row the median of its rounds.

On this shared 2-core machine one run of a server moves by 10-30 % from
minute to minute (the host's other tenants, the load generator's own
schedule), so a single A-then-B comparison can land either side of a goal.
Alternating the servers puts every server in the same minutes, and the
median of each server's rounds drops the round that caught a bad minute.

The row kept for a server is its median round by the row's value (req/s,
or the memory/start-up figure), so latency, probes and RSS come from one
real run; the CPU-per-request figures are the medians of their own rounds
(a round that is median in req/s need not be median in CPU). Every
round's value and CPU stay in the row (`rounds`), and a round that failed
or saw errors marks the row with its status.
"""

import statistics

# The CPU figures replaced by the median of their rounds.
CPU_FIELDS = ("cpu_us_per_req", "ctx_switches_per_req", "front_cpu_us_per_req",
              "backend_cpu_us_per_req", "backend_ctx_switches_per_req")

# Worst first: a row's status is the worst of its rounds'.
STATUS_ORDER = ("FAIL", "ERR", "unsupported", "unavailable", "ok")


def run(scenario_rounds, n):
    """`scenario_rounds()` runs the scenario once and returns its rows;
    this runs it `n` times and returns one combined row per server."""
    by_server = {}
    order = []
    for i in range(n):
        for row in scenario_rounds(i):
            key = row["server"]
            if key not in by_server:
                order.append(key)
                by_server[key] = []
            by_server[key].append(row)
    return [combine(by_server[k]) for k in order]


def combine(rows):
    """One row from the rounds of one server (see the module text)."""
    if len(rows) == 1:
        return rows[0]
    measured = [r for r in rows if r.get("value") is not None]
    if not measured:
        return rows[0]
    ranked = sorted(measured, key=lambda r: r["value"])
    kept = dict(ranked[(len(ranked) - 1) // 2])  # the lower median: no made-up run
    for field in CPU_FIELDS:
        values = [r[field] for r in measured if r.get(field) is not None]
        if values:
            kept[field] = statistics.median(values)
    kept["rounds"] = [{"value": r.get("value"), "cpu_us_per_req": r.get("cpu_us_per_req"),
                       "status": r.get("status")} for r in rows]
    worst = min((r.get("status", "ok") for r in rows),
                key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 0)
    if worst != kept.get("status"):
        kept["status"] = worst
        bad = [f"round {i + 1}: {r.get('status')} {r.get('note', '')}".strip()
               for i, r in enumerate(rows) if r.get("status") == worst]
        kept["note"] = "; ".join(filter(None, [kept.get("note"), *bad]))
    values = ", ".join(f"{r['value']:,.0f}" for r in measured)
    kept["note"] = "; ".join(filter(None, [kept.get("note"),
                                           f"median of {len(rows)} rounds ({values})"]))
    return kept
