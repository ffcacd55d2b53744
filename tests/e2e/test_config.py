"""uWSGI configuration through the real binary: ini, xml, yaml, json and
environment sources, precedence, placeholders and magic variables,
--show-config, compatibility notes and every config error message.

Configs live in tests/e2e/configs (relative paths there use %d, the file's
own directory); configs that a test needs to vary are written to tmp_path.
"""

import grp
import json
import os
import pwd
import re
import time
import socket
import stat
import struct
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import BIN, EXAMPLES, ROOT, Server, binary_env, read_until_close

CONFIGS = Path(__file__).resolve().parent / "configs"
SAME = ["same.ini", "same.xml", "same.yaml", "same.json"]
# The same configuration as same.* , as flags.
SAME_FLAGS = [
    "--socket", "127.0.0.1:3031", "-s", "/tmp/portico-same.sock",
    "--module", "mysite.wsgi:application", "--master", "-p", "4", "--vacuum=false",
    "--env", "GREETING=hello world", "--harakiri", "30",
]


def portico(*args, env=None, cwd=None):
    """Run portico to completion with stdout and stderr apart."""
    return subprocess.run(
        [str(BIN)] + [str(a) for a in args],
        capture_output=True,
        text=True,
        env=binary_env(env),
        cwd=cwd,
        timeout=60,
    )


def show_config(*args, env=None, cwd=None):
    """`portico ARGS --show-config`: the printed ini, asserting exit 0."""
    proc = portico(*args, "--show-config", env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def settings(ini_text):
    """The (key, value) lines of a --show-config output, `%%` read back as `%`."""
    pairs = []
    for line in ini_text.splitlines():
        if line.startswith((";", "[")) or not line.strip():
            continue
        key, _, value = line.partition(" = ")
        pairs.append((key, value.replace("%%", "%")))
    return pairs


def values(ini_text, key):
    return [v for k, v in settings(ini_text) if k == key]


def fails(*args, env=None, cwd=None):
    """Run portico expecting a config error: exit 1, nothing served; return stderr."""
    proc = portico(*args, env=env, cwd=cwd)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ready to serve" not in proc.stderr
    return proc.stderr


@pytest.fixture
def start():
    """start(*args, listeners=1, env=, cwd=) -> a started Server, args passed as they are."""
    servers = []

    def run(*args, listeners=1, env=None, cwd=None):
        server = Server(list(args), env=env, cwd=cwd)
        servers.append(server)
        return server.wait_started(listeners)

    yield run
    for server in servers:
        server.stop()


def uwsgi_request(addr, path, family=socket.AF_INET, method="GET"):
    """One request in the uwsgi protocol (what nginx's uwsgi_pass sends);
    returns (status, headers dict, body) of the raw HTTP reply read to EOF."""
    env = {
        "REQUEST_METHOD": method,
        "REQUEST_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "localhost",
    }
    block = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
        for k, v in ((k.encode(), v.encode()) for k, v in env.items())
    )
    packet = struct.pack("<BHB", 0, len(block), 0) + block
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(addr)
        sock.sendall(packet)
        raw = read_until_close(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, headers, body


def uwsgi_address(server):
    m = server.wait_for_line(r"uwsgi socket \d+ bound to TCP address ([\d.]+):(\d+)")
    return (m.group(1), int(m.group(2)))


def cargo_version():
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]


def write(path, text):
    path.write_text(text)
    return path


# --- the seeds' configs serve their apps ---------------------------------------------


def test_seed_xml_config_starts_and_serves_its_module_over_the_uwsgi_socket(start):
    server = start("--xml", CONFIGS / "seed_app.xml")
    status, headers, body = uwsgi_request(uwsgi_address(server), "/hello")
    assert status == 200, server.log()
    assert json.loads(body)["app"] == "seed flask module"
    assert json.loads(body)["path_info"] == "/hello"
    server.wait_for_line(r"spawned uWSGI worker 4 ")  # the master logs them one by one
    log = server.log()
    assert len(re.findall(r"spawned uWSGI worker \d+", log)) == 4, log  # <processes>4</processes>
    assert "spawned uWSGI master process" in log, log  # <master/>


def test_seed_xml_config_as_the_positional_argument(start):
    server = start(CONFIGS / "seed_app.xml")
    status, _, body = uwsgi_request(uwsgi_address(server), "/")
    assert status == 200, server.log()
    assert json.loads(body)["app"] == "seed flask module"


def test_seed_ini_mounts_server_py_under_myapp_with_manage_script_name(start):
    server = start(CONFIGS / "seed_mount.ini")
    status, _, body = uwsgi_request(uwsgi_address(server), "/myapp/foo")
    assert status == 200, server.log()
    assert json.loads(body) == {"script_name": "/myapp", "path_info": "/foo"}


def test_typical_django_ini_is_accepted_and_serves_the_example(start, examples_venv, tmp_path, http):
    env = {"CFG_RUN_DIR": str(tmp_path), "PORTICO_EXAMPLES_VENV": str(examples_venv)}
    server = start("--ini", CONFIGS / "django.ini", env=env, cwd=tmp_path)
    resp = http.get(server.url + "/", timeout=10)
    assert resp.status_code == 200, server.log()
    assert resp.text == "Hello from Django!\n"
    resp = http.get(server.url + "/hello/bob/", timeout=10)
    assert resp.json() == {"greeting": "Hello, bob!", "url": "/hello/bob/"}
    # the uwsgi unix socket, chmod-socket = 664
    sock_path = tmp_path / "mysite.sock"
    assert stat.S_IMODE(sock_path.stat().st_mode) == 0o664, server.log()
    status, _, body = uwsgi_request(str(sock_path), "/", family=socket.AF_UNIX)
    assert (status, body) == (200, b"Hello from Django!\n"), server.log()
    log = server.log()
    assert "portico: plugins = python3 ignored: Python is built in" in log, log
    # `project` and `base` are used as %(placeholders): no unknown-option warning
    assert "WARNING" not in log, log


def test_django_ini_settings_as_show_config_prints_them(examples_venv, tmp_path):
    env = {"CFG_RUN_DIR": str(tmp_path), "PORTICO_EXAMPLES_VENV": str(examples_venv)}
    out = show_config("--ini", CONFIGS / "django.ini", env=env)
    django = (EXAMPLES / "django_project").resolve()
    assert values(out, "chdir") == [f"{CONFIGS}/../../../examples/django_project"]
    assert Path(values(out, "chdir")[0]).resolve() == django
    assert values(out, "virtualenv") == [str(examples_venv)]  # `home` is an alias
    assert values(out, "static-map") == [f"/static={CONFIGS}/../../../examples/django_project/static"]
    for key, value in [("master", "true"), ("processes", "2"), ("chmod-socket", "664"),
                       ("vacuum", "true"), ("die-on-term", "true"), ("harakiri", "30"),
                       ("max-requests", "5000")]:
        assert values(out, key) == [value], (key, out)
    assert "plugins" not in out


# --- the same configuration in every format ------------------------------------------


def test_ini_xml_yaml_json_and_flags_give_identical_show_config():
    outputs = {name: show_config(CONFIGS / name) for name in SAME}
    outputs["flags"] = show_config(*SAME_FLAGS)
    outputs["--ini"] = show_config("--ini", CONFIGS / "same.ini")
    outputs["--xml"] = show_config("--xml", CONFIGS / "same.xml")
    outputs["--yaml"] = show_config("--yaml", CONFIGS / "same.yaml")
    outputs["--yml"] = show_config("--yml", CONFIGS / "same.yaml")
    outputs["--json"] = show_config("--json", CONFIGS / "same.json")
    outputs["-j"] = show_config("-j", CONFIGS / "same.json")
    reference = outputs["same.ini"]
    for name, out in outputs.items():
        assert out == reference, f"{name} differs:\n{out}\nvs same.ini:\n{reference}"
    assert settings(reference) == [
        ("socket", "127.0.0.1:3031"), ("socket", "/tmp/portico-same.sock"),
        ("module", "mysite.wsgi:application"), ("master", "true"), ("processes", "4"),
        ("vacuum", "false"), ("env", "GREETING=hello world"), ("harakiri", "30"),
    ]
    assert reference.startswith(";portico instance configuration\n[uwsgi]\n"), reference


@pytest.mark.parametrize("source", SAME + ["django.ini"])
def test_show_config_round_trip_is_stable(source, tmp_path, examples_venv):
    env = {"CFG_RUN_DIR": str(tmp_path), "PORTICO_EXAMPLES_VENV": str(examples_venv)}
    first = show_config(CONFIGS / source, env=env)
    shown = write(tmp_path / "shown.ini", first)
    second = show_config("--ini", shown, env=env)
    assert second == first
    third = show_config(write(tmp_path / "again.ini", second), env=env)
    assert third == first


def test_show_config_round_trip_keeps_percent_signs_and_placeholders(tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nname = demo\nenv = RATE=100%%\nenv = N=%(name)\n")
    first = show_config(ini)
    assert values(first, "env") == ["RATE=100%", "N=demo"]
    assert "set-placeholder = name=demo" in first
    assert show_config("--ini", write(tmp_path / "shown.ini", first)) == first


# --- environment variables and precedence ------------------------------------------------


@pytest.mark.parametrize("var", ["UWSGI_PROCESSES", "PORTICO_PROCESSES"])
def test_environment_variable_sets_an_option(var):
    out = show_config("--http", ":0", env={var: "3"})
    assert values(out, "processes") == ["3"]


def test_environment_variable_switch_follows_uwsgi_booleans():
    assert values(show_config(env={"UWSGI_MASTER": "1"}), "master") == ["true"]
    assert values(show_config(env={"UWSGI_MASTER": "off"}), "master") == ["false"]
    assert values(show_config(env={"PORTICO_LAZY_APPS": ""}), "lazy-apps") == ["true"]


def test_environment_is_lowest_then_command_line_then_positional_file(tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nprocesses = 5\n")
    env = {"UWSGI_PROCESSES": "2"}
    # the effective value is the last one
    assert values(show_config(env=env), "processes") == ["2"]
    assert values(show_config("--processes", "9", env=env), "processes") == ["2", "9"]
    # a positional file comes after every option, wherever it stands (uWSGI's getopt permutes)
    assert values(show_config(ini, "--processes", "9", env=env), "processes") == ["2", "9", "5"]
    assert values(show_config("--processes", "9", ini, env=env), "processes") == ["2", "9", "5"]
    # --ini is read where it stands on the command line
    assert values(show_config("--ini", ini, "--processes", "9"), "processes") == ["5", "9"]


def test_later_single_values_win_and_lists_accumulate_in_the_running_server(start, tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nprocesses = 4\nhttp = 127.0.0.1:0\n")
    server = start("--ini", ini, "--processes", "2", "--http", "127.0.0.1:0",
                   "--wsgi-file", EXAMPLES / "hello.py", "--master", listeners=2)
    assert len(server.addresses) == 2, server.log()
    server.wait_for_line(r"spawned uWSGI worker 2 ")
    time.sleep(0.3)  # a third worker, if any, would be logged by now
    assert len(re.findall(r"spawned uWSGI worker \d+", server.log())) == 2, server.log()


# --- placeholders and magic variables ---------------------------------------------------


def magic_cases(tmp_path):
    d = str(tmp_path.resolve())
    return {
        "%d": d + "/",
        "%n": "app",
        "%e": "ini",
        "%s": "app.ini",
        "%p": d + "/app.ini",
        "%c": tmp_path.resolve().name,
        "%h": socket.gethostname(),
        "%k": str(os.cpu_count()),
        "%u": str(os.getuid()),
        "%U": pwd.getpwuid(os.getuid()).pw_name,
        "%g": str(os.getgid()),
        "%G": grp.getgrgid(os.getgid()).gr_name,
        "%V": cargo_version(),
        "%%": "%",
    }


@pytest.mark.parametrize("var", ["%d", "%n", "%e", "%s", "%p", "%c", "%h", "%k", "%u", "%U",
                                 "%g", "%G", "%V", "%%"])
def test_magic_variable(var, tmp_path):
    ini = write(tmp_path / "app.ini", f"[uwsgi]\nenv = X={var}\n")
    assert values(show_config(ini), "env") == ["X=" + magic_cases(tmp_path)[var]]


def test_magic_variables_describe_the_file_they_are_in_not_the_working_directory(tmp_path):
    sub = tmp_path / "cfg"
    sub.mkdir()
    ini = write(sub / "site.ini", "[uwsgi]\nchdir = %d\nenv = NAME=%n\n")
    out = show_config("cfg/site.ini", cwd=tmp_path)
    assert values(out, "chdir") == [str(sub.resolve()) + "/"]
    assert values(out, "env") == ["NAME=site"]


def test_env_reference(tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nenv = H=$(CFG_TEST_HOME)\nenv = U=$(CFG_UNSET)\n")
    out = show_config(ini, env={"CFG_TEST_HOME": "/home/someone"})
    assert values(out, "env") == ["H=/home/someone", "U="]


def test_file_reference_reads_the_file_without_its_trailing_newline(tmp_path):
    write(tmp_path / "secret.txt", "s3cret\n")
    ini = write(tmp_path / "app.ini", "[uwsgi]\nenv = SECRET=@(%dsecret.txt)\n")
    assert values(show_config(ini), "env") == ["SECRET=s3cret"]


def test_option_reference_uses_a_value_set_earlier(tmp_path):
    ini = write(tmp_path / "app.ini",
                "[uwsgi]\nprocesses = 4\nproject = myapp\nmodule = %(project).wsgi:application\n"
                "env = WORKERS=%(workers)\n")
    out = show_config(ini)
    assert values(out, "module") == ["myapp.wsgi:application"]
    assert values(out, "env") == ["WORKERS=4"]  # `workers` is an alias of processes


def test_option_reference_math_is_left_to_right_as_in_uwsgi(tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nprocesses = 4\nthreads = %(processes + 2 * 3)\n")
    assert values(show_config(ini), "threads") == ["18"]


def test_set_placeholder_and_set(tmp_path):
    ini = write(tmp_path / "app.ini",
                "[uwsgi]\nset-ph = root=/srv\nset = processes=3\nchdir = %(root)/app\n")
    out = show_config(ini)
    assert values(out, "chdir") == ["/srv/app"]
    assert values(out, "processes") == ["3"]
    assert values(show_config("--set-placeholder", "x=1", "--ini", write(
        tmp_path / "b.ini", "[uwsgi]\nthreads = %(x)\n")), "threads") == ["1"]


def test_option_reference_to_nothing_is_an_error(tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nmodule = %(project).wsgi\n")
    err = fails(ini)
    assert f'{ini}:2: %(project): "project" is not an option or placeholder set before this line' in err, err


def test_include_and_a_section_of_the_same_file(tmp_path):
    write(tmp_path / "base.yaml", "uwsgi:\n  threads: 2\n")
    ini = write(tmp_path / "app.ini",
                "[uwsgi]\ninclude = %dbase.yaml\nini = :extra\n[extra]\nprocesses = 7\n")
    out = show_config(ini)
    assert values(out, "threads") == ["2"]
    assert values(out, "processes") == ["7"]


def test_section_chosen_with_a_colon_and_xml_id(tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nprocesses = 1\n[prod]\nprocesses = 8\n")
    assert values(show_config("--ini", f"{ini}:prod"), "processes") == ["8"]
    xml = write(tmp_path / "app.xml",
                '<all><uwsgi id="dev"><processes>1</processes></uwsgi>'
                '<uwsgi id="prod"><processes>6</processes></uwsgi></all>')
    assert values(show_config("--xml", f"{xml}:prod"), "processes") == ["6"]
    js = write(tmp_path / "app.json", '{"uwsgi": {"processes": 1}, "prod": {"processes": 5}}')
    assert values(show_config("--json", f"{js}:prod"), "processes") == ["5"]


# --- booleans ---------------------------------------------------------------------------


@pytest.mark.parametrize("text,want", [
    ("master", "true"), ("master =", "true"), ("master = true", "true"), ("master = yes", "true"),
    ("master = 1", "true"), ("master = on", "true"), ("master = false", "false"),
    ("master = OFF", "false"), ("master = no", "false"), ("master = 0", "false"),
])
def test_ini_booleans_follow_uwsgi(text, want, tmp_path):
    ini = write(tmp_path / "app.ini", f"[uwsgi]\n{text}\n")
    assert values(show_config(ini), "master") == [want]


def test_json_true_false_null_numbers_and_arrays(tmp_path):
    js = write(tmp_path / "app.json",
               '{"uwsgi": {"master": true, "vacuum": false, "lazy-apps": null, '
               '"processes": 4, "pythonpath": ["/a", "/b"]}}')
    out = show_config(js)
    assert settings(out) == [("master", "true"), ("vacuum", "false"), ("lazy-apps", "false"),
                             ("processes", "4"), ("pythonpath", "/a"), ("pythonpath", "/b")]


# --- compatibility: plugins, unknown keys --------------------------------------------


def test_plugins_python3_is_accepted_and_ignored_with_a_note(tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nplugins = python3\nprocesses = 2\n")
    proc = portico(ini, "--show-config")
    assert proc.returncode == 0, proc.stderr
    assert "portico: plugins = python3 ignored: Python is built in" in proc.stderr
    assert values(proc.stdout, "processes") == ["2"]


def test_unknown_key_in_a_file_warns_and_start_up_continues(start, tmp_path):
    ini = write(tmp_path / "app.ini",
                f"[uwsgi]\nhttp = 127.0.0.1:0\nwsgi-file = {EXAMPLES / 'hello.py'}\nproceses = 4\n")
    server = start(ini)
    assert f'portico: WARNING: {ini}:4: unknown option "proceses" (did you mean "--processes"?)' \
        in server.log(), server.log()


@pytest.mark.parametrize("how", ["flag", "file"])
def test_unknown_key_with_strict_is_fatal(how, tmp_path):
    strict = "strict = true\n" if how == "file" else ""
    ini = write(tmp_path / "app.ini",
                f"[uwsgi]\n{strict}http = 127.0.0.1:0\nwsgi-file = {EXAMPLES / 'hello.py'}\nproceses = 4\n")
    line = 5 if how == "file" else 4
    err = fails(*(["--strict"] if how == "flag" else []), ini)
    assert f'portico: {ini}:{line}: unknown option "proceses" (did you mean "--processes"?)' in err, err


def test_unknown_option_on_the_command_line_exits_1_with_a_suggestion():
    err = fails("--show-confg")
    assert 'command line: unknown option "--show-confg" (did you mean "--show-config"?)' in err, err


# --- errors -----------------------------------------------------------------------------


# (file name, text, the error after `portico: `; `{path}` is the file's path)
FILE_ERRORS = {
    "broken xml names file line and the expected tag": (
        "app.xml", "<uwsgi>\n  <master/>\n  <processes>4</uwsgi>\n",
        "{path}:3:15: expected </processes>, found </uwsgi>"),
    "bad yaml indentation names file and line": (
        "app.yml", "uwsgi:\n  master: true\n    processes: 4\n",
        "{path}:3: bad indentation: expected 2 spaces like line 2, found 4"),
    "invalid json names line and column": (
        "app.json", '{"uwsgi": {\n  "master": true\n  "processes": 4\n}}\n',
        '{path}:3:3: expected "," or "}", found a string'),
    "ini line without equals": (
        "app.ini", "[uwsgi]\nmaster\nprocesses 4\n",
        '{path}:3: expected "key = value", found "processes 4"'),
    "ini bare word that is not a switch": (
        "app.ini", "[uwsgi]\nmaster\nfrobnicate\n",
        '{path}:3: expected "key = value", found "frobnicate"'),
    "ini bare option that needs a value": (
        "app.ini", "[uwsgi]\nsocket\n",
        '{path}:2: option "--socket" needs a value'),
}


@pytest.mark.parametrize("case", sorted(FILE_ERRORS))
def test_config_file_error_names_file_line_and_what_is_wrong(tmp_path, case):
    name, text, message = FILE_ERRORS[case]
    path = write(tmp_path / name, text)
    err = fails(path)
    assert "portico: " + message.replace("{path}", str(path)) in err, err


def test_missing_file_names_it_and_the_reason(tmp_path):
    err = fails(tmp_path / "app.ini")
    assert f"portico: cannot read {tmp_path / 'app.ini'}: No such file or directory" in err, err
    err = fails("--yaml", tmp_path / "nope.yaml")
    assert f"cannot read {tmp_path / 'nope.yaml'}: No such file or directory" in err, err


def test_missing_section_lists_the_sections_found(tmp_path):
    ini = write(tmp_path / "app.ini", "[dev]\nmaster\n[prod]\nprocesses = 2\n")
    err = fails(ini)
    assert f'portico: {ini}: no section "uwsgi" (found: "dev", "prod")' in err, err
    err = fails("--ini", f"{ini}:staging")
    assert f'portico: {ini}: no section "staging" (found: "dev", "prod")' in err, err


def test_value_of_the_wrong_kind_names_option_value_kind_and_origin(tmp_path):
    ini = write(tmp_path / "app.ini", "[uwsgi]\nmaster\n\nprocesses = many\n")
    err = fails(ini)
    assert f'portico: {ini}:4: option "--processes": "many" is not a whole number from 1 to 1024' in err, err
    err = fails(env={"UWSGI_PROCESSES": "lots"})
    assert 'portico: env UWSGI_PROCESSES: option "--processes": "lots" is not a whole number' in err, err


def test_positional_argument_that_is_not_a_config_file_is_refused(tmp_path):
    err = fails(EXAMPLES / "hello.py")
    assert "unexpected argument" in err and "hello.py" in err, err
