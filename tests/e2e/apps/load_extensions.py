"""Imports the C extension modules of the standard library (and MarkupSafe's
speedups when the venv has them) at load time, then answers with what each
import gave: a statically linked interpreter must export the `Py*` symbols
these modules are resolved against."""

import importlib
import json

MODULES = [
    "_json", "_decimal", "_ctypes", "_sqlite3", "_ssl", "_hashlib", "_socket", "select",
    "array", "math", "zlib", "binascii", "unicodedata", "pyexpat", "_struct", "_pickle",
    "_datetime", "_asyncio", "_bz2", "_lzma", "mmap", "_csv", "_random", "_bisect",
]

results = {}
for name in MODULES:
    try:
        module = importlib.import_module(name)
        results[name] = getattr(module, "__file__", "built in") or "built in"
    except ImportError as e:  # a missing optional module says so; a bad symbol too
        results[name] = f"ImportError: {e}"

# Exercise a few through their C code, not only their import.
import ctypes  # noqa: E402
import decimal  # noqa: E402
import sqlite3  # noqa: E402

checks = {
    "decimal": str(decimal.Decimal("1.1") + decimal.Decimal("2.2")),
    "sqlite3": sqlite3.connect(":memory:").execute("select 6 * 7").fetchone()[0],
    "ctypes": ctypes.c_int(7).value,
    "json": json.loads('{"a": [1, 2]}')["a"][1],
}


def application(environ, start_response):
    body = json.dumps({"modules": results, "checks": checks}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
