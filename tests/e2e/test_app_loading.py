"""Loading the WSGI application the way uWSGI does: --wsgi-file/--file, --module
(mod, mod:callable, mod:factory()) and its aliases, --callable, --pythonpath,
--chdir, --env, --virtualenv/--home/-H and VIRTUAL_ENV; and every way a load
can fail (exit 22, the traceback, one "unable to load app" line).

The test apps live in tests/e2e/apps/load_*.py and tests/e2e/apps/loadpkg/;
those that serve are wrapped in wsgiref.validate.validator.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import APPS

REPORT = APPS / "load_report.py"
FAIL_LINE = "portico: unable to load app"


def get(server, path="/"):
    """GET from the server's first listener; return (status, body)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_ok(server, path="/"):
    status, body = get(server, path)
    assert status == 200, f"{status} {body!r}\n{server.log()}"
    return body


def get_json(server, path="/"):
    return json.loads(get_ok(server, path))


def assert_clean_log(server):
    """No traceback, validator complaint or warning from the app in the log."""
    log = server.log()
    for bad in ("Traceback", "AssertionError", "WSGIWarning"):
        assert bad not in log, f"{bad!r} in the log:\n{log}"


def real(path):
    return os.path.realpath(path)


# --- --wsgi-file / --file / --callable ---------------------------------------------------


@pytest.mark.parametrize("option", ["--wsgi-file", "--file"])
def test_wsgi_file_option_loads_application(portico_server, option):
    server = portico_server(option, REPORT)
    facts = get_json(server)
    assert facts["app"] == "load_report"
    assert real(facts["file"]) == real(REPORT)
    assert_clean_log(server)


def test_callable_option_picks_another_callable_of_the_wsgi_file(portico_server):
    server = portico_server("--wsgi-file", APPS / "load_callables.py", "--callable", "alt_app")
    assert get_ok(server) == b"callable=alt_app\n"
    assert_clean_log(server)


def test_default_callable_is_application(portico_server):
    server = portico_server("--wsgi-file", APPS / "load_callables.py")
    assert get_ok(server) == b"callable=application\n"


# --- --module and its forms --------------------------------------------------------------------


def test_module_loads_its_application_callable(portico_server):
    server = portico_server("--pythonpath", APPS, "--module", "load_report")
    facts = get_json(server)
    # imported as a real module under its own name, not exec'd as a file
    assert facts["module"] == "load_report"
    assert real(facts["file"]) == real(REPORT)
    assert_clean_log(server)


def test_module_colon_callable_picks_that_callable(portico_server):
    server = portico_server("--pythonpath", APPS, "--module", "load_callables:alt_app")
    assert get_ok(server) == b"callable=alt_app\n"
    assert_clean_log(server)


def test_module_with_callable_option_picks_that_callable(portico_server):
    server = portico_server(
        "--pythonpath", APPS, "--module", "load_callables", "--callable", "alt_app"
    )
    assert get_ok(server) == b"callable=alt_app\n"


def test_module_factory_call_builds_the_app_once(portico_server):
    server = portico_server("--pythonpath", APPS, "--module", "load_factory:create_app()")
    for _ in range(3):
        assert get_ok(server) == b"made by create_app, factory calls=1\n"
    assert_clean_log(server)


@pytest.mark.parametrize(
    "spec", ["loadpkg.wsgi", "loadpkg.wsgi:app", "loadpkg.wsgi:application"]
)
def test_module_in_a_package_loads_by_dotted_name(portico_server, spec):
    server = portico_server("--pythonpath", APPS, "--module", spec)
    assert get_ok(server) == b"loadpkg.wsgi as loadpkg.wsgi\n"
    assert_clean_log(server)


@pytest.mark.parametrize("alias", ["-w", "--wsgi"])
def test_module_aliases_w_and_wsgi_load_a_module(portico_server, alias):
    server = portico_server("--pythonpath", APPS, alias, "load_callables:alt_app")
    assert get_ok(server) == b"callable=alt_app\n"


def test_module_is_found_in_the_working_directory(portico_server):
    # uWSGI puts "." on sys.path, so `cd project && uwsgi --module mysite.wsgi` works.
    server = portico_server("--module", "load_report", cwd=APPS)
    facts = get_json(server)
    assert facts["module"] == "load_report"
    assert real(facts["file"]) == real(REPORT)


# --- --pythonpath ----------------------------------------------------------------------------------


def test_pythonpath_twice_puts_both_dirs_in_front_of_sys_path(portico_server, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "portico_pp_first.py").write_text('MARKER = "first dir"\n')
    (second / "portico_pp_second.py").write_text('MARKER = "second dir"\n')

    server = portico_server(
        "--pythonpath", first, "--pythonpath", second, "--wsgi-file", APPS / "load_pythonpath.py"
    )
    facts = get_json(server)
    assert (facts["first"], facts["second"]) == ("first dir", "second dir")

    path = [real(p) if p else p for p in facts["sys_path"]]
    assert real(first) in path and real(second) in path, facts["sys_path"]
    stdlib = [
        i
        for i, p in enumerate(path)
        if re.search(r"site-packages|/python3\.\d+(/lib-dynload)?$|\.zip$", p)
    ]
    assert stdlib, facts["sys_path"]
    assert max(path.index(real(first)), path.index(real(second))) < min(stdlib), (
        f"--pythonpath dirs are not in front of sys.path: {facts['sys_path']}"
    )
    assert_clean_log(server)


# --- --chdir -----------------------------------------------------------------------------------------


def test_chdir_happens_before_a_relative_wsgi_file_is_loaded(portico_server, tmp_path):
    # Started from elsewhere: the relative --wsgi-file and the app's relative
    # open() both resolve against the --chdir directory, as in uWSGI.
    server = portico_server("--chdir", APPS, "--wsgi-file", "load_chdir.py", cwd=tmp_path)
    data = (APPS / "load_chdir_data.txt").read_bytes()
    expected = b"import: " + data + b"request: " + data + b"cwd: " + real(APPS).encode()
    assert get_ok(server) == expected
    assert_clean_log(server)


def test_chdir_then_module_imports_from_the_new_directory(portico_server, tmp_path):
    server = portico_server("--chdir", APPS, "--module", "load_report", cwd=tmp_path)
    facts = get_json(server)
    assert facts["module"] == "load_report"
    assert real(facts["import_cwd"]) == real(APPS)
    assert real(facts["cwd"]) == real(APPS)


# --- --env -----------------------------------------------------------------------------------------------


def test_env_options_are_in_os_environ_before_the_app_loads(portico_server):
    server = portico_server(
        "--env",
        "PORTICO_TEST_ALPHA=one",
        "--env",
        "PORTICO_TEST_BETA=two=2 and spaces",
        "--wsgi-file",
        REPORT,
    )
    facts = get_json(server)
    expected = {"PORTICO_TEST_ALPHA": "one", "PORTICO_TEST_BETA": "two=2 and spaces"}
    assert facts["import_env"] == expected
    assert facts["env"] == expected


# --- --virtualenv / --home / -H / VIRTUAL_ENV -----------------------------------------------------------


def make_venv(path):
    """A fresh venv of the python3 on PATH (the one the binary is built for)."""
    python3 = shutil.which("python3")
    assert python3, "python3 is not on PATH"
    subprocess.run([python3, "-m", "venv", "--without-pip", str(path)], check=True)
    purelib = subprocess.run(
        [str(path / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(purelib)


@pytest.fixture(scope="module")
def app_venv(tmp_path_factory):
    """A venv with `portico_venv_only_module` installed in its site-packages only."""
    venv = tmp_path_factory.mktemp("app-venv") / "venv"
    site = make_venv(venv)
    (site / "portico_venv_only_module.py").write_text('MARKER = "imported from the test venv"\n')
    return venv


@pytest.fixture(scope="module")
def empty_venv(tmp_path_factory):
    """A venv without the module, to check which venv wins."""
    venv = tmp_path_factory.mktemp("empty-venv") / "venv"
    make_venv(venv)
    return venv


def assert_runs_in_venv(server, venv):
    facts = get_json(server)
    assert facts["marker"] == "imported from the test venv"
    assert real(facts["module_file"]).startswith(real(venv) + os.sep), facts
    assert real(facts["prefix"]) == real(venv), facts
    assert_clean_log(server)


@pytest.mark.parametrize("option", ["--virtualenv", "--home", "-H"])
def test_virtualenv_option_makes_venv_only_packages_importable(portico_server, app_venv, option):
    server = portico_server(option, app_venv, "--wsgi-file", APPS / "load_venv.py")
    assert_runs_in_venv(server, app_venv)


def test_virtualenv_hides_the_base_interpreters_site_packages(portico_server, app_venv):
    # A venv made without --system-site-packages sees only its own packages,
    # as `venv/bin/python` would; the base interpreter's site-packages (where
    # e.g. an unrelated Flask may be installed) must not leak in.
    server = portico_server("--virtualenv", app_venv, "--wsgi-file", REPORT)
    facts = get_json(server)
    site_dirs = [p for p in facts["sys_path"] if "site-packages" in p]
    assert site_dirs, facts["sys_path"]
    outside = [p for p in site_dirs if not real(p).startswith(real(app_venv) + os.sep)]
    assert not outside, f"site-packages outside the venv on sys.path: {outside}"
    assert real(facts["prefix"]) == real(app_venv)


def test_active_virtual_env_variable_is_honoured(portico_server, app_venv):
    server = portico_server(
        "--wsgi-file", APPS / "load_venv.py", env={"VIRTUAL_ENV": str(app_venv)}
    )
    assert_runs_in_venv(server, app_venv)


def test_virtualenv_option_wins_over_virtual_env_variable(portico_server, app_venv, empty_venv):
    server = portico_server(
        "--virtualenv",
        app_venv,
        "--wsgi-file",
        APPS / "load_venv.py",
        env={"VIRTUAL_ENV": str(empty_venv)},
    )
    assert_runs_in_venv(server, app_venv)


def test_venv_only_app_does_not_load_without_the_venv(run_portico):
    # The control for the tests above: the module really is only in the venv.
    proc = run_portico("--http", "127.0.0.1:0", "--wsgi-file", APPS / "load_venv.py")
    out = assert_load_failure(proc, "load_venv.py")
    assert "portico_venv_only_module" in out


# --- load failures -------------------------------------------------------------------------------------


def assert_load_failure(proc, name, traceback=True):
    """Exit 22 (uWSGI's need-app), exactly one `unable to load app` line naming `name`."""
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 22, f"exit code {proc.returncode}, expected 22:\n{out}"
    lines = [line for line in out.splitlines() if line.startswith(FAIL_LINE)]
    assert len(lines) == 1, f"expected one line starting with {FAIL_LINE!r}:\n{out}"
    assert name in lines[0], f"the failure line does not name {name!r}: {lines[0]}"
    if traceback:
        assert "Traceback (most recent call last)" in out, out
    assert "ready to serve" not in out, out
    return out


def test_missing_wsgi_file_exits_22_naming_it(run_portico, tmp_path):
    missing = tmp_path / "no_such_dir" / "nope_app.py"
    proc = run_portico("--http", "127.0.0.1:0", "--wsgi-file", missing)
    assert_load_failure(proc, "nope_app.py", traceback=False)


def test_wsgi_file_with_import_error_exits_22_with_traceback(run_portico):
    proc = run_portico("--http", "127.0.0.1:0", "--wsgi-file", APPS / "load_fail_import.py")
    out = assert_load_failure(proc, "load_fail_import.py")
    assert "ModuleNotFoundError: No module named 'portico_missing_dependency_xyz'" in out, out


def test_wsgi_file_with_syntax_error_exits_22_showing_the_error(run_portico):
    proc = run_portico("--http", "127.0.0.1:0", "--wsgi-file", APPS / "load_fail_syntax.py")
    # Python reports a SyntaxError with its location, not always with a
    # "Traceback" header: check the location and the error instead.
    out = assert_load_failure(proc, "load_fail_syntax.py", traceback=False)
    assert re.search(r'File "[^"]*load_fail_syntax\.py", line \d+', out), out
    assert "SyntaxError" in out, out


def test_missing_module_exits_22_with_traceback(run_portico):
    proc = run_portico("--http", "127.0.0.1:0", "--module", "portico_no_such_module_xyz")
    out = assert_load_failure(proc, "portico_no_such_module_xyz")
    assert "ModuleNotFoundError" in out, out


def test_missing_callable_in_wsgi_file_exits_22_naming_it(run_portico):
    proc = run_portico(
        "--http", "127.0.0.1:0", "--wsgi-file", REPORT, "--callable", "no_such_callable_xyz"
    )
    out = assert_load_failure(proc, "load_report.py", traceback=False)
    assert "no_such_callable_xyz" in out, out


def test_missing_callable_in_module_exits_22_naming_it(run_portico):
    proc = run_portico(
        "--http", "127.0.0.1:0", "--pythonpath", APPS, "--module", "load_callables:no_such_xyz"
    )
    out = assert_load_failure(proc, "load_callables", traceback=False)
    assert "no_such_xyz" in out, out


def test_raising_factory_exits_22_with_its_traceback(run_portico):
    proc = run_portico(
        "--http", "127.0.0.1:0", "--pythonpath", APPS, "--module", "load_factory_fail:create_app()"
    )
    out = assert_load_failure(proc, "load_factory_fail")
    assert "RuntimeError: load_factory_fail: the factory refused to build the app" in out, out


def test_non_callable_application_exits_22(run_portico):
    proc = run_portico("--http", "127.0.0.1:0", "--wsgi-file", APPS / "load_not_callable.py")
    assert_load_failure(proc, "load_not_callable.py", traceback=False)
