#!/usr/bin/env bash
# The release build of Portico: `cargo build --release` with the committed
# profile (pgo/portico.profdata) given to rustc for profile-guided
# optimization. The profile lays the request paths' code out hot-first and
# tells the inliner which calls are hot: about 10 % fewer instructions and a
# quarter fewer instruction-cache misses per request (docs/design-notes.md
# §17). A plain `cargo build --release` still works; it is just slower.
#
#   bash scripts/release-build.sh [cargo build arguments]
#   bash scripts/release-build.sh --print-rustflags   # the RUSTFLAGS it uses
#   PORTICO_PGO=off bash scripts/release-build.sh     # without the profile
#
# Another cargo build into the same target/ (maturin's, in
# tests/e2e/test_wheel.py) reuses this one's artifacts only with the same
# RUSTFLAGS: scripts/test.sh passes them on with --print-rustflags.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE="$ROOT/pgo/portico.profdata"

flags="${RUSTFLAGS:-}"
if [[ "${PORTICO_PGO:-on}" != off ]]; then
    if [[ -f "$PROFILE" ]]; then
        flags="${flags:+$flags }-Cprofile-use=$PROFILE"
    else
        echo "release-build: $PROFILE is missing; building without profile-guided optimization" >&2
    fi
fi

if [[ "${1:-}" == --print-rustflags ]]; then
    printf '%s\n' "$flags"
    exit 0
fi
cd "$ROOT"
RUSTFLAGS="$flags" exec cargo build --release "$@"
