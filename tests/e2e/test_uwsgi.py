"""The uwsgi protocol with raw bytes (no nginx), unix sockets, and mounts.

Packets are built here byte by byte (reference/uwsgi.md §1): a 4-byte header
`modifier1 | u16le datasize | modifier2`, the vars block, the body. The app
(apps/uw_echo.py) answers with its environ and the body it read as JSON; the
mounted app (apps/uw_server.py) reports SCRIPT_NAME, PATH_INFO and the URLs
wsgiref builds from them.
"""

import concurrent.futures
import grp
import json
import os
import pwd
import runpy
import signal
import socket
import stat
import struct
import time

import pytest

from conftest import APPS, EXAMPLES, read_until_close
from httpraw import Conn, build
from nginxctl import address, listeners, portico, public_dir

ECHO = APPS / "uw_echo.py"
SIMPLE_APP = EXAMPLES / "simple_app.py"
BIG = runpy.run_path(str(ECHO))["BIG"]  # what uw_echo sends for .../big


# --- packets and a raw client ----------------------------------------------------------


def block(pairs):
    """The vars block: u16le klen, key, u16le vlen, value for each pair (bytes or str)."""
    out = bytearray()
    for k, v in pairs:
        k = k if isinstance(k, bytes) else k.encode("latin-1")
        v = v if isinstance(v, bytes) else v.encode("latin-1")
        out += struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
    return bytes(out)


def packet(pairs, modifier1=0, modifier2=0, raw_block=None):
    data = block(pairs) if raw_block is None else raw_block
    return bytes([modifier1]) + struct.pack("<H", len(data)) + bytes([modifier2]) + data


def wsgi_vars(method="GET", path="/", query="", protocol="HTTP/1.1", **extra):
    """The vars nginx's uwsgi_params send (in that order), then `extra`."""
    pairs = [
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("REQUEST_URI", path + ("?" + query if query else "")),
        ("PATH_INFO", path),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
    ]
    if protocol is not None:
        pairs.append(("SERVER_PROTOCOL", protocol))
    pairs += [
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "54321"),
        ("SERVER_PORT", "8080"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "example.test:8080"),
    ]
    pairs += list(extra.items())
    return pairs


def connect(addr, timeout=10.0):
    if isinstance(addr, tuple):
        sock = socket.create_connection(addr, timeout=timeout)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(addr))
    return sock


read_all = read_until_close


def exchange(addr, data, shut_write=False, timeout=10.0):
    """Send raw bytes, optionally half-close, return everything until the server closes."""
    with connect(addr, timeout) as sock:
        try:
            sock.sendall(data)
            if shut_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(sock)


def split(raw):
    """(status line, [(name, value)], body) of a raw uwsgi response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no end of head in {raw[:300]!r}"
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon, f"bad header line {line!r} in {raw[:300]!r}"
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return lines[0].decode("latin-1"), headers, body


def echo(addr, pairs, body=b"", modifier1=0):
    """Send one request to uw_echo; return (status line, headers, decoded JSON)."""
    raw = exchange(addr, packet(pairs, modifier1) + body)
    status, headers, payload = split(raw)
    assert status.endswith(" 200 OK"), raw[:500]
    return status, headers, json.loads(payload)


def count_lines(server, pattern, start=0):
    import re

    regex = re.compile(pattern)
    return sum(1 for line in server.lines[start:] if regex.search(line))


def assert_served(server, addr):
    """The server still answers a normal request (after a bad one)."""
    _, _, doc = echo(addr, wsgi_vars(path="/after"))
    assert doc["environ"]["PATH_INFO"] == "/after", server.log()


# --- one echo server for the protocol tests --------------------------------------------


@pytest.fixture(scope="module")
def srv():
    with portico("--socket", "127.0.0.1:0", "--wsgi-file", ECHO) as server:
        server.uwsgi = address(server, "uwsgi")
        yield server


# --- modifier1 ---------------------------------------------------------------------------


def test_modifier0_is_a_wsgi_request_answered_with_a_bare_http_response(srv):
    pairs = wsgi_vars(path="/hello", query="a=1&b=2")
    raw = exchange(srv.uwsgi, packet(pairs))
    status, headers, body = split(raw)
    assert status == "HTTP/1.1 200 OK"
    # the app's headers and nothing else: no Date, Server, Content-Length,
    # Connection or Transfer-Encoding added; the close ends the body
    assert headers == [("Content-Type", "application/json"), ("X-Echo", "1")]
    doc = json.loads(body)
    env = doc["environ"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/hello"
    assert env["QUERY_STRING"] == "a=1&b=2"
    assert env["REQUEST_URI"] == "/hello?a=1&b=2"
    assert env["SERVER_NAME"] == "localhost" and env["SERVER_PORT"] == "8080"
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"] == "54321"
    assert env["DOCUMENT_ROOT"] == "/usr/share/nginx/html"
    assert env["HTTP_HOST"] == "example.test:8080"
    assert env["SCRIPT_NAME"] == "", "SCRIPT_NAME defaults to ''"
    assert env["wsgi.url_scheme"] == "http"
    assert doc["body_hex"] == "" and doc["after"] == "b''"


def test_modifier0_does_not_touch_script_name_and_path_info(srv):
    pairs = wsgi_vars(path="/myapp/foo", SCRIPT_NAME="/myapp")
    _, _, doc = echo(srv.uwsgi, pairs, modifier1=0)
    assert (doc["environ"]["SCRIPT_NAME"], doc["environ"]["PATH_INFO"]) == ("/myapp", "/myapp/foo")


@pytest.mark.parametrize(
    "script_name, path_info, want",
    [
        ("/myapp", "/myapp/foo", ("/myapp", "/foo")),
        ("/myapp", "/myapp", ("/myapp", "")),
        ("/myapp", "/myapp/", ("/myapp", "/")),
        ("/myapp", "/myappX/foo", ("/myapp", "/myappX/foo")),  # not at a `/` boundary
        ("/myapp", "/myappX", ("/myapp", "/myappX")),
        ("/other", "/myapp/foo", ("/other", "/myapp/foo")),  # not a prefix at all
        ("/myapp/foo/bar", "/myapp/foo", ("/myapp/foo/bar", "/myapp/foo")),  # longer than PATH_INFO
    ],
    ids=["prefix", "exact", "slash", "no-boundary", "no-boundary-end", "not-prefix", "longer"],
)
def test_modifier30_cuts_script_name_only_when_a_real_prefix(srv, script_name, path_info, want):
    pairs = wsgi_vars(path=path_info, SCRIPT_NAME=script_name)
    _, _, doc = echo(srv.uwsgi, pairs, modifier1=30)
    env = doc["environ"]
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == want


def test_modifier30_without_script_name_is_a_plain_request(srv):
    _, _, doc = echo(srv.uwsgi, wsgi_vars(path="/a/b"), modifier1=30)
    assert (doc["environ"]["SCRIPT_NAME"], doc["environ"]["PATH_INFO"]) == ("", "/a/b")


def test_modifier100_ping_gets_the_pong_bytes_and_a_log_line(srv):
    start = len(srv.lines)
    raw = exchange(srv.uwsgi, b"\x64\x00\x00\x00")
    assert raw == b"\x64\x00\x00\x01"
    srv.wait_for_line(r"\bPING\b", start=start)
    assert_served(srv, srv.uwsgi)


@pytest.mark.parametrize("modifier1", [5, 72, 255])
def test_unavailable_modifier_is_logged_and_closed_without_a_byte(srv, modifier1):
    start = len(srv.lines)
    raw = exchange(srv.uwsgi, packet(wsgi_vars(path="/mod"), modifier1))
    assert raw == b""
    srv.wait_for_line(rf"-- unavailable modifier requested: {modifier1} --", start=start)
    assert_served(srv, srv.uwsgi)


# --- limits and malformed packets ------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    """A server with `-b 4096` (uWSGI's old default)."""
    with portico("--socket", "127.0.0.1:0", "-b", "4096", "--wsgi-file", ECHO) as server:
        server.uwsgi = address(server, "uwsgi")
        yield server


def padded(size, extra=()):
    """wsgi vars plus an HTTP_X_PAD var sized so the vars block is exactly `size` bytes."""
    base = wsgi_vars(path="/pad", **dict(extra))
    fixed = len(block(base + [("HTTP_X_PAD", "")]))
    assert size >= fixed
    pairs = base + [("HTTP_X_PAD", "p" * (size - fixed))]
    assert len(block(pairs)) == size
    return pairs


def test_buffer_size_refuses_a_bigger_vars_block_without_harming_the_worker(small):
    start = len(small.lines)
    pairs = padded(5 * 1024 + 100)
    raw = exchange(small.uwsgi, packet(pairs))
    assert raw == b"", raw[:200]
    small.wait_for_line(r"invalid request block size: 5220 \(max 4096\)(\.\.\.| from \S+\.\.\.)skip", start=start)
    assert_served(small, small.uwsgi)
    assert count_lines(small, r"invalid request block size", start) == 1, small.log()


def test_buffer_size_is_the_largest_block_accepted(small):
    _, _, doc = echo(small.uwsgi, padded(4096))
    assert len(doc["environ"]["HTTP_X_PAD"]) > 3000
    start = len(small.lines)
    assert exchange(small.uwsgi, packet(padded(4097))) == b""
    small.wait_for_line(r"invalid request block size: 4097 \(max 4096\)", start=start)


def test_default_buffer_size_accepts_a_60k_vars_block(srv):
    pairs = padded(60 * 1024)
    _, _, doc = echo(srv.uwsgi, pairs)
    assert doc["environ"]["HTTP_X_PAD"] == dict(pairs)["HTTP_X_PAD"]


def test_default_buffer_size_accepts_the_largest_possible_block(srv):
    _, _, doc = echo(srv.uwsgi, padded(65535))
    assert len(doc["environ"]["HTTP_X_PAD"]) > 65000


def test_truncated_packet_is_logged_with_its_sizes_and_dropped(srv):
    start = len(srv.lines)
    full = packet([("REQUEST_METHOD", "GET"), ("HTTP_X_PAD", "x" * 165)])
    assert len(full) == 204
    raw = exchange(srv.uwsgi, full[:104], shut_write=True)
    assert raw == b""
    srv.wait_for_line(r"^portico: truncated uwsgi packet from .*\b104\b.*\b204\b", start=start)
    assert_served(srv, srv.uwsgi)
    assert count_lines(srv, r"truncated uwsgi packet", start) == 1


def test_truncated_header_is_logged_and_dropped(srv):
    start = len(srv.lines)
    assert exchange(srv.uwsgi, b"\x00\x10", shut_write=True) == b""
    srv.wait_for_line(r"^portico: truncated uwsgi packet from .*\b2\b", start=start)
    assert_served(srv, srv.uwsgi)


def test_connection_closed_before_any_byte_logs_nothing(srv):
    start = len(srv.lines)
    assert exchange(srv.uwsgi, b"", shut_write=True) == b""
    assert_served(srv, srv.uwsgi)
    assert count_lines(srv, r"truncated|invalid", start) == 0, srv.log()


@pytest.mark.parametrize(
    "raw_block, pattern",
    [
        (b"\x00\x00\x01\x00x", r"null"),  # key length 0
        (block([("REQUEST_METHOD", "GET")]) + b"\x00\x00\x00\x00", r"null"),  # a null key later on
        (b"\x09\x00ab", r"overrun|invalid uwsgi request"),  # key longer than the block
        (block([("PATH_INFO", "/")]) + b"\x04\x00HOST\x64\x00abc", r"overrun|invalid uwsgi request"),
        (block([("PATH_INFO", "/")]) + b"\x01", r"overrun|invalid uwsgi request"),  # half a length
    ],
    ids=["null-key", "null-key-later", "key-overrun", "value-overrun", "half-length"],
)
def test_malformed_vars_are_logged_once_and_the_connection_closed(srv, raw_block, pattern):
    start = len(srv.lines)
    raw = exchange(srv.uwsgi, packet(None, raw_block=raw_block))
    assert raw == b""
    srv.wait_for_line(pattern, start=start)
    assert_served(srv, srv.uwsgi)
    assert count_lines(srv, pattern, start) == 1, srv.log()


@pytest.mark.parametrize("value", ["abc", "-1", "1 2"])
def test_non_numeric_content_length_gets_a_400(srv, value):
    start = len(srv.lines)
    pairs = wsgi_vars(method="POST", path="/cl") + [("CONTENT_LENGTH", value)]
    raw = exchange(srv.uwsgi, packet(pairs) + b"hello")
    status, _, _ = split(raw)
    assert status.startswith("HTTP/1.1 400 "), raw
    # the app never saw it
    time.sleep(0.1)
    assert count_lines(srv, r"POST /cl .*200", start) == 0, srv.log()
    assert_served(srv, srv.uwsgi)


def test_empty_packet_is_dropped_without_a_reply(srv):
    assert exchange(srv.uwsgi, b"\x00\x00\x00\x00") == b""
    assert_served(srv, srv.uwsgi)


def test_buffer_size_below_the_minimum_is_refused(run_portico):
    result = run_portico("--socket", "127.0.0.1:0", "-b", "1000", "--wsgi-file", ECHO, timeout=30)
    out = result.stdout.decode(errors="replace")
    assert result.returncode != 0, out
    assert "buffer-size" in out and "1024" in out, out


# --- environ ---------------------------------------------------------------------------


def test_environ_keeps_duplicates_last_empty_values_and_latin1_bytes(srv):
    pairs = wsgi_vars(path="/env") + [
        ("HTTP_X_DUP", "first"),
        ("HTTP_X_EMPTY", ""),
        ("HTTP_X_DUP", "second"),
        (b"HTTP_X_LATIN", b"caf\xe9 \xff\x80 \xc3\xa9"),
        ("HTTP_X_LAST_EMPTY", ""),  # an empty value as the very last bytes of the block
    ]
    _, _, doc = echo(srv.uwsgi, pairs)
    env, types = doc["environ"], doc["types"]
    assert env["HTTP_X_DUP"] == "second"
    assert env["HTTP_X_EMPTY"] == "" and env["HTTP_X_LAST_EMPTY"] == ""
    assert env["CONTENT_TYPE"] == "" and env["CONTENT_LENGTH"] == ""
    assert env["HTTP_X_LATIN"] == "caf\xe9 \xff\x80 \xc3\xa9"
    for key in ("HTTP_X_DUP", "HTTP_X_EMPTY", "HTTP_X_LATIN", "PATH_INFO", "SCRIPT_NAME"):
        assert types[key] == "str", (key, types[key])


def test_latin1_path_info_and_keys(srv):
    pairs = wsgi_vars(path="/r\xc3\xa9sum\xc3\xa9") + [(b"HTTP_X_\xe9", b"v")]
    _, _, doc = echo(srv.uwsgi, pairs)
    env = doc["environ"]
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/résumé"
    assert env["HTTP_X_\xe9"] == "v"


# The environ starts from a template with a slot for each var of nginx's
# uwsgi_params, and keys and values repeated from the last packets are reused:
# neither may leak into a packet that did not send them.
WSGI_KEYS = {"wsgi.version", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
             "wsgi.input_terminated", "wsgi.errors", "wsgi.file_wrapper", "wsgi.input",
             "wsgi.url_scheme", "SCRIPT_NAME", "SERVER_SOFTWARE"}


def test_environ_has_only_the_vars_its_own_packet_sent(srv):
    # Twice the full nginx set (the second from the caches), then a packet
    # with three of them, in another order, and one of nginx's twice.
    for port in ("40001", "40002"):
        _, _, doc = echo(srv.uwsgi, [(k, port if k == "REMOTE_PORT" else v)
                                     for k, v in wsgi_vars(path="/full", query="a=1")])
        assert doc["environ"]["REMOTE_PORT"] == port
        assert doc["environ"]["QUERY_STRING"] == "a=1"
    pairs = [("PATH_INFO", "/few"), ("REQUEST_METHOD", "GET"), ("HTTP_HOST", "a.test"),
             ("X_OTHER", "1"), ("HTTP_HOST", "b.test")]
    _, _, doc = echo(srv.uwsgi, pairs)
    env = doc["environ"]
    assert set(doc["types"]) == WSGI_KEYS | {"PATH_INFO", "REQUEST_METHOD", "HTTP_HOST",
                                             "X_OTHER"}, env
    assert (env["PATH_INFO"], env["HTTP_HOST"], env["X_OTHER"]) == ("/few", "b.test", "1")
    # and the full set again: every var is back, with this packet's values
    _, _, doc = echo(srv.uwsgi, wsgi_vars(path="/again", method="POST"))
    env = doc["environ"]
    assert set(doc["types"]) == WSGI_KEYS | {k for k, _ in wsgi_vars()}, env
    assert (env["PATH_INFO"], env["REQUEST_METHOD"], env["QUERY_STRING"]) == ("/again", "POST", "")
    assert "X_OTHER" not in env


def test_a_packet_like_the_last_has_its_own_values_and_a_dict_of_its_own(srv):
    # nginx's vars again and again: the environ is then a copy of the last
    # one's with the changed values replaced (uwsgi_environ.rs). Each
    # request sees its own values, of any length, and what an app did to
    # its environ is not in the next one's.
    def sent(port, path, query, https="on"):
        return [(k, port if k == "REMOTE_PORT" else v)
                for k, v in wsgi_vars(path=path, query=query, HTTPS=https)]

    _, _, doc = echo(srv.uwsgi, sent("40000", "/x/mutate", "q=1"))
    pids = {doc["pid"]}
    env = doc["environ"]
    assert (env["X_APP_ADDED"], env["REMOTE_PORT"]) == ("1", "changed-by-the-app")
    assert "SERVER_NAME" not in env
    for port, path, query in [("1", "/b", "q=22"), ("65535", "/ccc/d", ""), ("7", "/b", "q=22")]:
        _, _, doc = echo(srv.uwsgi, sent(port, path, query))
        pids.add(doc["pid"])
        env = doc["environ"]
        assert "X_APP_ADDED" not in env
        assert (env["REMOTE_PORT"], env["PATH_INFO"], env["QUERY_STRING"]) == (port, path, query)
        assert env["REQUEST_URI"] == path + ("?" + query if query else "")
        assert (env["SERVER_NAME"], env["wsgi.url_scheme"]) == ("localhost", "https")
    # a url-scheme var whose value changes changes wsgi.url_scheme
    _, _, doc = echo(srv.uwsgi, sent("8", "/b", "q=22", https="off"))
    assert (doc["environ"]["wsgi.url_scheme"], doc["environ"]["HTTPS"]) == ("http", "off")
    assert pids == {doc["pid"]}  # one worker: each packet was like its worker's last


def segments_received(sock):
    """tcpi_segs_in of a TCP socket (struct tcp_info, Linux 4.2+)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 192)
    return struct.unpack_from("<I", info, 140)[0]


def test_the_answer_and_the_fin_arrive_as_one_segment(srv):
    # The last write waits (MSG_MORE) for the close that follows it, so the
    # client receives the SYN-ACK, the ACK of its request (sent as the
    # connection is accepted, TCP_DEFER_ACCEPT) and one segment: the whole
    # answer and the end of the stream (before: the answer, then a FIN of
    # its own, 4 segments). The fewest of ten connections: a retransmission
    # on a busy machine adds one.
    counts = []
    for i in range(10):
        with connect(srv.uwsgi) as sock:
            sock.sendall(packet(wsgi_vars(path=f"/fin{i}")))
            raw = read_all(sock)
            counts.append(segments_received(sock))
        status, _, payload = split(raw)
        assert status.endswith(" 200 OK") and json.loads(payload)["environ"]["PATH_INFO"] == f"/fin{i}"
    assert min(counts) <= 3, counts


@pytest.mark.parametrize(
    "extra, scheme",
    [
        ({}, "http"),
        ({"HTTPS": "on"}, "https"),
        ({"HTTPS": "ON"}, "https"),
        ({"HTTPS": "1"}, "https"),
        ({"HTTPS": "off"}, "http"),
        ({"HTTPS": ""}, "http"),
        ({"UWSGI_SCHEME": "https"}, "https"),
        ({"HTTP_X_FORWARDED_PROTO": "https"}, "https"),
        ({"HTTPS": "on", "UWSGI_SCHEME": "http"}, "http"),
        ({"HTTPS": "on", "HTTP_X_FORWARDED_PROTO": "http"}, "http"),
    ],
    ids=["none", "https-on", "https-ON", "https-1", "https-off", "https-empty", "uwsgi-scheme",
         "x-forwarded-proto", "scheme-over-https", "xfp-over-https"],
)
def test_url_scheme(srv, extra, scheme):
    _, _, doc = echo(srv.uwsgi, wsgi_vars(path="/scheme", **extra))
    assert doc["environ"]["wsgi.url_scheme"] == scheme


# --- body ------------------------------------------------------------------------------


def test_body_is_exactly_content_length_bytes(srv):
    pairs = wsgi_vars(method="POST", path="/body") + [("CONTENT_LENGTH", "5")]
    _, _, doc = echo(srv.uwsgi, pairs, body=b"helloEXTRA-BYTES-IGNORED")
    assert bytes.fromhex(doc["body_hex"]) == b"hello"
    assert doc["after"] == "b''"


def test_no_content_length_means_no_body(srv):
    _, _, doc = echo(srv.uwsgi, wsgi_vars(method="POST", path="/body"), body=b"stray bytes")
    assert doc["body_hex"] == "" and doc["after"] == "b''"


def test_body_sent_late_and_in_pieces(srv):
    data = os.urandom(300 * 1024)
    pairs = wsgi_vars(method="POST", path="/slow") + [("CONTENT_LENGTH", str(len(data)))]
    with connect(srv.uwsgi) as sock:
        sock.sendall(packet(pairs))
        time.sleep(0.2)
        for i in range(0, len(data), 100 * 1024):
            sock.sendall(data[i:i + 100 * 1024])
            time.sleep(0.05)
        raw = read_all(sock)
    status, _, payload = split(raw)
    assert status == "HTTP/1.1 200 OK"
    doc = json.loads(payload)
    assert bytes.fromhex(doc["body_hex"]) == data
    assert doc["after"] == "b''"


# --- response --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "protocol, want",
    [("HTTP/1.1", "HTTP/1.1 200 OK"), ("HTTP/1.0", "HTTP/1.0 200 OK"), (None, "HTTP/1.0 200 OK")],
    ids=["1.1", "1.0", "absent"],
)
def test_status_line_uses_the_request_protocol(srv, protocol, want):
    raw = exchange(srv.uwsgi, packet(wsgi_vars(path="/proto", protocol=protocol)))
    assert raw.startswith(want.encode() + b"\r\n"), raw[:100]


def test_head_gets_no_body(srv):
    raw = exchange(srv.uwsgi, packet(wsgi_vars(method="HEAD", path="/head")))
    status, headers, body = split(raw)
    assert status == "HTTP/1.1 200 OK"
    assert ("X-Echo", "1") in headers
    assert body == b""


def test_at_most_the_apps_content_length_is_sent(srv):
    raw = exchange(srv.uwsgi, packet(wsgi_vars(path="/short")))
    status, headers, body = split(raw)
    assert status == "HTTP/1.1 200 OK"
    assert ("Content-Length", "5") in headers
    assert body == b"12345"


def test_1mib_response_arrives_whole(srv):
    raw = exchange(srv.uwsgi, packet(wsgi_vars(path="/big")))
    status, headers, body = split(raw)
    assert status == "HTTP/1.1 200 OK"
    assert ("Content-Length", str(len(BIG))) in headers
    assert body == BIG


def test_app_exception_is_a_well_formed_500(srv):
    start = len(srv.lines)
    raw = exchange(srv.uwsgi, packet(wsgi_vars(path="/raise")))
    status, headers, body = split(raw)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert body, "a text body"
    assert any(k.lower() == "content-type" and v.startswith("text/") for k, v in headers), headers
    srv.wait_for_line(r"RuntimeError: uw_echo: deliberate failure", start=start)
    assert_served(srv, srv.uwsgi)


def test_access_log_shows_remote_addr_from_the_vars(srv):
    start = len(srv.lines)
    pairs = wsgi_vars(path="/logged", query="x=1")
    pairs = [(k, "203.0.113.9" if k == "REMOTE_ADDR" else v) for k, v in pairs]
    echo(srv.uwsgi, pairs)
    srv.wait_for_line(r"\] 203\.0\.113\.9 .*GET /logged\?x=1 .*\(HTTP/1\.1 200\)", start=start)


# --- unix sockets ----------------------------------------------------------------------


@pytest.fixture
def sockdir():
    with public_dir("puw-") as d:
        yield d


def started(server):
    server.wait_for_line(r"ready to serve", timeout=30)
    return server


def hello_over_uwsgi(path):
    raw = exchange(str(path), packet(wsgi_vars(path="/")))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nHello world!\n"), raw
    return raw


def test_unix_socket_bare_chmod_is_666(portico_server, sockdir):
    path = sockdir / "bare.sock"
    # bare --chmod-socket followed by another option: the option is not its value
    server = started(portico_server("--socket", path, "--chmod-socket", "--wsgi-file", SIMPLE_APP, wait=False))
    server.wait_for_line(rf"uwsgi socket 0 bound to UNIX address {path} fd \d+")
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o666
    hello_over_uwsgi(path)


@pytest.mark.parametrize("form", [["--chmod-socket=660"], ["--chmod-socket", "660"]], ids=["eq", "space"])
def test_unix_socket_chmod_value(portico_server, sockdir, form):
    path = sockdir / "m.sock"
    started(portico_server("--socket", path, *form, "--wsgi-file", SIMPLE_APP, wait=False))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    hello_over_uwsgi(path)


def test_unix_socket_chown(portico_server, sockdir):
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    try:
        group = "nogroup"
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = pwd.getpwnam("nobody").pw_gid
        group = grp.getgrgid(gid).gr_name
    uid = pwd.getpwnam("nobody").pw_uid
    path = sockdir / "own.sock"
    started(portico_server("--socket", path, "--chown-socket", f"nobody:{group}", "--wsgi-file", SIMPLE_APP,
                           wait=False))
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (uid, gid)
    hello_over_uwsgi(path)


def test_stale_socket_file_is_replaced(portico_server, sockdir):
    path = sockdir / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: connecting is refused
    with pytest.raises(ConnectionRefusedError):
        connect(str(path)).close()
    started(portico_server("--socket", path, "--wsgi-file", SIMPLE_APP, wait=False))
    hello_over_uwsgi(path)


@pytest.mark.parametrize("mode", [[], ["--master"]], ids=["single", "master"])
def test_vacuum_removes_the_socket_at_exit(portico_server, sockdir, mode):
    path = sockdir / "vac.sock"
    server = started(portico_server(*mode, "--socket", path, "--vacuum", "--wsgi-file", SIMPLE_APP, wait=False))
    hello_over_uwsgi(path)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0, server.log()
    assert not path.exists(), f"--vacuum left {path} behind; log:\n{server.log()}"


def test_http_and_uwsgi_on_unix_and_tcp_at_once(portico_server, sockdir):
    hpath, upath = sockdir / "http.sock", sockdir / "uwsgi.sock"
    server = started(portico_server(
        "--http-socket", "127.0.0.1:0", "--http", hpath, "--socket", upath, "--uwsgi-socket", "127.0.0.1:0",
        "--chmod-socket", "--wsgi-file", ECHO, wait=False))
    kinds = sorted((k, f) for k, f, _ in listeners(server))
    assert kinds == [("http", "TCP"), ("http", "UNIX"), ("uwsgi", "TCP"), ("uwsgi", "UNIX")], server.log()
    server.wait_for_line(rf"http socket \d+ bound to UNIX address {hpath} fd")
    server.wait_for_line(rf"uwsgi socket \d+ bound to UNIX address {upath} fd")
    # HTTP/1.1 over AF_UNIX, keep-alive: two requests on one connection
    with Conn("", 0, sock=connect(str(hpath))) as conn:
        for i in range(2):
            conn.send(build("GET", f"/over-unix/{i}?q=1"))
            resp = conn.read_response()
            assert resp.status == 200, resp
            env = json.loads(resp.body)["environ"]
            assert env["PATH_INFO"] == f"/over-unix/{i}" and env["QUERY_STRING"] == "q=1"
    # HTTP over TCP
    with Conn(*address(server, "http")) as conn:
        conn.send(build("GET", "/over-tcp"))
        assert json.loads(conn.read_response().body)["environ"]["PATH_INFO"] == "/over-tcp"
    # uwsgi over both
    for addr in (str(upath), address(server, "uwsgi")):
        _, _, doc = echo(addr, wsgi_vars(path="/uw"))
        assert doc["environ"]["PATH_INFO"] == "/uw"


def test_address_forms_and_aliases(portico_server):
    args = ["-s", ":0", "--uwsgi-socket", "127.0.0.1:0"]
    v6 = socket.has_ipv6
    if v6:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            v6 = False
    if v6:
        args += ["--socket", "[::1]:0"]
    server = started(portico_server(*args, "--wsgi-file", ECHO, wait=False))
    found = [a for k, f, a in listeners(server) if k == "uwsgi" and f == "TCP"]
    assert len(found) == (3 if v6 else 2), server.log()
    for host, port in found:
        connect_host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "*": "127.0.0.1"}.get(host, host)
        with socket.create_connection((connect_host, port), timeout=10) as sock:
            sock.sendall(packet(wsgi_vars(path=f"/via/{host}")))
            status, _, body = split(read_all(sock))
        assert status == "HTTP/1.1 200 OK"
        assert json.loads(body)["environ"]["PATH_INFO"] == f"/via/{host}"


def test_every_worker_serves_every_listener(portico_server, sockdir):
    upath = sockdir / "w.sock"
    server = started(portico_server("-p", "2", "--socket", "127.0.0.1:0", "--socket", upath,
                                    "--http", "127.0.0.1:0", "--wsgi-file", ECHO, wait=False))
    server.wait_for_line(r"worker 2 .*ready to serve")

    def slow(addr):
        _, _, doc = echo(addr, wsgi_vars(path="/sleep"))
        return doc["pid"]

    for addr in (address(server, "uwsgi"), str(upath)):
        # two requests at once on one listener, one thread per worker: each worker takes one
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pids = set(pool.map(slow, [addr, addr]))
        assert len(pids) == 2, (addr, pids, server.log())


# --- mounts ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mounts():
    with portico(
        "--http", "127.0.0.1:0", "--socket", "127.0.0.1:0",
        "--mount", "/myapp=uw_server.py",
        "--mount", "/myapp/admin=uw_server:admin",
        "--mount", "/trail/=uw_server:trail",
        "--manage-script-name",
        cwd=APPS,
    ) as server:
        yield server


def via(server, wire, path, extra=()):
    """GET `path` over `wire` ('http' or 'uwsgi'); return (status code, body bytes, host used)."""
    if wire == "http":
        host, port = address(server, "http")
        with Conn(host, port) as conn:
            conn.send(build("GET", path, host=f"{host}:{port}"))
            resp = conn.read_response()
        return resp.status, resp.body, f"{host}:{port}"
    target, _, query = path.partition("?")
    pairs = wsgi_vars(path=target, query=query, **dict(extra))
    raw = exchange(address(server, "uwsgi"), packet(pairs))
    status, _, body = split(raw)
    assert status.startswith("HTTP/1.1 "), raw[:200]
    return int(status.split()[1]), body, "example.test:8080"


WIRES = ["http", "uwsgi"]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    "path, app, script_name, path_info",
    [
        ("/myapp/foo", "server", "/myapp", "/foo"),
        ("/myapp/foo/bar?z=9", "server", "/myapp", "/foo/bar"),
        ("/myapp", "server", "/myapp", ""),
        ("/myapp/", "server", "/myapp", "/"),
        ("/myapp/admin/y", "admin", "/myapp/admin", "/y"),
        ("/myapp/admin", "admin", "/myapp/admin", ""),
        ("/myapp/adminX", "server", "/myapp", "/adminX"),
        ("/trail", "trail", "/trail", ""),
        ("/trail/x", "trail", "/trail", "/x"),
    ],
)
def test_mount_longest_match_at_a_slash_boundary(mounts, wire, path, app, script_name, path_info):
    code, body, host = via(mounts, wire, path)
    assert code == 200, (body, mounts.log())
    doc = json.loads(body)
    assert (doc["app"], doc["script_name"], doc["path_info"]) == (app, script_name, path_info)
    assert doc["application_uri"] == f"http://{host}{script_name}"
    assert doc["request_uri"] == f"http://{host}{path}"


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("path", ["/myappX", "/myappX/foo", "/", "/other", "/trailX"])
def test_unmatched_path_without_default_app_is_404(mounts, wire, path):
    code, body, _ = via(mounts, wire, path)
    assert code == 404, body


@pytest.mark.parametrize(
    "path_info, app, want",
    [
        ("/myapp/foo", "server", ("/myapp", "/foo")),
        ("/myapp", "server", ("/myapp", "")),
        ("/myapp/admin/z", "admin", ("/myapp/admin", "/z")),  # the longest mount, not the sent SCRIPT_NAME
    ],
)
def test_nginx_style_script_name_with_full_path_info_is_split(mounts, path_info, app, want):
    code, body, _ = via(mounts, "uwsgi", path_info, extra={"SCRIPT_NAME": "/myapp"})
    assert code == 200, body
    doc = json.loads(body)
    assert (doc["app"], doc["script_name"], doc["path_info"]) == (app, *want)


@pytest.fixture(scope="module")
def mounts_with_default():
    with portico(
        "--http", "127.0.0.1:0", "--socket", "127.0.0.1:0",
        "--wsgi-file", ECHO, "--mount", "/myapp=uw_server.py", "--manage-script-name",
        cwd=APPS,
    ) as server:
        yield server


@pytest.mark.parametrize("wire", WIRES)
def test_unmatched_path_goes_to_the_default_app(mounts_with_default, wire):
    code, body, _ = via(mounts_with_default, wire, "/myappX/y")
    assert code == 200, body
    doc = json.loads(body)
    assert doc["app"] == "echo"
    assert (doc["environ"]["SCRIPT_NAME"], doc["environ"]["PATH_INFO"]) == ("", "/myappX/y")
    code, body, _ = via(mounts_with_default, wire, "/myapp/y")
    doc = json.loads(body)
    assert (doc["app"], doc["script_name"], doc["path_info"]) == ("server", "/myapp", "/y")


@pytest.fixture(scope="module")
def mounts_unmanaged():
    with portico(
        "--socket", "127.0.0.1:0",
        "--mount", "/a=uw_server:application", "--mount", "/b=uw_server:admin",
        cwd=APPS,
    ) as server:
        yield server


def test_without_manage_script_name_the_sent_script_name_picks_the_mount(mounts_unmanaged):
    code, body, _ = via(mounts_unmanaged, "uwsgi", "/x", extra={"SCRIPT_NAME": "/b"})
    assert code == 200, body
    doc = json.loads(body)
    assert (doc["app"], doc["script_name"], doc["path_info"]) == ("admin", "/b", "/x")
    code, body, _ = via(mounts_unmanaged, "uwsgi", "/a/x", extra={"SCRIPT_NAME": "/a"})
    doc = json.loads(body)
    assert (doc["app"], doc["script_name"], doc["path_info"]) == ("server", "/a", "/a/x")
    # no SCRIPT_NAME and no --manage-script-name: PATH_INFO does not pick a mount
    code, body, _ = via(mounts_unmanaged, "uwsgi", "/b/x")
    assert code == 404, body
