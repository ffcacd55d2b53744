"""Building Portico and finding out which options the built binary has.

`scripts/release-build.sh` (cargo build --release with the committed PGO
profile) runs once per bench run (its output goes to a log file). A scenario whose Portico command line needs an option that
`portico --help` does not mention gets an "unsupported (missing --X)" row
instead of a failure, so the peers still run while Portico is being built.

Rows that run `portico -c nginx.conf` are checked the same way: first,
once per run, `portico -t -c` on a minimal valid config must exit 0 (until
the nginx front end is there it doesn't: those rows are "unavailable");
then `portico -t -c` on the row's own config must exit 0 (if not, the row
is "unsupported" with Portico's message). A binary that checks configs
but cannot serve them yet says "not wired yet" when started; scenarios.py
turns that into "unavailable" too.
"""

import os
import re
import signal
import subprocess
import tempfile

from procs import free_port

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)


def binary_path():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    if not os.path.isabs(target):
        target = os.path.join(REPO, target)
    return os.path.join(target, "release", "portico")


def _build_env():
    """The caller's environment as it was before bench/run put the bench venv
    first on PATH, so PyO3 picks the same interpreter as a plain cargo build
    (and cargo doesn't rebuild everything for a changed environment)."""
    env = dict(os.environ)
    if env.get("BENCH_ORIG_PATH"):
        env["PATH"] = env["BENCH_ORIG_PATH"]
    env.pop("BENCH_ORIG_PATH", None)
    return env


class Portico:
    def __init__(self):
        self.bin = binary_path()
        self.problem = None      # why there is no usable binary, or None
        self.help_text = ""
        self.version = None
        self.build_log = None
        self._conf_problem = False   # False: not probed yet; None: -c works

    def build(self, logdir, skip=False):
        if skip:
            if not os.path.exists(self.bin):
                self.problem = f"not built ({self.bin} missing, --no-build given)"
            return self._probe()
        self.build_log = os.path.join(logdir, "cargo-build.log")
        with open(self.build_log, "wb") as log:
            try:
                p = subprocess.run(["bash", "scripts/release-build.sh"], cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=_build_env())
                rc = p.returncode
            except FileNotFoundError:
                rc = "cargo not found"
        if rc != 0:
            with open(self.build_log, "rb") as f:
                tail = f.read().decode("utf-8", "replace").strip().splitlines()
            errs = [l for l in tail if l.startswith("error")][:3]
            self.problem = (f"scripts/release-build.sh failed ({rc}): "
                            + ("; ".join(errs) or (tail[-1] if tail else "")))
            return self
        if not os.path.exists(self.bin):
            self.problem = f"cargo build succeeded but {self.bin} is missing"
            return self
        return self._probe()

    def _probe(self):
        if self.problem:
            return self
        try:
            p = subprocess.run([self.bin, "--help"], capture_output=True,
                               text=True, timeout=20)
            self.help_text = p.stdout + p.stderr
            v = subprocess.run([self.bin, "--version"], capture_output=True,
                               text=True, timeout=20)
            self.version = (v.stdout or v.stderr).strip().splitlines()[0] \
                if (v.stdout or v.stderr).strip() else None
        except (OSError, subprocess.TimeoutExpired) as e:
            self.problem = f"cannot run {self.bin} --help: {e}"
        return self

    def missing(self, options):
        """The options of `options` that `portico --help` does not mention."""
        return [o for o in options
                if not re.search(re.escape(o) + r"(?![\w-])", self.help_text)]

    def unusable_reason(self, options):
        """None if Portico can run this command line, else why not."""
        if self.problem:
            return self.problem
        miss = self.missing(options)
        if miss:
            return "unsupported (missing " + ", ".join(miss) + ")"
        return None

    def _check_conf(self, conf, timeout=15.0):
        """(exit code or None on a time-out, output) of `portico -t -c conf`.
        Run in its own session: a binary that took the flags for something
        else and started serving is stopped with its whole group."""
        p = subprocess.Popen([self.bin, "-t", "-c", conf], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, _ = p.communicate()
            rc = None
        return rc, out.decode("utf-8", "replace").strip()

    def conf_problem(self):
        """None if `portico -t -c` accepts a minimal valid nginx.conf, else why
        not (cached for the run)."""
        if self._conf_problem is not False:
            return self._conf_problem
        with tempfile.TemporaryDirectory(prefix="portico-bench-probe-") as d:
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as f:
                # a port free a moment ago, should `-t` bind what it checks
                f.write("events {}\nhttp { server { listen 127.0.0.1:%d; } }\n"
                        % free_port())
            rc, out = self._check_conf(conf)
        if rc == 0:
            self._conf_problem = None
        else:
            first = out.splitlines()[0] if out else "no output"
            how = "timed out" if rc is None else f"exits {rc}"
            self._conf_problem = (f"portico -c not available yet: `portico -t -c` on a "
                                  f"valid config {how}: {first}")
        return self._conf_problem

    def conf_gate(self, conf):
        """(status, note) if Portico can't serve nginx.conf `conf`, else None."""
        if self.problem:
            return None     # the binary's own problem is reported first
        why = self.conf_problem()
        if why:
            return "unavailable", why
        rc, out = self._check_conf(conf)
        if rc != 0:
            lines = out.splitlines()
            msg = next((l for l in lines if "[emerg]" in l), lines[0] if lines else "")
            return "unsupported (portico -t rejects the config)", msg
        return None
