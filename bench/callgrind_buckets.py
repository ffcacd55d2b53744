"""Cut two callgrind dumps of the `proxy-ka` front into the same buckets:
Portico's worker and nginx's, per request (design-notes §15, "The gap to
nginx, bucket by bucket").

    python3 bench/proxy_instructions.py --mode ka --all     # prints its dump dir
    python3 bench/proxy_instructions.py --mode ka --nginx
    python3 bench/callgrind_buckets.py PORTICO_DUMP NGINX_DUMP [--requests 3000]

Every function's exclusive count goes to one bucket (first rule that
matches its name), so each column sums to the dump's total. Shared leaves
are split by their caller: nginx's `ngx_http_parse_header_line` and
`ngx_hash_find`, Portico's `scan_field_line`. The self count of Portico's
big `async fn` closures is split by the source file callgrind gives for
their inlined code (`proxy_req.rs` is the upstream request, `retry.rs` the
peer...). nginx's binary is stripped: its exported `ngx_*` names are in the
dump, the static functions appear as addresses, named here from their place
in the call tree for nginx 1.22.1-9+deb12u11 (Debian 12); another build
moves them, so check `callgrind_annotate --tree=calling` first.
"""

import argparse
import collections
import re

BUCKETS = [
    "client read + request object",
    "client head parse",
    "routing, phases, variables",
    "build the upstream request",
    "upstream peer: balancer, pool, connect",
    "write the upstream request",
    "read + parse the upstream head",
    "filter + build the client head",
    "body transfer + write to the client",
    "finalize, keep-alive, log, counters",
    "event loop, timers, wakers",
    "clock reads",
    "allocation + free",
    "memcpy/memset",
    "refcounts + drop glue",
    "async state machines' own code",
]
GLUE = (r"Engine::serve::\{\{closure|Inner::send::\{\{closure|"
        r"serve_connection::\{\{closure|exchange::exchange::\{\{closure")
PORTICO = [
    (14, r"^__mem(cpy|move|set)"),
    (13, r"^_?mi_|RawVec|finish_grow|reserve_inner|do_reserve"),
    (12, r"Timespec|clock_gettime|MetricsBatch"),
    (15, r"^bytes::|Arc<T,A>::drop_slow|drop_in_place|shared_v_|promotable|shallow_clone"),
    (1, r"read_idle|LazyRead|LazySocket::recv|^recv$|peer_text|begin_body|"
        r"SiteHandler as .*Handler>::handle|LazySocket::registered"),
    (2, r"parsed_head|scan_field_line|http1::head|http1::framing|parse_version|http1::chars|memchr"),
    (3, r"phases::Req::new|Req::walk|site::select|var_context|Req::rewrites|site::uri|"
        r"site::facts|finish_as|trim_matches|from_utf8"),
    (4, r"encode_bodiless_head|client_field_passed|pass_parts|ProxyUpstream>::forward"),
    (5, r"balance::|http::pool|UpstreamTries|PeerAddr"),
    (6, r"io::send|TcpStream as tokio::io::async_write|^send$"),
    (7, r"http::exchange::\{\{closure|parse_response_head|ReadBuf|"
        r"TcpStream as tokio::io::async_read|map_fold|Filter<I,P>"),
    (8, r"encode_head|write::plan|passed_fields|HopByHop|append_http_date|Iterator>::find"),
    (9, r"BodyWriter|write::flush|upstream_body|SendTimeout|LazyWrite|retain"),
    (10, r"exchange::finish|request_done|last_request|instance_requests|LogContext|"
         r"Reusable::drained"),
    (11, r"tokio::|mio::|epoll_wait|worker_main|Handoff|serve::serve::|accept_between|"
         r"worker_conns|connection_task|btree"),
    (16, GLUE),
]
# The glue closures' self count, by the file of the inlined code.
GLUE_FILES = [(4, r"proxy_req\.rs"), (8, r"site/proxy\.rs"), (5, r"retry\.rs|target\.rs|pool\.rs"),
              (7, r"proxy/src/http/mod\.rs"), (10, r"log\.rs")]
NGINX = [
    (14, r"^__mem"),
    (13, r"malloc|free$|_int_|unlink_chunk|memalign|ngx_palloc|ngx_pcalloc|ngx_pnalloc|ngx_pfree|"
         r"create_pool|destroy_pool|ngx_alloc|alloc_chain_link|create_temp_buf|array_create|"
         r"array_push|list_push|chain_get_free_buf|alloc_perturb"),
    (12, r"time_update|clock_gettime|gettimeofday"),
    (11, r"process_events_and_timers|0x0*54130$|epoll_wait|expire_timers|find_timer|"
         r"event_process_posted|single_process_cycle|0x0*6ef20$|0x0*82200$|rbtree|"
         r"handle_read_event|handle_write_event|reusable_connection|run_posted|0x0*e1050$|"
         r"__errno|^main$"),
    (1, r"0x0*71830$|0x0*6c880$|create_request|parse_request_line|process_request_uri|"
        r"ngx_unix_recv|^recv$"),
    (2, r"0x0*70480$|0x0*6c640$|strstrn|0x0*6eff0$|0x0*6b9a0$|0x0*6fa50$|process_request_header"),
    (3, r"0x0*6f910$|0x0*6ba80$|0x0*6f720$|0x0*6bbd0$|process_request$|ngx_http_handler|"
        r"run_phases|_phase|0x0*c47b0$|0x0*65b90|0x0*b[3-8c][0-9a-f]{3}$|update_location|"
        r"read_client_request_body|0x0*78240$|filename_cmp|upstream_create|cleanup_add"),
    (4, r"0x0*c1d60$|script|indexed_variable|0x0*bedf0$|0x0*c0b60$|0x0*c10f0$|complex_value"),
    (5, r"0x0*e1220$|0x0*e15c0$|round_robin|connect_peer|memn2cmp|memcmp|0x0*82220$|getsockopt"),
    (6, r"ngx_http_upstream_init$|chain_writer"),
    (7, r"0x0*81d10$|0x0*84850$|0x0*c0690$|0x0*806f0$|0x0*7fdd0$|0x0*bf730$|0x0*bf890$|"
        r"parse_status_line|test_predicates|atoi|atoof"),
    (8, r"0x0*831a0$|0x0*80720$|send_header|0x0*97c30$|sprintf|vslprintf|0x0*2aca0$"),
    (9, r"event_pipe|0x0*82c00$|0x0*bfa80$|output_filter|0x0*a3490$|output_chain|write_filter|"
        r"sendfile_chain|chain_update_sent|writev|send_special|chain_to_iovec"),
    (10, r"finalize_request|free_request|0x0*e1780$|0x0*6b9c0$|0x0*77320$|0x0*6c4b0$|tcp_nodelay"),
]
# Shared leaves: (leaf, {caller: bucket}); other callers keep the leaf's own rule.
SPLITS = [
    ("ngx_http_parse_header_line", {"0x0000000000070480": 2, "0x00000000000c0690": 7}),
    ("ngx_hash_find", {"0x0000000000070480": 2, "0x00000000000c0690": 7,
                       "0x00000000000831a0": 8, "0x00000000000c1d60": 4}),
    ("portico_proto::http1::field::scan_field_line",
     {"portico_proto::http1::response::parse_response_head": 7}),
]


def parse(path):
    """Self counts by (function, file of the code), and call costs by (caller, callee)."""
    names, files = {}, {}
    own = collections.Counter()
    calls = collections.Counter()
    fn = fl = fi = callee = None
    pending = False

    def name(text, table):
        m = re.match(r"\((\d+)\)(?: (.*))?", text)
        if not m:
            return text
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table[m.group(1)]

    with open(path) as f:
        for line in f:
            if line.startswith("fl="):
                fl, fi = name(line[3:].strip(), files), None
            elif line.startswith(("fi=", "fe=")):
                fi = name(line[3:].strip(), files)
            elif line.startswith("fn="):
                fn, fi = re.sub(r"::h[0-9a-f]{16}", "", name(line[3:].strip(), names)), None
            elif line.startswith("cfn="):
                callee = re.sub(r"::h[0-9a-f]{16}", "", name(line[4:].strip(), names))
            elif line.startswith(("cfl=", "cfi=")):
                name(line[4:].strip(), files)
            elif line.startswith("calls="):
                pending = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                if pending:
                    calls[(fn, callee)] += int(parts[1])
                    pending = False
                else:
                    own[(fn, fi or fl)] += int(parts[1])
    return own, calls


def bucket(path, rules, glue_files=()):
    own, calls = parse(path)
    out, other = collections.Counter(), collections.Counter()
    for (fn, src), cost in own.items():
        split = next((s for s in SPLITS if s[0] == fn), None)
        if split:
            continue  # below, by caller
        k = next((k for k, rx in rules if re.search(rx, fn)), None)
        if k == 16:
            k = next((b for b, rx in glue_files if re.search(rx, src or "")), 16)
        if k is None:
            other[fn] += cost
        else:
            out[k] += cost
    for leaf, by_caller in SPLITS:
        leaf_self = sum(c for (fn, _), c in own.items() if fn == leaf)
        if not leaf_self:
            continue
        total_in = sum(c for (_, g), c in calls.items() if g == leaf) or leaf_self
        default = next((k for k, rx in rules if re.search(rx, leaf)), None)
        for (caller, g), c in calls.items():
            if g == leaf:
                share = leaf_self * c // total_in
                k = by_caller.get(caller, default)
                if k is None:
                    other[leaf] += share
                else:
                    out[k] += share
    return out, other, sum(own.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("portico")
    ap.add_argument("nginx")
    ap.add_argument("--requests", type=int, default=3_000)
    args = ap.parse_args()
    n = args.requests
    p, p_other, p_total = bucket(args.portico, PORTICO, GLUE_FILES)
    g, g_other, g_total = bucket(args.nginx, NGINX)
    print(f"| bucket | Portico | nginx | Portico - nginx |\n|---|---:|---:|---:|")
    for k, title in enumerate(BUCKETS, 1):
        print(f"| {title} | {p[k] // n:,} | {g[k] // n:,} | {(p[k] - g[k]) // n:+,} |")
    print(f"| other | {sum(p_other.values()) // n:,} | {sum(g_other.values()) // n:,} | |")
    print(f"| total | {p_total // n:,} | {g_total // n:,} | {(p_total - g_total) // n:+,} |")
    for who, other in (("Portico", p_other), ("nginx", g_other)):
        top = [f"{f[:60]} {c // n}" for f, c in other.most_common(8) if c // n >= 3]
        if top:
            print(f"{who}, not in a bucket: " + "; ".join(top))


if __name__ == "__main__":
    main()
