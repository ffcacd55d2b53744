#!/usr/bin/env bash
# The release build of Portico: `cargo build --release` with the committed
# profile (pgo/portico.profdata) given to rustc for profile-guided
# optimization. The profile lays the request paths' code out hot-first and
# tells the inliner which calls are hot: about 10 % fewer instructions and a
# quarter fewer instruction-cache misses per request (docs/design-notes.md
# §17). A plain `cargo build --release` still works; it is just slower.
#
# When the CPython it builds against ships its static library
# (`LIBPL/libpython3.X.a`, as python.org's and pyenv's builds do), the
# interpreter is linked into the binary rather than loaded from
# `libpython3.X.so`: calls inside the interpreter then go straight to their
# target instead of through the shared library's PLT and GOT, which makes a
# Python-heavy request (Flask) 6-20 % cheaper (docs/design-notes.md §18).
# The `Py*` symbols are exported so that extension modules find them, as in
# a `python3` executable built without --enable-shared. pyo3 is told so by a
# config file (target/pyo3-static-python.cfg, written here).
#
#   bash scripts/release-build.sh [cargo build arguments]
#   bash scripts/release-build.sh --print-rustflags      # the RUSTFLAGS it uses
#   bash scripts/release-build.sh --print-pyo3-config    # its PYO3_CONFIG_FILE, or nothing
#   PORTICO_PGO=off bash scripts/release-build.sh        # without the profile
#   PORTICO_STATIC_PYTHON=off bash scripts/release-build.sh  # libpython3.X.so, by rpath
#
# Another cargo build into the same target/ (maturin's, in
# tests/e2e/test_wheel.py) reuses this one's artifacts only with the same
# RUSTFLAGS and PYO3_CONFIG_FILE: scripts/test.sh passes both on.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE="$ROOT/pgo/portico.profdata"
PYO3_STATIC_CONFIG="$ROOT/target/pyo3-static-python.cfg"

flags="${RUSTFLAGS:-}"
if [[ "${PORTICO_PGO:-on}" != off ]]; then
    if [[ -f "$PROFILE" ]]; then
        flags="${flags:+$flags }-Cprofile-use=$PROFILE"
    else
        echo "release-build: $PROFILE is missing; building without profile-guided optimization" >&2
    fi
fi

# static_python_config: print pyo3's config for linking the interpreter of
# ${PYO3_PYTHON:-python3} statically, or nothing when it has no static
# library built as position-independent code (the binary is a PIE), or is a
# debug or free-threaded build (whose ABI flags differ). Debian ships the
# position-independent one beside the other, as libpython3.X-pic.a; a
# CPython built with --enable-shared compiles its static library's objects
# with CFLAGSFORSHARED (-fPIC) too.
static_python_config() {
    "${PYO3_PYTHON:-python3}" - <<'PY'
import os, sys, sysconfig
get = sysconfig.get_config_var
libpl, library = get("LIBPL") or "", get("LIBRARY") or ""
if (sys.implementation.name != "cpython" or get("Py_DEBUG") or get("Py_GIL_DISABLED")
        or not library.startswith("lib") or not library.endswith(".a")):
    sys.exit(0)
name = library[len("lib"):-len(".a")]
if os.path.isfile(os.path.join(libpl, f"lib{name}-pic.a")):
    name += "-pic"
elif "-fPIC" not in (get("CFLAGSFORSHARED") or "") or not os.path.isfile(os.path.join(libpl, library)):
    sys.exit(0)
print(f"""implementation=CPython
version={sys.version_info[0]}.{sys.version_info[1]}
shared=false
abi3=false
lib_name={name}
lib_dir={libpl}
executable={sys.executable}
pointer_width={8 * __import__("struct").calcsize("P")}
build_flags=
suppress_build_script_link_lines=true
extra_build_script_line=cargo:rustc-link-search=native={libpl}
extra_build_script_line=cargo:rustc-link-lib=static:+whole-archive={name}""")
PY
}

pyo3_config=""
if [[ "${PORTICO_STATIC_PYTHON:-on}" != off ]]; then
    config_text="$(static_python_config)"
    if [[ -n "$config_text" ]]; then
        mkdir -p "$ROOT/target"
        # rewritten only when it changes: cargo rebuilds pyo3 when it does
        if [[ ! -f "$PYO3_STATIC_CONFIG" || "$(cat "$PYO3_STATIC_CONFIG")" != "$config_text" ]]; then
            printf '%s\n' "$config_text" >"$PYO3_STATIC_CONFIG"
        fi
        pyo3_config="$PYO3_STATIC_CONFIG"
        flags="${flags:+$flags }-Clink-arg=-Wl,--export-dynamic-symbol=Py* -Clink-arg=-Wl,--export-dynamic-symbol=_Py*"
    fi
fi

case "${1:-}" in
    --print-rustflags)
        printf '%s\n' "$flags"
        exit 0
        ;;
    --print-pyo3-config)
        printf '%s\n' "$pyo3_config"
        exit 0
        ;;
esac
cd "$ROOT"
if [[ -n "$pyo3_config" ]]; then
    export PYO3_CONFIG_FILE="$pyo3_config"
fi
RUSTFLAGS="$flags" exec cargo build --release "$@"
