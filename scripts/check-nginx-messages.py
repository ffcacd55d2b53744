#!/usr/bin/env python3
"""Check the AS_NGINX error table of the nginx.conf conversion tests against
the real nginx: each case's http body is written to a temp prefix and run
through `nginx -p DIR -c FILE -e stderr -t`; the first [emerg] line must be
the table's message. Usage: scripts/check-nginx-messages.py [TESTS_FILE]
(default crates/config/src/nginx/convert/tests_errors.rs). Needs nginx."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

path = sys.argv[1] if len(sys.argv) > 1 else "crates/config/src/nginx/convert/tests_errors.rs"
src = open(path, encoding="utf-8").read()
table = src[src.index("const AS_NGINX"):src.index("#[test]")]
cases = re.findall(r'\(\s*r#"(.*?)"#,\s*r#"(.*?)"#,?\s*\),', table)
bad = 0
for body, want in cases:
    d = tempfile.mkdtemp(prefix="nginx-msg-")
    try:
        os.makedirs(os.path.join(d, "logs"))
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write("events {}\nhttp {\n%s\n}\n" % body)
        out = subprocess.run(
            ["nginx", "-p", d + "/", "-c", conf, "-e", "stderr", "-t"],
            capture_output=True, text=True, check=False,
        ).stderr
        emerg = [line for line in out.splitlines() if "[emerg]" in line]
        got = re.sub(r"^.*?\[emerg\] (\d+#\d+: )?", "", emerg[0]) if emerg else "(no error)"
        got = got.replace(" in " + conf + ":3", "§")
        if got != want:
            bad += 1
            print(f"DIFF {body}\n  nginx: {got}\n  table: {want}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
print(f"{len(cases)} passed, {bad} failed" if not bad else f"{len(cases) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
