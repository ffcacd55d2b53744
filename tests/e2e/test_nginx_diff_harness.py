"""The differential harness itself (tests/e2e/nginx_diff.py), without Portico:
what compare() lets through and what it catches, the placeholders, the file
tree, and the auto-skip probe. These always run (no live_mark): they are
what makes a green differential run mean something.
"""

import os
import stat

import pytest

import nginx_diff
from nginx_diff import Answer, MTIME, compare, port_names, probe_not_wired, render

NGINX_PORTS = {"port": 41001, "port2": 41002}
OTHER_PORTS = {"port": 52001, "port2": 52002}

ERROR_PAGE = (
    "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    "<center><h1>404 Not Found</h1></center>\r\n<hr><center>{token}</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def answer(status=200, headers=None, body=b"", side="nginx", chunked=False):
    headers = dict(headers or {})
    if not chunked and "content-length" not in headers:
        headers["content-length"] = str(len(body))
    return Answer(status, headers, body, side, chunked=chunked)


def page(token):
    body = ERROR_PAGE.format(token=token).encode()
    return answer(404, {"content-type": "text/html"}, body)


def test_error_pages_equal_but_for_the_server_token():
    compare(page("nginx/1.22.1"), page("portico/0.1.0"), NGINX_PORTS, OTHER_PORTS)
    compare(page("nginx"), page("portico"), NGINX_PORTS, OTHER_PORTS)


def test_error_page_with_other_text_differs():
    other = answer(404, {"content-type": "text/html"},
                   ERROR_PAGE.format(token="portico").replace("Not Found", "Missing").encode())
    with pytest.raises(AssertionError):
        compare(page("nginx/1.22.1"), other, NGINX_PORTS, OTHER_PORTS)


def test_location_ports_normalised_per_side():
    a = answer(301, {"location": "http://localhost:41001/sub/"})
    b = answer(301, {"location": "http://localhost:52001/sub/"})
    compare(a, b, NGINX_PORTS, OTHER_PORTS)
    wrong = answer(301, {"location": "http://localhost:52002/sub/"})  # the other listener's port
    with pytest.raises(AssertionError):
        compare(a, wrong, NGINX_PORTS, OTHER_PORTS)


@pytest.mark.parametrize("header,value_b", [
    ("content-type", "text/html; charset=utf-8"),
    ("content-length", "3"),
    ("etag", '"5e0d5da5-4"'),
    ("last-modified", "Thu, 02 Jan 2020 03:04:06 GMT"),
    ("location", "http://localhost:52001/other"),
])
def test_each_compared_header_is_compared(header, value_b):
    base = {"content-type": "text/html", "content-length": "4", "etag": '"5e0d5da5-5"',
            "last-modified": "Thu, 02 Jan 2020 03:04:05 GMT",
            "location": "http://localhost:41001/x"}
    a = answer(200, base, b"abcd")
    b = answer(200, {**base, header: value_b}, b"abcd", side="portico")
    with pytest.raises(AssertionError):
        compare(a, b, NGINX_PORTS, OTHER_PORTS)


def test_status_and_body_are_compared():
    with pytest.raises(AssertionError):
        compare(answer(200, body=b"x"), answer(201, body=b"x"), NGINX_PORTS, OTHER_PORTS)
    with pytest.raises(AssertionError):
        compare(answer(200, body=b"x"), answer(200, body=b"y"), NGINX_PORTS, OTHER_PORTS)


def test_missing_header_on_one_side_differs():
    a = answer(200, {"content-type": "text/plain"}, b"x")
    b = answer(200, {}, b"x")
    with pytest.raises(AssertionError):
        compare(a, b, NGINX_PORTS, OTHER_PORTS)


def test_chunked_nginx_accepts_chunked_or_exact_length():
    a = answer(200, {"content-type": "text/html"}, b"<html>listing</html>", chunked=True)
    compare(a, answer(200, {"content-type": "text/html"}, b"<html>listing</html>", chunked=True),
            NGINX_PORTS, OTHER_PORTS)
    compare(a, answer(200, {"content-type": "text/html"}, b"<html>listing</html>"),
            NGINX_PORTS, OTHER_PORTS)
    with pytest.raises(AssertionError):
        compare(a, answer(200, {"content-type": "text/html", "content-length": "99"},
                          b"<html>listing</html>"), NGINX_PORTS, OTHER_PORTS)


def test_multipart_boundary_normalised():
    def multipart(boundary):
        body = f"\r\n--{boundary}\r\nContent-Range: bytes 0-1/9\r\n\r\n01\r\n--{boundary}--\r\n".encode()
        return answer(206, {"content-type": f"multipart/byteranges; boundary={boundary}"}, body)

    compare(multipart("00000000000000000001"), multipart("00000000000000000007"),
            NGINX_PORTS, OTHER_PORTS)


def test_expires_compared_as_offset_from_date():
    def exp(date, expires):
        return answer(200, {"date": date, "expires": expires}, b"x")

    names = nginx_diff.COMPARED + ("expires",)
    compare(exp("Tue, 01 Dec 2026 14:00:00 GMT", "Tue, 01 Dec 2026 15:00:00 GMT"),
            exp("Tue, 01 Dec 2026 14:00:01 GMT", "Tue, 01 Dec 2026 15:00:01 GMT"),
            NGINX_PORTS, OTHER_PORTS, names)
    with pytest.raises(AssertionError):
        compare(exp("Tue, 01 Dec 2026 14:00:00 GMT", "Tue, 01 Dec 2026 15:00:00 GMT"),
                exp("Tue, 01 Dec 2026 14:00:00 GMT", "Tue, 01 Dec 2026 14:30:00 GMT"),
                NGINX_PORTS, OTHER_PORTS, names)


def test_placeholders_leave_nginx_variables_alone():
    body = 'listen {port2}; root {root}/x; return 200 "${uri} $host {3}"; listen {port};'
    assert port_names(body) == ["port2", "port"]
    out = render(body, {"port": 1, "port2": 2, "root": "/t"})
    assert out == 'listen 2; root /t/x; return 200 "${uri} $host {3}"; listen 1;'


def test_tree_is_readable_by_nobody_with_fixed_mtimes(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    nginx_diff.build_tree(root, {"a/b.txt": "b", "c.bin": (b"\0", MTIME + 5), "d/": None})
    assert (root / "a" / "b.txt").read_bytes() == b"b"
    assert os.stat(root / "a" / "b.txt").st_mtime == MTIME
    assert os.stat(root / "c.bin").st_mtime == MTIME + 5
    assert os.stat(root / "a").st_mtime == MTIME
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "a" / "b.txt").st_mode) == 0o644
    assert (root / "d").is_dir()


def fake_binary(tmp_path, script):
    path = tmp_path / "portico"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return path


def test_probe_skips_only_for_the_stub_message(tmp_path):
    stub = fake_binary(tmp_path, 'echo "portico: -c: not wired yet" >&2; exit 1')
    assert probe_not_wired(stub) == nginx_diff.NOT_WIRED


@pytest.mark.parametrize("script", [
    'echo "nginx: [emerg] unknown directive \\"x\\" in /p.conf:1" >&2; exit 1',  # a real error
    'echo "configuration file test is successful" >&2; exit 0',  # wired
    'echo "not wired yet"; exit 0',  # the words, but success
])
def test_probe_runs_the_suite_otherwise(tmp_path, script):
    assert probe_not_wired(fake_binary(tmp_path, script)) is None


def test_probe_runs_the_suite_when_the_binary_is_missing(tmp_path):
    assert probe_not_wired(tmp_path / "missing") is None
