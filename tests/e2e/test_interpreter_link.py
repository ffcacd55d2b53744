"""How the binary carries CPython (README.md, "Installing with pip"; design
notes §18): scripts/release-build.sh links the interpreter's static library in
when the installation has a position-independent one, and exports the `Py*`
symbols, so that C extension modules loaded at run time resolve against it as
they would against libpython3.X.so. Both halves are checked on the binary the
suite runs: how it is linked matches what the build script chose, and the
standard library's extension modules import and work in an app.
"""

import http.client
import json
import os
import subprocess

import pytest

from conftest import APPS, BIN, EXAMPLES_VENV, ROOT


def server_get(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def dynamic_needs(binary):
    """The shared libraries the binary names (DT_NEEDED), from readelf."""
    out = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def exported_symbols(binary):
    out = subprocess.run(["nm", "-D", "--defined-only", str(binary)], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def release_pyo3_config():
    """The pyo3 config scripts/release-build.sh builds with ('' when it links the
    shared library): what scripts/test.sh passes on, else asked of the script."""
    said = os.environ.get("PORTICO_RELEASE_PYO3_CONFIG")
    if said is not None:
        return said
    return subprocess.run(["bash", str(ROOT / "scripts" / "release-build.sh"),
                           "--print-pyo3-config"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_binary_links_the_interpreter_as_the_release_build_chose():
    # scripts/test.sh names both the binary it built and the config it built
    # it with; a PORTICO_BIN given alone may be any build
    if os.environ.get("PORTICO_BIN") and "PORTICO_RELEASE_PYO3_CONFIG" not in os.environ:
        pytest.skip("PORTICO_BIN names a binary without PORTICO_RELEASE_PYO3_CONFIG, "
                    "how it was built (scripts/test.sh passes both)")
    config = release_pyo3_config()
    needs = dynamic_needs(BIN)
    libpythons = [n for n in needs if n.startswith("libpython")]
    if config:
        assert not libpythons, f"{BIN} should carry its interpreter ({config}) but needs {needs}"
        symbols = exported_symbols(BIN)
        for name in ("Py_Initialize", "PyLong_FromLong", "PyExc_TypeError", "_Py_NoneStruct",
                     "PyModule_Create2", "_PyArg_ParseTupleAndKeywords_SizeT"):
            assert name in symbols, f"{name} is not exported by {BIN}"
        # only the interpreter's own names are exported, not the Rust side's
        assert not [s for s in symbols if s.startswith(("mi_", "_ZN"))]
    else:
        assert libpythons, f"{BIN} should link libpython3.X.so but needs {needs}"


def test_the_standard_librarys_extension_modules_import_and_run_in_an_app(portico_server):
    server = portico_server("--wsgi-file", APPS / "load_extensions.py")
    status, body = server_get(server)
    assert status == 200, body
    report = json.loads(body)
    failed = {name: what for name, what in report["modules"].items()
              if what.startswith("ImportError")}
    # a module this CPython was built without is absent, not broken: only an
    # unresolved symbol is the linking's fault
    assert not {n: w for n, w in failed.items() if "symbol" in w}, failed
    for name in ("_json", "_decimal", "_ctypes", "_socket", "select", "math", "zlib",
                 "_struct", "_pickle", "_datetime", "_asyncio", "_csv"):
        assert name not in failed, failed
    assert report["checks"] == {"decimal": "3.3", "sqlite3": 42, "ctypes": 7, "json": 2}


def test_a_third_party_extension_module_loads_in_the_examples_venv(portico_server):
    """MarkupSafe's `_speedups` (Flask's dependency, in the examples' venv) is
    an extension built outside this CPython's tree, against its headers."""
    if not (EXAMPLES_VENV / "pyvenv.cfg").exists():
        pytest.skip(f"{EXAMPLES_VENV} is made by scripts/test.sh")
    server = portico_server("--wsgi-file", APPS / "load_speedups.py", "--virtualenv",
                            EXAMPLES_VENV)
    status, body = server_get(server)
    assert status == 200, body
    assert body.startswith(b"markupsafe._speedups "), body
    assert body.endswith(b" &lt;b&gt;"), body
