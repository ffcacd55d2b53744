"""Observability through the real binary: uWSGI's stats JSON (plain, HTTP,
unix socket) checked field by field against real uWSGI samples, uwsgitop
in a terminal, Prometheus metrics read by prometheus_client's parser, and
the request log (uWSGI's default line, --log-format, --log-format-json,
filters, --memory-report, --log-date, --touch-logreopen)."""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import APPS, Server, read_until_close, venv_tool, wait_until

APP = str(APPS / "obs_app.py")
REFERENCE = Path(os.environ.get("PORTICO_REFERENCE", "/work/shared/reference"))
SAMPLE_IDLE = REFERENCE / "uwsgi-stats-sample.json"
SAMPLE_BUSY = REFERENCE / "uwsgi-stats-sample-busy.json"
UWSGITOP = venv_tool("uwsgitop")

STATS_RE = r"Stats server enabled on (\S+) fd: \d+"
METRICS_RE = r"Prometheus metrics enabled on (\S+) fd: \d+"


def address(server, pattern):
    host, port = server.wait_for_line(pattern).group(1).rsplit(":", 1)
    return host, int(port)


def read_stats(addr):
    """Connect, read until the server closes, parse."""
    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(addr)
        return read_until_close(sock)


def get(server, path, **kw):
    return requests.get(server.url + path, timeout=10, **kw)


def sample(path):
    with open(path) as f:
        return json.load(f)


def json_type(value):
    return {dict: "object", list: "array", str: "string", int: "int", bool: "bool"}[type(value)]


def assert_schema(ours, theirs, where="$"):
    """Every key of the real sample exists in ours with the same JSON type,
    recursively (list items against the sample's item at the same index, or
    its first one)."""
    assert json_type(ours) == json_type(theirs), f"{where}: {json_type(ours)} != {json_type(theirs)}"
    if ours in ({}, []):
        return  # an idle core's `vars` and `req_info` are empty, in uWSGI too
    if isinstance(theirs, dict):
        for key, value in theirs.items():
            assert key in ours, f"{where}: missing key {key!r}"
            assert_schema(ours[key], value, f"{where}.{key}")
    elif isinstance(theirs, list) and theirs and ours:
        for i, item in enumerate(ours):
            assert_schema(item, theirs[min(i, len(theirs) - 1)], f"{where}[{i}]")


def assert_uwsgi_order(doc, reference):
    assert list(doc)[: len(reference)] == list(reference), list(doc)
    ref_worker = reference["workers"][0]
    for worker in doc["workers"]:
        assert list(worker) == list(ref_worker), list(worker)
        for core in worker["cores"]:
            assert list(core) == list(ref_worker["cores"][0]), list(core)
        for app in worker["apps"]:
            assert list(app) == list(ref_worker["apps"][0]), list(app)


def worker_pids(server, count):
    pids = [int(m) for m in re.findall(r"spawned uWSGI worker \d+ \(pid: (\d+)", server.log())]
    assert len(pids) == count, server.log()
    return pids


# --- stats server -------------------------------------------------------------


def test_stats_json_has_uwsgis_schema_idle_and_with_a_request_in_flight(portico_server):
    server = portico_server("--wsgi-file", APP, "--processes", "2", "--threads", "2",
                            "--stats", "127.0.0.1:0")
    stats = address(server, STATS_RE)
    for _ in range(5):
        assert get(server, "/").status_code == 200

    def settled():
        # a worker counts a request before it shows idle again (it may be
        # preempted in between on a loaded machine), and the second worker
        # may still be starting when the first has served all five (it
        # shows accepting once its listeners are watched)
        doc = json.loads(read_stats(stats))
        counted = sum(w["requests"] for w in doc["workers"]) == 5
        ready = all(w["status"] == "idle" and w["accepting"] == 1 for w in doc["workers"])
        return doc if counted and ready else None

    doc = wait_until(settled, what="5 requests in the stats, both workers idle and accepting")
    idle = sample(SAMPLE_IDLE)
    assert_schema(doc, idle)
    assert_uwsgi_order(doc, idle)
    assert doc["pid"] == server.proc.pid
    assert doc["cwd"] == os.getcwd()
    assert [s["name"] for s in doc["sockets"]] == [f"127.0.0.1:{server.port}"]
    assert doc["sockets"][0]["proto"] == "http" and doc["sockets"][0]["max_queue"] == 1024
    assert [w["id"] for w in doc["workers"]] == [1, 2]
    assert sorted(w["pid"] for w in doc["workers"]) == sorted(worker_pids(server, 2))
    for w in doc["workers"]:
        assert w["status"] == "idle" and w["accepting"] == 1
        assert w["respawn_count"] == 1 and w["last_spawn"] > 1_700_000_000
        assert len(w["cores"]) == 2
        assert w["apps"][0]["requests"] == w["requests"] == w["delta_requests"]
        assert sum(c["requests"] for c in w["cores"]) == w["requests"]
        assert all(c["in_request"] == 0 and c["vars"] == [] and c["req_info"] == {} for c in w["cores"])
        if w["requests"]:
            assert w["tx"] > 0 and w["avg_rt"] > 0 and w["running_time"] > 0
    # the master samples memory every second
    wait_until(lambda: all(w["rss"] > 0 and w["vsz"] > w["rss"]
                           for w in json.loads(read_stats(stats))["workers"]), what="rss")

    # a request in flight
    slow = threading.Thread(target=lambda: get(server, "/sleep?3", headers={"User-Agent": "obs/1"}))
    slow.start()
    try:
        def busy():
            doc = json.loads(read_stats(stats))
            return doc if any(w["status"] == "busy" for w in doc["workers"]) else None

        doc = wait_until(busy, what="a busy worker")
        busy_sample = sample(SAMPLE_BUSY)
        assert_schema(doc, busy_sample)
        assert_uwsgi_order(doc, busy_sample)
        [worker] = [w for w in doc["workers"] if w["status"] == "busy"]
        [core] = [c for c in worker["cores"] if c["in_request"] == 1]
        assert core["vars"][-1] == ""
        assert "REQUEST_METHOD=GET" in core["vars"]
        assert "REQUEST_URI=/sleep?3" in core["vars"]
        assert "PATH_INFO=/sleep" in core["vars"] and "QUERY_STRING=3" in core["vars"]
        assert "REMOTE_ADDR=127.0.0.1" in core["vars"]
        assert f"HTTP_HOST=127.0.0.1:{server.port}" in core["vars"]
        assert isinstance(core["req_info"]["request_start"], int)
        assert abs(core["req_info"]["request_start"] - time.time()) < 10
        others = [c for w in doc["workers"] for c in w["cores"] if c is not core]
        assert all(c["in_request"] == 0 for c in others)
    finally:
        slow.join()


def test_stats_http_minified_and_on_a_unix_socket(portico_server, tmp_path):
    server = portico_server("--wsgi-file", APP, "--stats", "127.0.0.1:0", "--stats-http",
                            "--stats-minified")
    host, port = address(server, STATS_RE)
    assert get(server, "/").status_code == 200
    # the worker counts a request after sending its response: wait for the count to land
    response = wait_until(
        lambda: (r := requests.get(f"http://{host}:{port}/", timeout=5)).json()["workers"][0]["requests"] == 1 and r,
        what="the request in the stats",
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "\n" not in response.text and "\t" not in response.text
    doc = response.json()
    assert_schema(doc, sample(SAMPLE_IDLE))
    assert doc["workers"][0]["requests"] == 1
    # a raw HTTP/1.0 exchange is answered exactly as uWSGI does
    raw = read_stats_http((host, port))
    assert raw.startswith(b"HTTP/1.0 200 OK\r\nConnection: close\r\n"), raw[:100]

    path = tmp_path / "stats.sock"
    server = portico_server("--wsgi-file", APP, "--stats", str(path), "--processes", "2")
    server.wait_for_line(rf"Stats server enabled on {re.escape(str(path))}")
    doc = json.loads(read_stats(str(path)))
    assert_schema(doc, sample(SAMPLE_IDLE))
    assert "\n\t\"version\":" in read_stats(str(path)).decode()  # uWSGI's tab layout
    assert len(doc["workers"]) == 2


def read_stats_http(addr):
    with socket.create_connection(addr, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return read_until_close(sock)


def test_stats_strings_are_valid_json_even_with_quotes_in_the_cwd(portico_server, tmp_path):
    odd = tmp_path / 'we"ird\\dir'
    odd.mkdir()
    server = portico_server("--wsgi-file", APP, "--stats", "127.0.0.1:0", cwd=str(odd))
    doc = json.loads(read_stats(address(server, STATS_RE)))
    assert doc["cwd"] == str(odd)


def test_a_silent_stats_http_client_does_not_stall_the_master(portico_server):
    server = portico_server("--wsgi-file", APP, "--processes", "2", "--stats", "127.0.0.1:0",
                            "--stats-http", "--metrics", "127.0.0.1:0")
    stats = address(server, STATS_RE)
    metrics = address(server, METRICS_RE)
    silent = [socket.create_connection(stats, timeout=5) for _ in range(10)]
    try:
        started = time.monotonic()
        response = requests.get(f"http://{metrics[0]}:{metrics[1]}/metrics", timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        assert get(server, "/").status_code == 200
    finally:
        for s in silent:
            s.close()


# --- uwsgitop -----------------------------------------------------------------


def test_uwsgitop_shows_one_row_per_worker_with_its_request_count(portico_server):
    if not shutil.which("tmux"):
        pytest.fail("tmux is needed (scripts/test.sh installs it)")
    if UWSGITOP is None:
        pytest.fail("uwsgitop is needed (tests/requirements.txt: scripts/test.sh installs it)")
    server = portico_server("--wsgi-file", APP, "--processes", "3", "--stats", "127.0.0.1:0")
    host, port = address(server, STATS_RE)
    for _ in range(12):
        assert get(server, "/").status_code == 200
    doc = wait_until(lambda: (lambda d: d if sum(w["requests"] for w in d["workers"]) == 12 else None)(
        json.loads(read_stats((host, port)))), what="12 requests counted")
    session = f"portico-obs-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50",
                    f"{UWSGITOP} {host}:{port}"], check=True)
    try:
        def screen():
            out = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                 capture_output=True, text=True).stdout
            rows = re.findall(r"^ (\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+\d+\s+(\d+)\s+\d+\s+(idle|busy)",
                              out, re.M)
            return (out, rows) if len(rows) == 3 and "req: 12" in out else None

        out, rows = wait_until(screen, what="uwsgitop's worker rows")
        assert "WID" in out and "uwsgi-portico-" in out, out
        shown = {int(wid): (int(pid), int(req), int(exc)) for wid, _, pid, req, exc, _ in rows}
        expected = {w["id"]: (w["pid"], w["requests"], w["exceptions"]) for w in doc["workers"]}
        assert shown == expected, out
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


# --- Prometheus ---------------------------------------------------------------


def families(host, port):
    text = requests.get(f"http://{host}:{port}/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def total(family, name=None, **labels):
    return sum(s.value for s in family.samples
               if (name is None or s.name == name)
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_parse_with_prometheus_client_and_count_the_requests_sent(portico_server):
    server = portico_server("--wsgi-file", APP, "--processes", "2", "--threads", "2",
                            "--metrics", "127.0.0.1:0")
    host, port = address(server, METRICS_RE)
    for _ in range(5):
        assert get(server, "/").status_code == 200
    for _ in range(2):
        assert get(server, "/error").status_code == 500
    for _ in range(3):
        assert get(server, "/status/404").status_code == 404
    assert get(server, "/status/302", allow_redirects=False).status_code == 302

    def counted():
        f = families(host, port)
        return f if total(f["portico_requests"]) == 11 else None

    f = wait_until(counted, what="11 requests in the metrics")
    requests_total = f["portico_requests"]
    assert requests_total.type == "counter"
    assert total(requests_total, status="2xx") == 5
    assert total(requests_total, status="3xx") == 1
    assert total(requests_total, status="4xx") == 3
    assert total(requests_total, status="5xx") == 2
    assert {s.labels["worker"] for s in requests_total.samples} == {"1", "2"}

    hist = f["portico_request_duration_seconds"]
    assert hist.type == "histogram"
    assert total(hist, "portico_request_duration_seconds_count") == 11
    buckets = [(float(s.labels["le"]), s.value) for s in hist.samples
               if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == (float("inf"), 11)
    assert total(hist, "portico_request_duration_seconds_sum") > 0

    assert total(f["portico_exceptions"]) == 2
    assert total(f["portico_requests_in_flight"]) == 0
    assert total(f["portico_worker_respawns"]) == 0
    assert total(f["portico_harakiri"]) == 0
    assert total(f["portico_app_seconds"]) > 0
    assert f["portico_gil_wait_seconds"].type == "counter"
    [queue] = f["portico_listen_queue"].samples
    assert queue.labels["socket"] == f"127.0.0.1:{server.port}" and queue.value == 0
    [queue_max] = f["portico_listen_queue_max"].samples
    assert queue_max.value == 1024


def test_metrics_show_requests_in_flight_and_harakiri_kills(portico_server):
    server = portico_server("--wsgi-file", APP, "--processes", "1", "--harakiri", "1",
                            "--metrics", "127.0.0.1:0")
    host, port = address(server, METRICS_RE)
    def doomed():
        with pytest.raises(requests.ConnectionError):  # harakiri kills the worker mid-request
            requests.get(server.url + "/sleep?5", timeout=10)

    slow = threading.Thread(target=doomed)
    slow.start()
    try:
        wait_until(lambda: total(families(host, port)["portico_requests_in_flight"]) == 1,
                   what="one request in flight")
        server.wait_for_line(r"HARAKIRI ON WORKER 1", timeout=10)
        server.wait_for_line(r"Respawned uWSGI worker 1", timeout=10)
        f = families(host, port)
        assert total(f["portico_harakiri"]) == 1
        assert total(f["portico_worker_respawns"]) == 1
    finally:
        slow.join()


def test_listen_queue_shows_connections_no_worker_has_accepted(portico_server):
    server = portico_server("--wsgi-file", APP, "--processes", "2", "--stats", "127.0.0.1:0",
                            "--metrics", "127.0.0.1:0")
    stats = address(server, STATS_RE)
    metrics = address(server, METRICS_RE)
    # both workers (one thread each) busy: new connections wait in the kernel
    slow = [threading.Thread(target=lambda: get(server, "/sleep?2")) for _ in range(2)]
    for t in slow:
        t.start()
    waiting = []
    try:
        wait_until(lambda: sum(w["status"] == "busy"
                               for w in json.loads(read_stats(stats))["workers"]) == 2,
                   what="two busy workers")
        # (each sends its request: with TCP_DEFER_ACCEPT a connection that has
        # sent nothing waits before the listen queue, not in it)
        waiting = [server.connect() for _ in range(3)]
        for sock in waiting:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        doc = wait_until(lambda: (lambda d: d if d["listen_queue"] == 3 else None)(
            json.loads(read_stats(stats))), what="3 queued connections")
        assert doc["sockets"][0]["queue"] == 3 and doc["load"] == 3
        [queue] = families(*metrics)["portico_listen_queue"].samples
        assert queue.value == 3
    finally:
        for t in slow:
            t.join()
        for sock in waiting:
            sock.close()


def test_metrics_reject_other_methods(portico_server):
    server = portico_server("--wsgi-file", APP, "--metrics", "127.0.0.1:0")
    host, port = address(server, METRICS_RE)
    assert requests.post(f"http://{host}:{port}/metrics", timeout=5).status_code == 405


# --- the request log ----------------------------------------------------------

# uWSGI's `uwsgi_logit_simple` line, every field.
UWSGI_LINE = re.compile(
    r"^\[pid: (?P<pid>\d+)\|app: (?P<app>-?\d+)\|req: (?P<req>-?\d+)/(?P<total>\d+)\] "
    r"(?P<addr>\S*) \((?P<user>[^)]*)\) \{(?P<vars>\d+) vars in (?P<vbytes>\d+) bytes\} "
    r"\[(?P<date>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\] "
    r"(?P<method>\S*) (?P<uri>\S*) => generated (?P<body>\d+) bytes in (?P<msecs>\d+) msecs "
    r"\((?P<proto>HTTP/1\.[01]) (?P<status>\d{3})\) (?P<headers>\d+) headers in (?P<hbytes>\d+) bytes "
    r"\((?P<switches>\d+) switches on core (?P<core>\d+)\)$"
)


def exchange(server, request):
    """Send one raw request; return (client port, response head, body)."""
    with server.connect() as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(request)
        data = read_until_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    return client_port, head + b"\r\n\r\n", body


def environ_size(pairs):
    """uWSGI's {N vars in M bytes}: 2 x pairs, and each pair as the uwsgi
    packet encodes it (two 2-byte lengths, key, value)."""
    return 2 * len(pairs), sum(4 + len(k) + len(v) for k, v in pairs)


def expected_pairs(method, uri, client_port, server_port, headers):
    path, _, query = uri.partition("?")
    pairs = [("REQUEST_METHOD", method), ("REQUEST_URI", uri), ("PATH_INFO", path),
             ("QUERY_STRING", query), ("SERVER_PROTOCOL", "HTTP/1.1"),
             ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", str(client_port)),
             ("SERVER_NAME", "127.0.0.1"), ("SERVER_PORT", str(server_port))]
    for name, value in headers:
        if name.lower() == "content-type":
            pairs.append(("CONTENT_TYPE", value))
        elif name.lower() == "content-length":
            pairs.append(("CONTENT_LENGTH", value))
        else:
            pairs.append(("HTTP_" + name.upper().replace("-", "_"), value))
    return pairs


def test_default_log_line_is_uwsgis_field_for_field(portico_server):
    server = portico_server("--wsgi-file", APP)
    host = f"127.0.0.1:{server.port}"
    cases = [
        ("GET", "/hello?x=1", [("Host", host), ("User-Agent", "obs/1")], b"", 200),
        ("POST", "/post", [("Host", host), ("Content-Type", "text/plain"),
                           ("Content-Length", "5")], b"abcde", 200),
        ("GET", "/error", [("Host", host)], b"", 500),
        ("HEAD", "/", [("Host", host), ("Accept", "*/*")], b"", 200),
    ]
    seen = []
    for n, (method, uri, headers, body, status) in enumerate(cases, start=1):
        request = f"{method} {uri} HTTP/1.1\r\n".encode()
        request += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers + [("Connection", "close")])
        request += b"\r\n" + body
        client_port, head, response_body = exchange(server, request)
        m = server.wait_for_line(rf"\] {method} {re.escape(uri)} => ")
        line = m.string
        fields = UWSGI_LINE.match(line)
        assert fields, f"not uWSGI's line: {line!r}"
        f = fields.groupdict()
        assert int(f["pid"]) == server.proc.pid
        assert (f["app"], f["req"], f["total"]) == ("0", str(n), str(n)), line
        assert (f["addr"], f["user"]) == ("127.0.0.1", ""), line
        pairs = expected_pairs(method, uri, client_port, server.port,
                               headers + [("Connection", "close")])
        assert (int(f["vars"]), int(f["vbytes"])) == environ_size(pairs), line
        assert abs(time.mktime(time.strptime(f["date"], "%a %b %d %H:%M:%S %Y")) - time.time()) < 30
        assert (f["method"], f["uri"], f["proto"]) == (method, uri, "HTTP/1.1")
        assert int(f["status"]) == status and head.startswith(f"HTTP/1.1 {status} ".encode())
        assert int(f["body"]) == len(response_body), (line, response_body)
        header_lines = head.split(b"\r\n")[1:-2]
        assert int(f["headers"]) == len(header_lines), (line, head)
        assert int(f["hbytes"]) == len(head), (line, head)
        assert (f["switches"], f["core"]) == ("1", "0")
        seen.append(method)
    assert seen == ["GET", "POST", "GET", "HEAD"]
    post = server.wait_for_line(r"\] POST /post => ").string
    assert "generated 11 bytes" in post  # "got 5 bytes"


def test_default_log_line_counts_the_whole_instance_and_slow_requests(portico_server):
    server = portico_server("--wsgi-file", APP, "--processes", "2")
    for _ in range(4):
        assert get(server, "/").status_code == 200
    assert get(server, "/sleep?0.3").status_code == 200
    line = server.wait_for_line(r"GET /sleep\?0\.3 => ").string
    f = UWSGI_LINE.match(line).groupdict()
    assert int(f["total"]) == 5, line
    assert int(f["msecs"]) >= 300
    assert int(f["pid"]) in worker_pids(server, 2)


APACHE = (r'%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) '
          r'"%(referer)" "%(uagent)" %(msecs) %(var.HTTP_X_TRACE)')
QUOTED = r'"((?:[^"\\]|\\.)*)"'
APACHE_RE = re.compile(
    r'^(\S+) - (\S+) \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] ' + QUOTED
    + r' (\d{3}) (\d+) ' + QUOTED + " " + QUOTED + r" (\d+) (\S+)$"
)


def unescape(value):
    return re.sub(r"\\x([0-9a-f]{2})|\\(.)",
                  lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2), value)


def test_custom_log_format_stays_parseable_with_quotes_in_the_request(portico_server):
    server = portico_server("--wsgi-file", APP, "--log-format", APACHE)
    agent = 'evil" "agent\\ \t\xe9'
    # quotes and a backslash in the target too (a space would make the request line invalid)
    uri = '/q?a="b"&d=\\'
    request = (f"GET {uri} HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\n"
               f"X-Trace: t-1\r\nConnection: close\r\n\r\n").encode("latin-1")
    _, head, body = exchange(server, request)
    assert head.startswith(b"HTTP/1.1 200"), head
    line = server.wait_for_line(r'^127\.0\.0\.1 - - \[').string
    m = APACHE_RE.match(line)
    assert m, f"unparseable: {line!r}"
    addr, user, _, request_line, status, size, referer, uagent, msecs, trace = m.groups()
    assert (addr, user, status, referer, trace) == ("127.0.0.1", "-", "200", "-", "t-1")
    assert unescape(request_line) == f"GET {uri} HTTP/1.1"
    assert unescape(uagent) == agent
    assert int(size) == len(head) + len(body)


def test_log_format_json_lines_parse_with_json_loads(portico_server):
    server = portico_server("--wsgi-file", APP, "--log-format-json", "--memory-report")
    agent = 'ua "with" \\ quotes \t \xe9'
    for path in ("/", "/error", '/q?x="1"'):
        request = (f"GET {path} HTTP/1.1\r\nHost: h\r\nUser-Agent: {agent}\r\n"
                   "Connection: close\r\n\r\n").encode("latin-1")
        exchange(server, request)
    server.wait_for_line(r'"uri":"/error"')
    wait_until(lambda: len([l for l in server.lines if l.startswith('{"time":')]) == 3,
               what="3 JSON lines")
    records = [json.loads(l) for l in server.lines if l.startswith('{"time":')]
    by_uri = {r["uri"]: r for r in records}
    assert by_uri["/"]["status"] == 200 and by_uri["/error"]["status"] == 500
    for r in records:
        assert r["uagent"] == agent and r["host"] == "h" and r["method"] == "GET"
        assert r["addr"] == "127.0.0.1" and r["pid"] == server.proc.pid
        assert r["rss"] > 0 and r["vsz"] >= r["rss"]
        assert abs(r["time"] - time.time()) < 30
        assert r["size"] == r["rsize"] + r["hsize"]


def test_disable_logging_keeps_errors_and_slow_requests_when_asked(portico_server):
    server = portico_server("--wsgi-file", APP, "--disable-logging", "--log-5xx",
                            "--log-slow", "200")
    assert get(server, "/").status_code == 200
    assert get(server, "/status/404").status_code == 404
    assert get(server, "/error").status_code == 500
    assert get(server, "/sleep?0.3").status_code == 200
    assert get(server, "/status/503").status_code == 503
    server.wait_for_line(r"GET /status/503 => ")
    logged = [UWSGI_LINE.match(l).group("uri") for l in server.lines if UWSGI_LINE.match(l)]
    assert logged == ["/error", "/sleep?0.3", "/status/503"], server.log()


def test_log_4xx_alone_logs_only_client_errors(portico_server):
    server = portico_server("--wsgi-file", APP, "--disable-logging", "--log-4xx")
    assert get(server, "/error").status_code == 500
    assert get(server, "/status/418").status_code == 418
    server.wait_for_line(r"GET /status/418 => ")
    logged = [UWSGI_LINE.match(l).group("uri") for l in server.lines if UWSGI_LINE.match(l)]
    assert logged == ["/status/418"], server.log()


def test_x_forwarded_for_memory_report_and_log_date(portico_server):
    server = portico_server("--wsgi-file", APP, "--log-x-forwarded-for", "--memory-report",
                            "--log-date")
    assert get(server, "/", headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}).status_code == 200
    line = server.wait_for_line(r"GET / => ").string
    m = re.match(
        r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} - "
        r"\{address space usage: (\d+) bytes/(\d+)MB\} \{rss usage: (\d+) bytes/(\d+)MB\} (.*)$", line)
    assert m, line
    vsz, vsz_mb, rss, rss_mb, rest = m.groups()
    assert int(vsz) // 1048576 == int(vsz_mb) and int(rss) // 1048576 == int(rss_mb)
    assert 0 < int(rss) < int(vsz)
    f = UWSGI_LINE.match(rest)
    assert f and f.group("addr") == "203.0.113.7", rest
    # lifecycle lines carry the date too
    assert re.match(r"^[A-Z][a-z]{2} .* - \*\*\* portico is ready", server.wait_for_line("portico is ready").string)


def test_touch_logreopen_reopens_the_master_and_worker_logs(tmp_path):
    log = tmp_path / "portico.log"
    trigger = tmp_path / "reopen"
    trigger.write_text("")
    server = Server(["--http", "127.0.0.1:0", "--wsgi-file", APP, "--processes", "2",
                     "--logto", str(log), "--touch-logreopen", str(trigger)])
    try:
        port = int(wait_until(lambda: re.search(r"bound to TCP address 127\.0\.0\.1:(\d+)",
                                                log.read_text() if log.exists() else ""),
                              what="the bound line").group(1))
        wait_until(lambda: log.read_text().count("ready to serve") == 2, what="workers ready")
        url = f"http://127.0.0.1:{port}"
        for _ in range(4):
            assert requests.get(url + "/before", timeout=5).status_code == 200
        wait_until(lambda: log.read_text().count("GET /before") == 4, what="4 lines")
        rotated = tmp_path / "portico.log.1"
        log.rename(rotated)
        time.sleep(0.05)
        os.utime(trigger, (time.time() + 5, time.time() + 5))
        wait_until(lambda: log.exists() and "reopening log" in log.read_text(),
                   what="the master's reopen line in the new file")
        time.sleep(0.3)  # the workers handle SIGUSR2
        # two slow requests at once: one per worker (each runs one at a time)
        slow = [threading.Thread(target=lambda: requests.get(url + "/sleep?0.5", timeout=5))
                for _ in range(2)]
        for t in slow:
            t.start()
        for t in slow:
            t.join()
        for _ in range(4):
            assert requests.get(url + "/after", timeout=5).status_code == 200
        wait_until(lambda: log.read_text().count("GET /after") == 4, what="4 lines in the new log")
        wait_until(lambda: log.read_text().count("GET /sleep") == 2, what="2 slow lines")
        assert "GET /after" not in rotated.read_text()
        pids = {m for m in re.findall(r"\[pid: (\d+)\|", log.read_text())}
        assert len(pids) == 2, log.read_text()  # both workers reopened
        assert server.proc.poll() is None
    finally:
        server.stop()
