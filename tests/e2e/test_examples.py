"""Every app in examples/ answered correctly through the real binary, the
framework ones with their dependencies in the examples venv (passed with
--virtualenv; made by scripts/test.sh from examples/requirements.txt).
"""

import re
import shlex

import pytest

from conftest import EXAMPLES, ROOT

HELLO = EXAMPLES / "hello.py"
SIMPLE_APP = EXAMPLES / "simple_app.py"
WEBPY = EXAMPLES / "webpy_hello.py"
FLASK_DIR = EXAMPLES / "flask_app"
DJANGO_DIR = EXAMPLES / "django_project"


def venv_args(venv):
    return ["--virtualenv", venv]


# --- hello.py ------------------------------------------------------------------------------


@pytest.mark.parametrize("with_venv", [False, True], ids=["no-venv", "examples-venv"])
def test_hello_answers_hello_world(portico_server, http, request, with_venv):
    args = venv_args(request.getfixturevalue("examples_venv")) if with_venv else []
    server = portico_server(*args, "--wsgi-file", HELLO)
    resp = http.get(server.url + "/", timeout=10)
    assert resp.status_code == 200
    assert resp.content == b"Hello, World!\n"
    assert resp.headers["Content-Type"] == "text/plain"
    assert resp.headers["Content-Length"] == "14"


# --- simple_app.py (the seeds') -----------------------------------------------------------------


def test_simple_app_str_body_is_sent_as_utf8_with_a_warning(portico_server, http):
    server = portico_server("--wsgi-file", SIMPLE_APP)
    before = len(server.lines)
    resp = http.get(server.url + "/hello.htm", timeout=10)
    assert resp.status_code == 200
    assert resp.content == b"Hello world!\n"
    assert resp.headers["Content-Type"] == "text/plain"
    # The str chunk is a PEP 3333 violation accepted for uWSGI compatibility,
    # and the log says so.
    server.wait_for_line(r"(?i)warn", start=before)


# --- webpy_hello.py (the seeds') ------------------------------------------------------------------


def test_webpy_hello_welcomes_on_any_path(portico_server, http, examples_venv):
    server = portico_server(*venv_args(examples_venv), "--wsgi-file", WEBPY)
    for path in ("/", "/hello.htm", "/a/b/c?x=1&y=2"):
        resp = http.get(server.url + path, timeout=10)
        assert resp.status_code == 200, (path, resp.text, server.log())
        assert resp.text == "Welcome to webpy!", path


# --- flask_app/ ----------------------------------------------------------------------------------------


@pytest.fixture(params=["wsgi-file", "module"])
def flask_server(request, portico_server, examples_venv):
    """The Flask example, loaded as a file (the app's `application`) or as `app:app`."""
    if request.param == "wsgi-file":
        load = ["--wsgi-file", FLASK_DIR / "app.py"]
    else:
        load = ["--pythonpath", FLASK_DIR, "--module", "app:app"]
    return portico_server(*venv_args(examples_venv), *load)


def test_flask_index_answers_text(flask_server, http):
    resp = http.get(flask_server.url + "/", timeout=10)
    assert resp.status_code == 200, flask_server.log()
    assert resp.text == "Hello from Flask!\n"
    assert resp.headers["Content-Type"].startswith("text/plain")


def test_flask_json_view_answers_json(flask_server, http):
    resp = http.get(flask_server.url + "/json", timeout=10)
    assert resp.status_code == 200, flask_server.log()
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"message": "Hello from Flask", "method": "GET", "path": "/json"}


def test_flask_echo_returns_the_posted_body(flask_server, http):
    small = "héllo, wörld".encode("utf-8")
    resp = http.post(
        flask_server.url + "/echo",
        data=small,
        headers={"Content-Type": "text/plain; charset=utf-8"},
        timeout=10,
    )
    assert resp.status_code == 200, flask_server.log()
    assert resp.content == small
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"

    big = bytes(range(256)) * 1024  # 256 KiB, every byte value
    resp = http.post(
        flask_server.url + "/echo",
        data=big,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert resp.status_code == 200, flask_server.log()
    assert resp.content == big


def test_flask_echo_refuses_get(flask_server, http):
    resp = http.get(flask_server.url + "/echo", timeout=10)
    assert resp.status_code == 405


@pytest.mark.parametrize(
    "path, name",
    [("/hello/x", "x"), ("/hello/caf%C3%A9", "café")],
)
def test_flask_hello_builds_its_url_with_url_for(flask_server, http, path, name):
    resp = http.get(flask_server.url + path, timeout=10)
    assert resp.status_code == 200, flask_server.log()
    assert resp.json() == {"greeting": f"Hello, {name}!", "url": path}


def test_flask_unknown_url_is_404(flask_server, http):
    resp = http.get(flask_server.url + "/no/such/page", timeout=10)
    assert resp.status_code == 404


# --- django_project/ -----------------------------------------------------------------------------------


@pytest.fixture
def django_server(portico_server, examples_venv, tmp_path):
    # Started from elsewhere: --chdir alone must make `mysite` importable.
    return portico_server(
        *venv_args(examples_venv),
        "--chdir",
        DJANGO_DIR,
        "--module",
        "mysite.wsgi:application",
        cwd=tmp_path,
    )


def test_django_index_answers_text(django_server, http):
    resp = http.get(django_server.url + "/", timeout=10)
    assert resp.status_code == 200, django_server.log()
    assert resp.text == "Hello from Django!\n"
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_django_hello_builds_its_url_with_reverse(django_server, http):
    resp = http.get(django_server.url + "/hello/bob/", timeout=10)
    assert resp.status_code == 200, django_server.log()
    assert resp.json() == {"greeting": "Hello, bob!", "url": "/hello/bob/"}


def test_django_appends_the_missing_slash_with_a_redirect(django_server, http):
    resp = http.get(django_server.url + "/hello/bob", timeout=10, allow_redirects=False)
    assert resp.status_code == 301, django_server.log()
    assert resp.headers["Location"] == "/hello/bob/"


def test_django_echo_returns_the_posted_body(django_server, http):
    body = "ünïcode body\n".encode("utf-8") * 100
    resp = http.post(
        django_server.url + "/echo/",
        data=body,
        headers={"Content-Type": "text/plain; charset=utf-8"},
        timeout=10,
    )
    assert resp.status_code == 200, django_server.log()
    assert resp.content == body


def test_django_unknown_url_is_404(django_server, http):
    resp = http.get(django_server.url + "/no/such/page/", timeout=10)
    assert resp.status_code == 404
    assert re.search(r"Not Found", resp.text), resp.text


# --- examples/README.md's commands, as written ----------------------------------------------


def documented_commands():
    """Every `target/release/portico ...` command in examples/README.md's sh blocks,
    continuation lines joined."""
    text = (EXAMPLES / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.startswith("target/release/portico "):
                commands.append(command)
    return commands


@pytest.mark.parametrize("command", documented_commands())
def test_examples_readme_command_serves_as_written(command, portico_server, http, examples_venv):
    """Run from the repository root as the reader would: only the binary's path
    (PORTICO_BIN), the port (0, a free one) and the examples venv's path (it is
    elsewhere when a worktree runs the tests with PORTICO_EXAMPLES_VENV) are
    substituted; `$PWD` is the root, as the shell would expand it there."""
    words = shlex.split(command.replace("$PWD", str(ROOT)))
    written_venv = ROOT / "target" / "examples-venv"
    if examples_venv.resolve() != written_venv.resolve():
        words = [str(examples_venv) if w in ("target/examples-venv", str(written_venv)) else w
                 for w in words]
    args = ["127.0.0.1:0" if w == "127.0.0.1:8000" else w for w in words[1:]]
    server = portico_server(*args, cwd=ROOT)
    resp = http.get(server.url + "/", timeout=10)
    # Django's and Flask's index, hello.py, web.py: every example answers / (simple_app too)
    assert resp.status_code == 200, server.log()


def test_examples_readme_documents_the_commands_tested_here():
    assert len(documented_commands()) >= 5
