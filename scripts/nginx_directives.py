#!/usr/bin/env python3
"""Probe the installed nginx (1.22, Debian) for every directive it knows:
the contexts each is allowed in, its argument-count rule and whether it is a
block. Prints the Rust table rows for crates/config/src/nginx/table.rs.

    python3 scripts/nginx_directives.py > /tmp/rows.rs

Candidates are the words in the nginx binary; one that nginx calls unknown
in http{} and every other context is dropped. Each probe is one
`nginx -p TMP -c TMP/nginx.conf -e stderr -t` (a few milliseconds).
"""

import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

NGINX = "/usr/sbin/nginx"

# context name -> config with {D} where the directive goes
CONTEXTS = {
    "MAIN": "{D}\nevents {{}}\n",
    "EVENTS": "events {{\n{D}\n}}\n",
    "HTTP": "events {{}}\nhttp {{\n{D}\n}}\n",
    "SRV": "events {{}}\nhttp {{ server {{\n{D}\n}} }}\n",
    "LOC": "events {{}}\nhttp {{ server {{ location / {{\n{D}\n}} }} }}\n",
    "SIF": "events {{}}\nhttp {{ server {{ if ($host) {{\n{D}\n}} }} }}\n",
    "LIF": "events {{}}\nhttp {{ server {{ location / {{ if ($host) {{\n{D}\n}} }} }} }}\n",
    "LMT": "events {{}}\nhttp {{ server {{ location / {{ limit_except GET {{\n{D}\n}} }} }} }}\n",
    "UPS": "events {{}}\nhttp {{ upstream u {{\n{D}\nserver 127.0.0.1:1; }} }}\n",
}

_local = {}


def run(conf):
    tid = os.getpid(), __import__("threading").get_ident()
    d = _local.get(tid)
    if d is None:
        d = tempfile.mkdtemp(prefix="ngxprobe")
        os.makedirs(d + "/logs", exist_ok=True)
        _local[tid] = d
    with open(d + "/nginx.conf", "w") as f:
        f.write(conf)
    p = subprocess.run([NGINX, "-p", d + "/", "-c", d + "/nginx.conf", "-e", "stderr", "-t"],
                       capture_output=True, text=True)
    return p.stderr


def directive(name, nargs, block):
    args = " ".join(["1"] * nargs)
    return f"{name} {args} {{ }}" if block else f"{name} {args};"


def probe_name(name):
    # context allowed? block?
    contexts, block = [], None
    for ctx, tmpl in CONTEXTS.items():
        err = run(tmpl.format(D=directive(name, 1, False)))
        if f'unknown directive "{name}"' in err:
            return None
        if f'"{name}" directive is not allowed here' in err:
            continue
        contexts.append(ctx)
        if f'directive "{name}" has no opening' in err:
            block = True
        elif block is None:
            block = False
    if not contexts:
        return None
    tmpl = CONTEXTS[contexts[0]]
    counts = []
    for n in range(0, 10):
        err = run(tmpl.format(D=directive(name, n, block)))
        if f'invalid number of arguments in "{name}" directive' not in err:
            counts.append(n)
    flag = False
    if counts == [1]:
        err = run(tmpl.format(D=(f"{name} bogus {{ }}" if block else f"{name} bogus;")))
        flag = 'it must be "on" or "off"' in err
    return name, contexts, block, counts, flag


NAMED = {
    (0,): "NOARGS", (1,): "TAKE1", (2,): "TAKE2", (3,): "TAKE3", (4,): "TAKE4",
    (1, 2): "TAKE12", (1, 3): "TAKE13", (2, 3): "TAKE23", (1, 2, 3): "TAKE123",
    (1, 2, 3, 4): "TAKE1234", (0, 1): "NOARGS_TAKE1", (0, 1, 2): "NOARGS_TAKE12",
}


def rule(counts, flag):
    if flag:
        return "FLAG"
    if 9 in counts:
        if 0 in counts:
            return "ANY"
        if 1 in counts:
            return "ONEMORE"
        return "TWOMORE"
    key = tuple(counts)
    if key in NAMED:
        return NAMED[key]
    mask = sum(1 << n for n in counts)
    return f"ArgRule::Counts({mask:#b})"


def main():
    words = subprocess.run(["strings", NGINX], capture_output=True, text=True).stdout.split()
    # the linker merges a string into the tail of a longer one
    # ("server_name" lives inside "proxy_ssl_server_name"): try every suffix
    cands = sorted({w[i:] for w in words if re.fullmatch(r"[a-z][a-z0-9_]+", w)
                    for i in range(len(w) - 1) if w[i].isalpha()})
    # quick filter: unknown in http and main -> drop (one probe each)
    def known(w):
        err = run(CONTEXTS["HTTP"].format(D=directive(w, 1, False)))
        return f'unknown directive "{w}"' not in err
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        names = [w for w, k in zip(cands, ex.map(known, cands)) if k]
        print(f"// {len(names)} names", file=sys.stderr)
        rows = list(ex.map(probe_name, names))
    for r in rows:
        if r is None:
            continue
        name, contexts, block, counts, flag = r
        ctx = " | ".join(contexts)
        print(f'    d("{name}", {ctx}, {rule(counts, flag)}, {"true" if block else "false"}),')


if __name__ == "__main__" and len(sys.argv) == 1:
    main()


# Second pass (`--dup ROWS`): which directives nginx calls duplicate when
# given twice at one level. A directive is tried twice with each of a few
# plausible values; one "is duplicate" answer marks it.
DUP_VALUES = ["on", "1", "1s", "1k", "x", "/tmp", "127.0.0.1:1", "off", "GET",
              "$a $b", "a b", "1 1", "x 1", "text/html", "/tmp levels=1 keys_zone=z:1m",
              "z 1m", "$binary_remote_addr zone=z:1m", "html", "on 1"]


def probe_dup(row):
    name, ctx = row
    tmpl = CONTEXTS[ctx]
    for v in DUP_VALUES:
        err = run(tmpl.format(D=f"{name} {v};\n{name} {v};"))
        if f'"{name}" directive is duplicate' in err:
            return name
    return None


def dup_main(rows_file):
    rows = []
    for line in open(rows_file):
        m = re.match(r'\s*d\("([^"]+)", ([A-Z]+)', line)
        if m and "true)" not in line:
            rows.append((m.group(1), m.group(2)))
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        for name in ex.map(probe_dup, rows):
            if name:
                print(name)


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--dup":
    dup_main(sys.argv[2])
