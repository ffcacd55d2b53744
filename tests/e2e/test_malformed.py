"""Malformed requests: each one gets a 4xx, the connection is closed, the app is
never handed the request, and the next connection is served normally.

Strict like gunicorn (reference/peers.md §3.3), not lax like uWSGI. The app
(tests/e2e/apps/http_counter.py) appends a line per request it completes, so a
request that slipped through shows up in the counter file.
"""

import email.utils
import time

import pytest

from conftest import APPS
from httpraw import Conn, Incomplete, build, module_server, one

H = b"Host: localhost\r\n"
GET = b"GET / HTTP/1.1\r\n"
POST_CHUNKED = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"

BAD = (400,)


def chunk_case(size_line):
    return POST_CHUNKED + size_line + b"\r\nhello\r\n0\r\n\r\n"


CASES = {
    # request line
    "garbage": (b"this is not http at all\r\n\r\n", BAD),
    "tls_hello": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", BAD),
    "missing_version": (b"GET /\r\n" + H + b"\r\n", BAD),
    "two_spaces": (b"GET  / HTTP/1.1\r\n" + H + b"\r\n", BAD),
    "lowercase_version": (b"GET / http/1.1\r\n" + H + b"\r\n", BAD),
    # header syntax
    "header_without_colon": (GET + H + b"X-No-Colon\r\n\r\n", BAD),
    "space_before_colon": (GET + H + b"X-Space : v\r\n\r\n", BAD),
    "obs_fold": (GET + H + b"X-Fold: a\r\n  continued\r\n\r\n", BAD),
    "empty_header_name": (GET + H + b": value\r\n\r\n", BAD),
    "space_in_header_name": (GET + H + b"X Bad: v\r\n\r\n", BAD),
    # Content-Length / Transfer-Encoding
    "cl_and_te": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", BAD),
    "te_and_cl": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", BAD),
    "two_differing_cl": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", BAD),
    "cl_list_5_5": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", BAD),
    "cl_plus": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", BAD),
    "cl_minus_1": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\nhello", BAD),
    "cl_abc": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\nhello", BAD),
    "cl_underscore_digits": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0_5\r\n\r\nhello", BAD),
    "te_gzip": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nhello", (400, 501)),
    "te_chunked_then_gzip": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", (400, 501)),
    # issue 16 item 8 (docs/compat.md): chunked last frames the body, but gzip cannot be
    # decoded here: 501 (RFC 9112 §6.1's SHOULD, and nginx's answer)
    "te_gzip_then_chunked": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", (501,)),
    "te_on_http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", BAD),
    # chunk sizes and chunk framing
    "chunk_size_zz": (chunk_case(b"zz"), BAD),
    "chunk_size_0x5": (chunk_case(b"0x5"), BAD),
    "chunk_size_minus": (chunk_case(b"-5"), BAD),
    "chunk_size_plus": (chunk_case(b"+5"), BAD),
    "chunk_size_empty": (chunk_case(b""), BAD),
    "chunk_size_leading_space": (chunk_case(b" 5"), BAD),
    "chunk_size_trailing_space": (chunk_case(b"5 "), BAD),
    "chunk_size_huge": (chunk_case(b"ffffffffffffffffffff"), BAD),
    "chunk_data_overrun": (POST_CHUNKED + b"5\r\nhelloXX\r\n0\r\n\r\n", BAD),
    "chunk_bare_lf": (POST_CHUNKED + b"5\nhello\n0\n\n", BAD),
    # issue 16 item 8: fields RFC 9110 §6.5.1 forbids in trailers (framing, routing...)
    "trailer_content_length": (POST_CHUNKED + b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", BAD),
    "trailer_transfer_encoding": (POST_CHUNKED + b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", BAD),
    "trailer_host": (POST_CHUNKED + b"5\r\nhello\r\n0\r\nhost: evil.example\r\n\r\n", BAD),
    "trailer_authorization": (POST_CHUNKED + b"5\r\nhello\r\n0\r\nAuthorization: x\r\n\r\n", BAD),
    # bare LF where CRLF is required
    "bare_lf_request_line": (b"GET / HTTP/1.1\n" + H + b"\r\n", BAD),
    "bare_lf_in_header": (GET + b"Host: localhost\nX-A: b\r\n\r\n", BAD),
    "bare_lf_everywhere": (b"GET / HTTP/1.1\nHost: localhost\n\n", BAD),
    "bare_lf_end_of_headers": (GET + H + b"\n", BAD),
    # peers.md §3.2: a front end that ignores bare LF sees one request; a lax server sees two
    "bare_lf_smuggling": (
        b"GET / HTTP/1.1\r\nHost: localhost\r\nDummy: x\nContent-Length: 23\r\n\r\n"
        b"GET / HTTP/1.1\r\nDummy: GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n",
        BAD,
    ),
    # NUL and control bytes
    "nul_in_header_value": (GET + H + b"X-A: a\x00b\r\n\r\n", BAD),
    "ctl_in_header_value": (GET + H + b"X-A: a\x01b\r\n\r\n", BAD),
    "del_in_header_value": (GET + H + b"X-A: a\x7fb\r\n\r\n", BAD),
    "bare_cr_in_header_value": (GET + H + b"X-A: a\rb\r\n\r\n", BAD),
    "nul_in_header_name": (GET + H + b"X-A\x00B: c\r\n\r\n", BAD),
    "ctl_in_header_name": (GET + H + b"X-A\x01B: c\r\n\r\n", BAD),
    # request target
    "raw_utf8_in_target": (b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", BAD),
    "raw_latin1_in_target": (b"GET /\xff HTTP/1.1\r\n" + H + b"\r\n", BAD),
    "ctl_in_target": (b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", BAD),
    # issue 16 item 8: RFC 9110 §4.2.4 says to treat userinfo as an error (nginx: 400)
    "absolute_form_with_userinfo": (b"GET http://u:p@localhost/x HTTP/1.1\r\n" + H + b"\r\n", BAD),
    "fragment_only": (b"GET #frag HTTP/1.1\r\n" + H + b"\r\n", BAD),
    # issue 16 item 8: a method this server does not implement (not a proxy): 501
    "connect": (b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n", (501,)),
    "connect_origin_form": (b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n", (501,)),
    # Host
    "http11_without_host": (b"GET / HTTP/1.1\r\n\r\n", BAD),
    "duplicate_host": (GET + b"Host: a.example\r\nHost: b.example\r\n\r\n", BAD),
    "duplicate_identical_host": (GET + H + H + b"\r\n", BAD),
    # RFC 9112 §3.2: a Host with an invalid field value is a 400 too (uri-host [":" port])
    "host_with_space": (GET + b"Host: a b\r\n\r\n", BAD),
    "host_with_slash": (GET + b"Host: example.com/evil\r\n\r\n", BAD),
    "host_with_userinfo": (GET + b"Host: user@example.com\r\n\r\n", BAD),
    "host_with_bad_port": (GET + b"Host: example.com:abc\r\n\r\n", BAD),
    # limits: 8 KiB request line, 8 KiB field, 64 KiB of headers, 100 fields
    "request_line_too_long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", (414,)),
    "header_field_too_long": (GET + H + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", (431,)),
    "headers_too_large_in_total": (
        GET + H + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 4000) for i in range(20)) + b"\r\n",
        (431,),
    ),
    "too_many_headers": (GET + H + b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n", (431,)),
}

ACCEPTED = {
    "chunked_with_extensions_and_trailer": b"POST / HTTP/1.1\r\n" + H
    + b"Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    # RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ); BWS must be accepted
    "chunk_extension_with_bws": b"POST / HTTP/1.1\r\n" + H
    + b"Transfer-Encoding: chunked\r\n\r\n5 ; a = b\r\nhello\r\n0\r\n\r\n",
    "content_length_leading_zeros": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 005\r\n\r\nhello",
    "hundred_header_fields": GET + H + b"".join(b"X-H%d: v\r\n" % i for i in range(99)) + b"\r\n",
    "long_target_under_8k": b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\n" + H + b"\r\n",
    "long_field_under_8k": GET + H + b"X-Big: " + b"a" * 7000 + b"\r\n\r\n",
    "48k_of_headers": GET + H + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 4000) for i in range(12)) + b"\r\n",
    "http10_without_host": b"GET / HTTP/1.0\r\n\r\n",
    "leading_empty_line": b"\r\n" + GET + H + b"\r\n",
    "tab_and_empty_values": GET + H + b"X-Tab: a\tb\r\nX-Empty:\r\n\r\n",
    "absolute_form": b"GET http://localhost/abs HTTP/1.1\r\n" + H + b"\r\n",
    "host_ipv6_with_port": GET + b"Host: [::1]:8000\r\n\r\n",
    "host_ipv4": GET + b"Host: 10.1.2.3\r\n\r\n",
}

# issue 16 item 8 (docs/compat.md): valid requests that gunicorn and llhttp accept, with
# the line the app writes for them (METHOD PATH_INFO body-length).
PARSED = {
    "ssdp_method_with_asterisk": (b"M-SEARCH * HTTP/1.1\r\n" + H + b'MAN: "ssdp:discover"\r\n\r\n', "M-SEARCH * 0"),
    "webdav_method": (b"PROPFIND /dav HTTP/1.1\r\n" + H + b"Depth: 1\r\n\r\n", "PROPFIND /dav 0"),
    "token_method": (b"x.~!$%&'*+^_`|-9 /m HTTP/1.1\r\n" + H + b"\r\n", "x.~!$%&'*+^_`|-9 /m 0"),
    "fragment_cut_off": (b"GET /a/b?q=1#frag HTTP/1.1\r\n" + H + b"\r\n", "GET /a/b 0"),
    "fragment_with_hash_and_query_chars": (b"GET /p#f?x#y HTTP/1.1\r\n" + H + b"\r\n", "GET /p 0"),
    "fragment_in_absolute_form": (b"GET http://localhost/abs#top HTTP/1.1\r\n" + H + b"\r\n", "GET /abs 0"),
    "allowed_trailer": (POST_CHUNKED + b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\nServer-Timing: a\r\n\r\n", "POST / 5"),
}


@pytest.fixture(scope="module")
def server(app_log):
    with module_server("--wsgi-file", APPS / "http_counter.py", "--env", f"HTTP_COUNTER_FILE={app_log}") as srv:
        yield srv


def calls(app_log):
    return app_log.read_text().splitlines()


def assert_next_connection_served(server, app_log, before):
    resp = one(server, build("GET", "/next"))
    assert (resp.status, resp.body) == (200, b"ok"), resp
    assert calls(app_log)[before:] == ["GET /next 0"]


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_request_is_refused(server, app_log, case):
    data, statuses = CASES[case]
    before = len(calls(app_log))
    with Conn.to(server, timeout=5) as conn:
        conn.send(data)
        try:
            resp = conn.read_response()
        except Incomplete as e:
            pytest.fail(f"no response, the connection was just closed (got {e.data!r})")
        assert resp.status in statuses, resp
        closed = conn.eof or conn.wait_closed(3)
        assert closed, f"connection left open after {resp.status}; then got {getattr(conn, 'leftover', b'')!r}"
    assert calls(app_log)[before:] == [], "the app was handed a malformed request"
    assert_next_connection_served(server, app_log, before)


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_well_formed_edge_case_is_accepted(server, app_log, case):
    before = len(calls(app_log))
    with Conn.to(server, timeout=5) as conn:
        conn.send(ACCEPTED[case])
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"ok"), resp
    assert len(calls(app_log)) == before + 1


@pytest.mark.parametrize("case", list(PARSED))
def test_valid_request_other_servers_accept_reaches_the_app(server, app_log, case):
    data, line = PARSED[case]
    before = len(calls(app_log))
    with Conn.to(server, timeout=5) as conn:
        conn.send(data)
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"ok"), resp
    assert calls(app_log)[before:] == [line]


def test_error_response_has_date_and_server(server):
    with Conn.to(server, timeout=5) as conn:
        conn.send(b"GET / HTTP/1.1\r\n\r\n")
        resp = conn.read_response()
    assert resp.status == 400
    assert resp.header("server") == "portico", resp
    when = email.utils.parsedate_to_datetime(resp.header("date", ""))
    assert when.tzinfo is not None, resp.header("date")
    assert abs(time.time() - when.timestamp()) < 60, resp.header("date")


def test_malformed_request_after_a_good_one_on_the_same_connection(server, app_log):
    before = len(calls(app_log))
    with Conn.to(server, timeout=5) as conn:
        conn.send(build("GET", "/first"))
        assert conn.read_response().status == 200
        conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Fold: a\r\n  b\r\n\r\n")
        resp = conn.read_response()
        assert resp.status == 400
        assert conn.eof or conn.wait_closed(3)
    assert calls(app_log)[before:] == ["GET /first 0"]
