"""`pip install` of Portico: build the wheel (maturin, from pyproject.toml at
the repository root), install it with Flask into a fresh venv, and serve the
Flask example with the installed `<venv>/bin/portico`, given no
`--virtualenv` and no VIRTUAL_ENV: the binary finds the venv it lives in.

The build reuses the repository's cargo target directory (target/), so only
what the wheel build changes is recompiled (the crates that depend on pyo3's
build configuration: about half a minute). It builds for the interpreter this
test venv was made from (its base, the `python3` scripts/test.sh's cargo
build found), so the target/release/portico it leaves behind embeds the same
CPython as the one it replaces and the other tests see no difference. maturin comes from PyPI into
target/wheel-build-venv (made once, like scripts/test.sh's venvs); Flask is
installed at the version examples/requirements.txt pins.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BUILD_VENV = ROOT / "target" / "wheel-build-venv"
WHEEL_DIR = ROOT / "target" / "wheels-test"
MATURIN = "maturin>=1.5,<2"
# Generous: a release build of the changed crates with fat LTO on 2 cores.
BUILD_TIMEOUT = 1200
# The CPython the wheel is for: the base installation of this venv's python.
PYTHON = getattr(sys, "_base_executable", None) or sys.executable


def run(args, timeout=600, **kwargs):
    """Run a command, failing the test with its output if it fails."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        **kwargs,
    )
    took = time.monotonic() - started
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, f"{args} exited {proc.returncode} after {took:.0f}s:\n{out}"
    print(f"{Path(str(args[0])).name} {' '.join(map(str, args[1:3]))}: {took:.1f}s")
    return out


def flask_requirement():
    """The `Flask==X` line of examples/requirements.txt."""
    for line in (EXAMPLES / "requirements.txt").read_text().splitlines():
        if re.match(r"(?i)flask\b", line.strip()):
            return line.strip()
    raise AssertionError("examples/requirements.txt names no Flask")


def build_venv():
    """target/wheel-build-venv with maturin, made on first use."""
    maturin = BUILD_VENV / "bin" / "maturin"
    if not maturin.exists():
        run([sys.executable, "-m", "venv", "--clear", BUILD_VENV])
        run([BUILD_VENV / "bin" / "python", "-m", "pip", "install",
             "--disable-pip-version-check", "-q", MATURIN])
    return maturin


@pytest.fixture(scope="module")
def wheel():
    """The wheel for this interpreter, built by maturin into target/wheels-test."""
    maturin = build_venv()
    for old in WHEEL_DIR.glob("portico-*.whl"):
        old.unlink()
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    env.pop("VIRTUAL_ENV", None)
    # scripts/test.sh's release build links the interpreter statically when it
    # can (scripts/release-build.sh); the same pyo3 config reuses its artifacts
    if os.environ.get("PORTICO_RELEASE_PYO3_CONFIG"):
        env["PYO3_CONFIG_FILE"] = os.environ["PORTICO_RELEASE_PYO3_CONFIG"]
    run([maturin, "build", "--release", "--interpreter", PYTHON, "--out", WHEEL_DIR],
        timeout=BUILD_TIMEOUT, cwd=ROOT, env=env)
    wheels = sorted(WHEEL_DIR.glob("portico-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed_venv(wheel, tmp_path_factory):
    """A fresh venv with the wheel and Flask installed."""
    venv = tmp_path_factory.mktemp("wheel") / "venv"
    run([PYTHON, "-m", "venv", venv])
    run([venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q",
         wheel, flask_requirement()])
    return venv


def test_wheel_is_tagged_for_the_interpreter_that_built_it(wheel):
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert f"-{tag}-" in wheel.name, wheel.name


def test_installed_portico_serves_flask_from_its_own_venv(installed_venv, portico_server, http):
    binary = installed_venv / "bin" / "portico"
    assert binary.exists(), list((installed_venv / "bin").iterdir())
    # as README.md and examples/README.md name it; no --virtualenv, no VIRTUAL_ENV
    server = portico_server(
        "--pythonpath", EXAMPLES / "flask_app", "--module", "app:app",
        binary=binary, cwd=ROOT,
    )
    server.wait_for_line(r"virtualenv: " + re.escape(str(installed_venv)) + r"$")
    server.wait_for_line(r"\(callable: app\)")
    resp = http.get(server.url + "/json", timeout=10)
    assert resp.status_code == 200, server.log()
    assert resp.headers["Content-Type"] == "application/json"
    resp = http.post(server.url + "/echo", data=b"ping", timeout=10)
    assert resp.status_code == 200, server.log()
    assert resp.content == b"ping"


def test_python_dash_m_portico_runs_the_installed_binary(installed_venv):
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    out = run([installed_venv / "bin" / "python", "-m", "portico", "--version"], env=env,
              timeout=60)
    assert re.search(r"\d+\.\d+\.\d+", out), out
