#!/usr/bin/env bash
# The project's single test command: builds Portico, checks formatting and
# lints, runs the Rust tests, then drives the release binary end to end with
# the Python tests in tests/e2e.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k cli     # extra arguments go to pytest
#
# Needs: cargo (with rustfmt and clippy), python3 (CPython 3.11) with venv and
# pip on PATH. Python packages are installed into venvs under target/, made
# on first use and remade when their requirements file changes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo build --release"
cargo build --release

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

# ensure_venv DIR REQUIREMENTS: make DIR a venv of the python3 on PATH with
# REQUIREMENTS installed, unless its stamp says that is already done for
# this exact requirements file and interpreter.
ensure_venv() {
    local dir="$1" requirements="$2"
    local stamp="$dir/.portico-requirements.stamp"
    local want
    want="$(python3 -c 'import sys; print(sys.executable, sys.version)'; cat "$requirements")"
    if [[ -f "$stamp" && -x "$dir/bin/python" ]] && [[ "$(cat "$stamp")" == "$want" ]] \
        && "$dir/bin/python" -c 'pass' 2>/dev/null; then
        echo "$dir is up to date with $requirements" >&2
        return 0
    fi
    step "making $dir from $requirements"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
    printf '%s' "$want" >"$stamp"
}

ensure_venv "$ROOT/target/test-venv" "$ROOT/tests/requirements.txt"
ensure_venv "$ROOT/target/examples-venv" "$ROOT/examples/requirements.txt"

PORTICO_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/portico"
PORTICO_EXAMPLES_VENV="$ROOT/target/examples-venv"
export PORTICO_BIN PORTICO_EXAMPLES_VENV

step "end-to-end tests (pytest tests/e2e)"
# (no cache provider: no .pytest_cache left in the working tree)
"$ROOT/target/test-venv/bin/python" -m pytest -p no:cacheprovider "$ROOT/tests/e2e" -q -ra "$@"
