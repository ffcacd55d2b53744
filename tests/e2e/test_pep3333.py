"""PEP 3333, point by point, through the real binary.

Apps: tests/e2e/apps/pep_environ.py (environ as JSON), pep_input.py
(wsgi.input), pep_responses.py (start_response, write(), body types),
pep_close.py (close() calls, file_wrapper), pep_validated.py (wsgiref.validate).
"""

import io
import json
import os
import time
import uuid
from urllib.parse import quote

import pytest

from conftest import APPS, wait_until
from httpraw import Conn, build, chunked, module_server

# --- servers, one per app ---------------------------------------------------------------


@pytest.fixture(scope="module")
def env_server():
    with module_server("--wsgi-file", APPS / "pep_environ.py") as srv:
        yield srv


@pytest.fixture(scope="module")
def input_server():
    with module_server("--wsgi-file", APPS / "pep_input.py") as srv:
        yield srv


@pytest.fixture(scope="module")
def resp_server():
    with module_server("--wsgi-file", APPS / "pep_responses.py") as srv:
        yield srv


@pytest.fixture(scope="module")
def close_server(app_log):
    with module_server("--wsgi-file", APPS / "pep_close.py", "--env", f"PEP_CLOSE_LOG={app_log}") as srv:
        yield srv


@pytest.fixture(scope="module")
def validated_server():
    with module_server("--wsgi-file", APPS / "pep_validated.py") as srv:
        yield srv


def environ_of(server, request):
    with Conn.to(server) as conn:
        conn.send(request)
        resp = conn.read_response()
        assert resp.status == 200, resp
        return json.loads(resp.body)["environ"]


def environ_full(server, request):
    with Conn.to(server) as conn:
        conn.send(request)
        resp = conn.read_response()
        assert resp.status == 200, resp
        return json.loads(resp.body)


# --- CGI variables ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_request_method(env_server, method):
    env = environ_of(env_server, build(method, "/m", body=b"x" if method in ("POST", "PUT", "PATCH") else b""))
    assert env["REQUEST_METHOD"] == method


def test_script_name_is_empty(env_server):
    env = environ_of(env_server, build("GET", "/some/path"))
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/some/path"


@pytest.mark.parametrize(
    "target, path_info",
    [
        ("/caf%C3%A9", "/caf\xc3\xa9"),  # UTF-8 bytes, each as one latin-1 character
        ("/a%20b/c%2Bd", "/a b/c+d"),
        ("/latin%E9", "/latin\xe9"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_path_info_is_percent_decoded_as_latin1(env_server, target, path_info):
    env = environ_of(env_server, build("GET", target))
    assert env["PATH_INFO"] == path_info


def test_query_string_is_raw(env_server):
    env = environ_of(env_server, build("GET", "/q?a=1&b=%20x+y&c=caf%C3%A9&d"))
    assert env["QUERY_STRING"] == "a=1&b=%20x+y&c=caf%C3%A9&d"
    assert env["PATH_INFO"] == "/q"


def test_query_string_present_and_empty_without_query(env_server):
    env = environ_of(env_server, build("GET", "/q"))
    assert env.get("QUERY_STRING") == ""


def test_absolute_form_target_gives_path_and_query(env_server):
    env = environ_of(env_server, build("GET", "http://localhost/abs/path?q=1"))
    assert env["PATH_INFO"] == "/abs/path"
    assert env["QUERY_STRING"] == "q=1"


def test_content_type(env_server):
    env = environ_of(
        env_server, build("POST", "/", headers=[("Content-Type", "text/plain; charset=utf-8")], body=b"abc")
    )
    assert env["CONTENT_TYPE"] == "text/plain; charset=utf-8"
    env = environ_of(env_server, build("GET", "/"))
    assert env.get("CONTENT_TYPE", "") == ""


def test_content_length_with_a_body(env_server):
    assert environ_of(env_server, build("POST", "/", body=b"12345"))["CONTENT_LENGTH"] == "5"
    assert environ_of(env_server, build("POST", "/", headers=[("Content-Length", "0")]))["CONTENT_LENGTH"] == "0"


def test_content_length_absent_without_a_body(env_server):
    env = environ_of(env_server, build("GET", "/"))
    assert "CONTENT_LENGTH" not in env


def test_server_name_and_port_from_host(env_server):
    env = environ_of(env_server, build("GET", "/", host="example.com:8080"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")
    assert env["HTTP_HOST"] == "example.com:8080"
    env = environ_of(env_server, build("GET", "/", host="example.com"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "80")


def test_absolute_form_target_authority_names_the_server(env_server):
    # RFC 9112 §3.2.2: the target's authority wins over the Host header.
    env = environ_of(env_server, build("GET", "http://other.example:81/x?y=1", host="example.com"))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("other.example", "81")
    assert env["PATH_INFO"] == "/x"
    assert env["QUERY_STRING"] == "y=1"


def test_empty_host_falls_back_to_the_listener(env_server):
    env = environ_of(env_server, build("GET", "/", host=""))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", str(env_server.port))


def test_server_name_and_port_from_listener_without_host(env_server):
    env = environ_of(env_server, b"GET / HTTP/1.0\r\n\r\n")
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(env_server.port)
    assert "HTTP_HOST" not in env, "a missing Host must not be synthesised"


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_server_protocol_exactly_as_sent(env_server, version):
    env = environ_of(env_server, build("GET", "/", version=version, host="localhost"))
    assert env["SERVER_PROTOCOL"] == version


def test_remote_addr_and_remote_port(env_server):
    with Conn.to(env_server) as conn:
        conn.send(build("GET", "/"))
        resp = conn.read_response()
        env = json.loads(resp.body)
        client_port = conn.sock.getsockname()[1]
    assert env["environ"]["REMOTE_ADDR"] == "127.0.0.1"
    assert env["types"]["REMOTE_PORT"] == "str"
    assert env["environ"]["REMOTE_PORT"] == str(client_port)


def test_request_uri_is_the_raw_target(env_server):
    env = environ_of(env_server, build("GET", "/caf%C3%A9/x?q=%20a&b"))
    assert env["REQUEST_URI"] == "/caf%C3%A9/x?q=%20a&b"


# --- HTTP_ variables ----------------------------------------------------------------------


def test_other_headers_become_http_variables(env_server):
    env = environ_of(
        env_server,
        build("GET", "/", headers=[("X-Custom-Header", "custom value"), ("User-Agent", "pep-test/1"), ("accept", "*/*")]),
    )
    assert env["HTTP_X_CUSTOM_HEADER"] == "custom value"
    assert env["HTTP_USER_AGENT"] == "pep-test/1"
    assert env["HTTP_ACCEPT"] == "*/*"
    assert env["HTTP_HOST"] == "localhost"


def test_repeated_headers_are_joined_with_comma(env_server):
    env = environ_of(env_server, build("GET", "/", headers=[("X-Multi", "a"), ("X-Other", "o"), ("X-Multi", "b")]))
    assert env["HTTP_X_MULTI"] == "a, b"


def test_cookie_headers_are_joined_with_semicolon(env_server):
    env = environ_of(env_server, build("GET", "/", headers=[("Cookie", "a=1"), ("Cookie", "b=2")]))
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_no_http_content_type_or_content_length(env_server):
    env = environ_of(env_server, build("POST", "/", headers=[("Content-Type", "text/plain")], body=b"abc"))
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env
    assert env["CONTENT_LENGTH"] == "3"


def test_header_names_with_underscore_are_dropped(env_server):
    env = environ_of(
        env_server,
        build(
            "POST",
            "/",
            headers=[("X-Spoof", "dash"), ("X_Spoof", "underscore"), ("Content_Length", "7"), ("Content-Length", "3")],
            body=b"abc",
        ),
    )
    assert env["HTTP_X_SPOOF"] == "dash", "an underscore header must not merge into or replace its dash twin"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_LENGTH" not in env


def test_obs_text_header_bytes_arrive_as_latin1(env_server):
    env = environ_of(env_server, build("GET", "/", headers=[(b"X-Latin", b"caf\xe9"), (b"X-Utf8", b"caf\xc3\xa9 \xff")]))
    assert env["HTTP_X_LATIN"] == "caf\xe9"
    assert env["HTTP_X_UTF8"] == "caf\xc3\xa9 \xff"


def test_process_environment_is_not_copied_into_environ(env_server):
    env = environ_of(env_server, build("GET", "/"))
    assert "PATH" not in env and "HOME" not in env


def test_cgi_values_are_str(env_server):
    full = environ_full(env_server, build("POST", "/x?y", headers=[("X-A", "b")], body=b"abc"))
    not_str = {k: t for k, t in full["types"].items() if "." not in k and t != "str"}
    assert not_str == {}


# --- wsgi.* -------------------------------------------------------------------------------


def test_wsgi_version_and_flags(env_server):
    full = environ_full(env_server, build("GET", "/"))
    env, types = full["environ"], full["types"]
    assert types["wsgi.version"] == "tuple" and env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False, "--threads 1 (the default) is not multithreaded"
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    for key in ("wsgi.input", "wsgi.errors"):
        assert key in types


def test_wsgi_multithread_true_with_several_threads(portico_server):
    srv = portico_server("--wsgi-file", APPS / "pep_environ.py", "--threads", "4")
    env = environ_of(srv, build("GET", "/"))
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False


def test_wsgi_errors_is_a_text_stream_that_goes_to_the_log(env_server):
    start = len(env_server.lines)
    environ_of(env_server, build("GET", "/errors"))
    for marker in ("pep-errors-write-marker", "pep-errors-writelines-a", "pep-errors-writelines-b"):
        env_server.wait_for_line(marker, timeout=5, start=start)


# --- wsgi.input ---------------------------------------------------------------------------

INPUT_BODY = b"first line\nsecond\n\nfourth line is longer than the others\n\x00\xff binary\nno newline at end"


def expected_parts(op, n, body):
    f = io.BytesIO(body)
    if op == "read":
        return [f.read()]
    if op == "read_n":
        return list(iter(lambda: f.read(n), b""))
    if op == "readline":
        return list(iter(f.readline, b""))
    if op == "readline_limit":
        return list(iter(lambda: f.readline(n), b""))
    if op in ("readlines", "iter"):
        return f.readlines()
    if op == "mixed":
        return [f.readline(), f.read(3), f.readline(), f.read(1), f.read()]
    raise ValueError(op)


def as_chunked(body, size=7):
    return chunked(*[body[i : i + size] for i in range(0, len(body), size)])


INPUT_OPS = [("read", 0), ("read_n", 3), ("read_n", 1000), ("readline", 0), ("readline_limit", 4),
             ("readlines", 0), ("iter", 0), ("mixed", 0)]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("op, n", INPUT_OPS, ids=[f"{o}-{n}" for o, n in INPUT_OPS])
def test_wsgi_input(input_server, op, n, framing):
    target = f"/?op={op}&n={n}"
    if framing == "chunked":
        req = build("POST", target, headers=[("Transfer-Encoding", "chunked")], body=as_chunked(INPUT_BODY))
    else:
        req = build("POST", target, body=INPUT_BODY)
    with Conn.to(input_server, timeout=5) as conn:  # kept open: reads must stop at the body's end
        conn.send(req)
        resp = conn.read_response()
    assert resp.status == 200, resp
    got = json.loads(resp.body)
    assert [p.encode("latin-1") for p in got["parts"]] == expected_parts(op, n, INPUT_BODY)
    assert got["types"] == ["bytes"]
    assert got["after"] == ["", "", ""], "reads after the end must return b''"
    assert got["after_lines"] == []
    assert got["elapsed"] < 0.5, "a read after the end of the body blocked"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_wsgi_input_readlines_with_hint(input_server, framing):
    target = "/?op=readlines_hint&n=15"
    if framing == "chunked":
        req = build("POST", target, headers=[("Transfer-Encoding", "chunked")], body=as_chunked(INPUT_BODY))
    else:
        req = build("POST", target, body=INPUT_BODY)
    with Conn.to(input_server, timeout=5) as conn:
        conn.send(req)
        resp = conn.read_response()
    assert resp.status == 200, resp
    parts = [p.encode("latin-1") for p in json.loads(resp.body)["parts"]]
    lines, rest = parts[:-1], parts[-1]
    assert rest.startswith(b"|REST|")
    # the hint may be honoured or ignored, but only whole lines come back and nothing is lost
    assert lines and all(line.endswith(b"\n") or line is lines[-1] for line in lines)
    assert b"".join(lines) + rest[len(b"|REST|"):] == INPUT_BODY
    assert len(b"".join(lines)) >= 15


@pytest.mark.parametrize("framing", ["none", "content-length-0", "chunked-empty"])
def test_wsgi_input_empty_body(input_server, framing):
    if framing == "none":
        req = build("GET", "/?op=read")
    elif framing == "content-length-0":
        req = build("POST", "/?op=read", headers=[("Content-Length", "0")])
    else:
        req = build("POST", "/?op=read", headers=[("Transfer-Encoding", "chunked")], body=b"0\r\n\r\n")
    with Conn.to(input_server, timeout=5) as conn:
        conn.send(req)
        resp = conn.read_response()
    got = json.loads(resp.body)
    assert got["parts"] == [""]
    assert got["after"] == ["", "", ""]


# --- start_response -----------------------------------------------------------------------

BAD_START = [
    "status-bytes", "status-int", "status-bare", "status-no-code", "status-short-code",
    "headers-tuple-not-list", "header-value-int", "header-name-bytes", "header-value-bytes",
    "header-three-items", "header-value-crlf", "header-value-lf", "header-value-cr",
    "header-name-crlf", "header-name-colon", "header-value-non-latin1", "status-crlf",
    # a WSGI response is final: a 1xx from the app would leave the client waiting
    "status-100", "status-101", "status-103",
    # the app's Content-Length frames the response, so it must be one valid number
    "header-content-length-abc", "header-content-length-negative", "header-two-content-lengths",
    "header-status",
]


def exchange_all(server, request, method="GET"):
    """One response plus whatever else the server sends within 0.3 s (to catch injections)."""
    with Conn.to(server, timeout=5) as conn:
        conn.send(request)
        resp = conn.read_response(method, skip_interim=False)  # a 1xx counts as the answer
        extra = conn.read_available(0.3)
    return resp, resp.raw_head + resp.body + extra


@pytest.mark.parametrize("case", BAD_START)
def test_start_response_rejects_bad_status_and_headers(resp_server, case):
    resp, raw = exchange_all(resp_server, build("GET", f"/{case}"))
    assert resp.status == 500, resp
    assert b"should not be sent" not in raw
    assert b"pwned" not in raw and b"Injected" not in raw, f"app bytes reached the wire: {raw!r}"


@pytest.mark.parametrize(
    "header",
    ["connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection",
     "proxy-authenticate", "proxy-authorization", "te", "trailer"],
)
def test_start_response_rejects_hop_by_hop_headers(resp_server, header):
    resp, raw = exchange_all(resp_server, build("GET", f"/hop/{header}"))
    assert resp.status == 500, resp
    assert b"should not be sent" not in raw


def test_exc_info_before_output_replaces_status_and_headers(resp_server):
    resp, _ = exchange_all(resp_server, build("GET", "/exc-before-output"))
    assert resp.status == 500, resp
    assert resp.header_all("content-type") == ["text/html"], resp.headers
    assert not resp.has_header("x-before")
    assert resp.body == b"replaced"


def test_exc_info_after_output_reraises_and_cuts_the_connection(resp_server):
    start = len(resp_server.lines)
    with Conn.to(resp_server) as conn:
        conn.send(build("GET", "/exc-after-output"))
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.framing == "chunked"
        assert resp.body.startswith(b"partial")
        assert b"must not be reached" not in resp.body
        assert not resp.complete, "the chunked body was terminated cleanly; the error is invisible"
        assert conn.eof
    resp_server.wait_for_line("pep-exc-after-output-marker", timeout=5, start=start)


def test_second_start_response_without_exc_info_raises(resp_server):
    resp, _ = exchange_all(resp_server, build("GET", "/second-start-response"))
    assert resp.status == 200
    assert resp.body.startswith(b"raised "), resp.body


def test_write_output_comes_before_the_iterable(resp_server):
    resp, _ = exchange_all(resp_server, build("GET", "/write"))
    assert (resp.status, resp.body, resp.complete) == (200, b"first-second-third-fourth", True)


def test_write_only_response_with_content_length(resp_server):
    resp, _ = exchange_all(resp_server, build("GET", "/write-only"))
    assert (resp.status, resp.body, resp.complete) == (200, b"write-only", True)
    assert resp.header("content-length") == "10"


def test_str_body_chunk_is_sent_utf8_encoded(resp_server):
    # Pinned uWSGI-compatible behaviour: a str block is encoded as UTF-8 instead of failing.
    resp, _ = exchange_all(resp_server, build("GET", "/str-chunk"))
    assert resp.status == 200, resp
    assert resp.body == "h\u00e9llo w\u00f6rld".encode("utf-8")


def test_latin1_header_value_is_sent_as_latin1_bytes(resp_server):
    resp, _ = exchange_all(resp_server, build("GET", "/latin1-header"))
    assert resp.status == 200
    assert resp.header("x-latin") == "caf\xe9", resp.raw_head  # one byte 0xE9, not UTF-8


def test_server_keeps_serving_after_rejected_start_response(resp_server):
    exchange_all(resp_server, build("GET", "/header-value-crlf"))
    resp, _ = exchange_all(resp_server, build("GET", "/write"))
    assert resp.status == 200


# --- close() ------------------------------------------------------------------------------


def close_count(path, tag):
    return path.read_text().split().count(tag)


def assert_closed_once(path, tag):
    wait_until(lambda: close_count(path, tag) >= 1, what="close() to be called")
    time.sleep(0.3)
    assert close_count(path, tag) == 1, "close() called more than once"


def test_close_called_once_after_normal_end(close_server, app_log):
    tag = uuid.uuid4().hex
    with Conn.to(close_server) as conn:
        conn.send(build("GET", f"/normal?tag={tag}"))
        resp = conn.read_response()
    assert (resp.status, resp.body, resp.complete) == (200, b"one two three", True)
    assert_closed_once(app_log, tag)


def test_close_called_once_after_exception_mid_stream(close_server, app_log):
    tag = uuid.uuid4().hex
    with Conn.to(close_server) as conn:
        conn.send(build("GET", f"/raise?tag={tag}"))
        resp = conn.read_response()
    assert resp.status == 200 and not resp.complete
    assert_closed_once(app_log, tag)


def test_close_called_once_after_exception_before_the_first_block(close_server, app_log):
    tag = uuid.uuid4().hex
    with Conn.to(close_server) as conn:
        conn.send(build("GET", f"/raise-first?tag={tag}"))
        resp = conn.read_response()
    assert resp.status == 500, resp
    assert_closed_once(app_log, tag)


def test_close_called_once_for_head(close_server, app_log):
    tag = uuid.uuid4().hex
    with Conn.to(close_server) as conn:
        conn.send(build("HEAD", f"/normal?tag={tag}"))
        resp = conn.read_response("HEAD")
        assert resp.status == 200
        assert conn.read_available(0.2) == b""
    assert_closed_once(app_log, tag)


def test_close_called_once_when_the_client_disconnects(close_server, app_log):
    tag = uuid.uuid4().hex
    conn = Conn.to(close_server)
    conn.send(build("GET", f"/endless?tag={tag}"))
    resp = conn.read_head()
    assert resp.status == 200
    got = conn.read_exact(100_000)
    assert len(got) == 100_000
    conn.close()  # hang up mid-stream
    assert_closed_once(app_log, tag)
    # and the process still serves
    with Conn.to(close_server) as conn:
        conn.send(build("GET", "/filewrapper-exists"))
        assert conn.read_response().body == b"yes"


def test_close_called_once_when_the_client_leaves_before_the_response(close_server, app_log):
    tag = uuid.uuid4().hex
    conn = Conn.to(close_server)
    conn.send(build("GET", f"/slow-start?tag={tag}"))
    time.sleep(0.1)
    conn.close()  # gone while the app is still working on its first block
    assert_closed_once(app_log, tag)
    with Conn.to(close_server) as conn:
        conn.send(build("GET", "/filewrapper-exists"))
        assert conn.read_response().body == b"yes"


# --- wsgi.file_wrapper --------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "big.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024))
    return path


def test_file_wrapper_is_offered(close_server):
    with Conn.to(close_server) as conn:
        conn.send(build("GET", "/filewrapper-exists"))
        assert conn.read_response().body == b"yes"


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "chunked"])
def test_file_wrapper_streams_the_file_and_closes_it_once(close_server, app_log, big_file, with_length):
    tag = uuid.uuid4().hex
    target = f"/file?tag={tag}&path={quote(str(big_file))}" + ("&cl=1" if with_length else "")
    with Conn.to(close_server) as conn:
        conn.send(build("GET", target))
        resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.complete
        assert resp.body == big_file.read_bytes()
        if with_length:
            assert resp.header("content-length") == str(3 * 1024 * 1024)
        # connection still usable after the file
        conn.send(build("GET", "/filewrapper-exists"))
        assert conn.read_response().body == b"yes"
    assert_closed_once(app_log, tag)


def test_file_wrapper_with_a_plain_open_file(close_server, big_file):
    with Conn.to(close_server) as conn:
        conn.send(build("GET", f"/file-plain?path={quote(str(big_file))}"))
        resp = conn.read_response()
    assert resp.status == 200 and resp.complete
    assert resp.body == big_file.read_bytes()


# --- wsgiref.validate ---------------------------------------------------------------------

VALIDATED = [
    (build("GET", "/hello"), "GET", 200, b"hello"),
    (build("HEAD", "/hello"), "HEAD", 200, b""),
    (build("POST", "/echo", body=b"posted body"), "POST", 200, b"posted body"),
    (build("POST", "/lines", body=b"a\nb\nc"), "POST", 200, b"3:a\nb\nc"),
    (build("POST", "/lines", headers=[("Transfer-Encoding", "chunked")], body=chunked(b"a\nb", b"\nc")), "POST", 200, b"3:a\nb\nc"),
    (build("POST", "/readlines", headers=[("Transfer-Encoding", "chunked")], body=chunked(b"x\n", b"y")), "POST", 200, b"2:x\ny"),
    (build("GET", "/write"), "GET", 200, b"written-returned"),
    (build("GET", "/generator?x=1"), "GET", 200, b"gen-erator"),
    (build("GET", "/empty-204"), "GET", 204, b""),
    (build("GET", "/errors"), "GET", 200, b"logged"),
    (b"GET /hello HTTP/1.0\r\n\r\n", "GET", 200, b"hello"),
]


def test_validated_app_runs_without_warnings_or_errors(validated_server):
    for request, method, status, body in VALIDATED:
        with Conn.to(validated_server) as conn:
            conn.send(request)
            resp = conn.read_response("HEAD" if method == "HEAD" else "GET")
        assert (resp.status, resp.body) == (status, body), (request, resp, validated_server.log())
    validated_server.wait_for_line("validated-writelines-marker", timeout=5)
    time.sleep(0.5)  # let any late "garbage collected without being closed" reach the log
    log = validated_server.log()
    for bad in ("Warning", "Traceback", "AssertionError", "garbage collected", "Exception ignored"):
        assert bad not in log, f"{bad!r} in the log:\n{log}"
