#!/usr/bin/env bash
# Makes pgo/portico.profdata, the profile scripts/release-build.sh builds
# with (docs/design-notes.md §17):
#
#   1. an instrumented build (-Cprofile-generate, feature `pgo-train` so a
#      worker writes its counters before `_exit`) into target/pgo-train;
#   2. the benchmark's traffic scenarios against it (bench/run, 2 s each,
#      the peers too): WSGI over HTTP (keep-alive and close) and behind
#      nginx's uwsgi_pass, Flask, static files small and large, gzip, the
#      seeds' stack, the proxy with and without upstream keepalive and
#      least_conn, TLS and HTTP/2; a path no scenario takes is left
#      unprofiled, so it is optimized as in a plain build;
#   3. llvm-profdata merge --sparse into pgo/portico.profdata, and a note of
#      what it was trained on beside it (pgo/portico.profdata.txt).
#
#   bash scripts/pgo-train.sh        # then commit pgo/
#
# Run it again when the request paths have changed a lot: code changed since
# the profile was made keeps its plain optimization (rustc drops a stale
# function's counts), so an old profile only loses its gain, never breaks the
# build. Needs what bench/run needs (it installs them) and an llvm-profdata
# of rustc's LLVM major version: rustup's llvm-tools component, or Debian's
# llvm-N package (installed with apt-get when neither is there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="$ROOT/target/pgo-train"
RAW="$TARGET/profraw"
SCENARIOS=(hello flask close uwsgi-nginx static-4k static-1m conf-static-4k conf-static-1m
           gzip-json stack proxy-ka proxy-noka proxy-lc h2c-static-4k h2-static-4k h2c-stack
           https-hello https-static-4k h2-hello)

step() { printf '\n==> %s\n' "$*" >&2; }

find_profdata() {
    local major host tools
    major="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
    host="$(rustc -vV | sed -n 's/^host: //p')"
    tools="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
    for candidate in "$tools" "/usr/lib/llvm-$major/bin/llvm-profdata"; do
        if [[ -x "$candidate" ]]; then echo "$candidate"; return 0; fi
    done
    step "installing llvm-profdata (LLVM $major: rustup's llvm-tools, else Debian's llvm-$major)"
    if rustup component add llvm-tools >&2 && [[ -x "$tools" ]]; then echo "$tools"; return 0; fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "llvm-$major"; } >&2 \
        && [[ -x "/usr/lib/llvm-$major/bin/llvm-profdata" ]] \
        && { echo "/usr/lib/llvm-$major/bin/llvm-profdata"; return 0; }
    echo "pgo-train: no llvm-profdata for LLVM $major" >&2
    return 1
}

PROFDATA="$(find_profdata)"

step "instrumented build (target/pgo-train)"
RUSTFLAGS="-Cprofile-generate=$RAW" CARGO_TARGET_DIR="$TARGET" \
    cargo build --release -p portico --features pgo-train
# the build's own scripts and proc macros, instrumented too, wrote counters
# there: only the training's go into the profile
rm -rf "$RAW"

step "training: bench/run ${SCENARIOS[*]}"
results="$(mktemp -d /tmp/portico-pgo-train-XXXXXX)"
CARGO_TARGET_DIR="$TARGET" bash bench/run "${SCENARIOS[@]}" --duration 2 --no-build \
    --results "$results"
rm -rf "$results"

step "merging the counters into pgo/portico.profdata"
mkdir -p pgo
"$PROFDATA" merge --sparse -o pgo/portico.profdata "$RAW"/*.profraw
{
    echo "pgo/portico.profdata: made by scripts/pgo-train.sh on $(date -u +%Y-%m-%d)"
    echo "source: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (with local changes)')"
    echo "rustc: $(rustc -V)"
    echo "scenarios: ${SCENARIOS[*]} (bench/run --duration 2)"
} >pgo/portico.profdata.txt
cat pgo/portico.profdata.txt
"$PROFDATA" show pgo/portico.profdata | tail -n 5
