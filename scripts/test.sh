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
# on first use and remade when their requirements file changes
# (tests/e2e/test_wheel.py also makes target/wheel-build-venv with maturin and
# rebuilds the binary through it, into the same target/, for `pip install .`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo build --release (scripts/release-build.sh: with the committed PGO profile)"
bash scripts/release-build.sh
# the same flags and pyo3 config for maturin's rebuild into target/
# (tests/e2e/test_wheel.py)
RELEASE_RUSTFLAGS="$(bash scripts/release-build.sh --print-rustflags)"
RELEASE_PYO3_CONFIG="$(bash scripts/release-build.sh --print-pyo3-config)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings


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

# The proxy crate's interop test drives a real uWSGI (tests/requirements.txt
# installs it into the test venv); naming it makes that test mandatory.
step "cargo test"
PORTICO_TEST_UWSGI="$ROOT/target/test-venv/bin/uwsgi" cargo test --workspace

PORTICO_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/portico"
PORTICO_EXAMPLES_VENV="$ROOT/target/examples-venv"
export PORTICO_BIN PORTICO_EXAMPLES_VENV

# The uwsgi tests put a real nginx in front of Portico (tests/e2e/test_nginx.py,
# which fails rather than skips without it): install Debian's package if there
# is none. Only the binary and /etc/nginx/uwsgi_params are used; the tests start
# their own nginx with its own prefix, never the system service.
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
    step "installing nginx (apt-get)"
    # a policy-rc.d that says 101 keeps the package from starting the service (port 80)
    policy_added=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    status=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; } || status=$?
    if [[ $policy_added == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    if [[ $status != 0 ]]; then echo "installing nginx failed ($status)" >&2; exit "$status"; fi
fi

# The observability tests run the real uwsgitop in a terminal made by tmux
# (tests/e2e/test_observability.py, which fails rather than skips without it).
if ! command -v tmux >/dev/null 2>&1; then
    step "installing tmux (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux; } \
        || { echo "installing tmux failed" >&2; exit 1; }
fi

# The brotli differential tests load ngx_brotli's filter into their own nginx
# (tests/e2e/test_compression.py, which fails rather than skips without it).
if [[ ! -e /usr/lib/nginx/modules/ngx_http_brotli_filter_module.so ]]; then
    step "installing libnginx-mod-http-brotli-filter (apt-get)"
    { apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnginx-mod-http-brotli-filter; } \
        || { echo "installing libnginx-mod-http-brotli-filter failed" >&2; exit 1; }
fi

# The TLS tests make their certificates with the openssl CLI, fetch with curl
# and run testssl.sh against a TLS listener (tests/e2e/test_tls.py,
# test_testssl.py); the HTTP/2 tests drive curl and h2load (nghttp2-client;
# tests/e2e/test_http2*.py). They fail rather than skip without them.
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
{ command -v testssl >/dev/null 2>&1 || command -v testssl.sh >/dev/null 2>&1; } || missing+=(testssl.sh)
if [[ ${#missing[@]} -gt 0 ]]; then
    step "installing ${missing[*]} (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
        || { echo "installing ${missing[*]} failed" >&2; exit 1; }
fi

# The accept-pressure tests load the server with wrk's keep-alive connections
# (tests/e2e/test_accept_pressure.py), as issue 14 measured.
if ! command -v wrk >/dev/null 2>&1; then
    step "installing wrk (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } \
        || { echo "installing wrk failed" >&2; exit 1; }
fi

step "end-to-end tests (pytest tests/e2e)"
# (no cache provider: no .pytest_cache left in the working tree)
RUSTFLAGS="$RELEASE_RUSTFLAGS" PORTICO_RELEASE_PYO3_CONFIG="$RELEASE_PYO3_CONFIG" \
    "$ROOT/target/test-venv/bin/python" -m pytest -p no:cacheprovider "$ROOT/tests/e2e" -q -ra "$@"

# The differential nginx suites once more with nginx on both sides: proves the
# harness and the nginx behaviour each case pins (tests/e2e/nginx_diff.py), also
# while `portico -c` is not wired yet and the suites above skip.
step "nginx differential suites, nginx vs nginx (NGINX_DIFF_SELFTEST=1)"
NGINX_DIFF_SELFTEST=1 "$ROOT/target/test-venv/bin/python" -m pytest -p no:cacheprovider -q -ra \
    "$ROOT/tests/e2e/test_nginx_diff.py" "$ROOT/tests/e2e/test_nginx_diff_seeds.py" \
    "$ROOT/tests/e2e/test_nginx_reload.py" "$ROOT/tests/e2e/test_nginx_uwsgi_interop.py" \
    "$ROOT"/tests/e2e/test_proxy_*.py
