"""Issue 16, through the real binary: `worker_connections` (nginx.conf) and
`--worker-connections` (options). At the limit a new connection makes room
by closing the oldest idle keep-alive connections, as nginx does with its
reusable connections (ngx_drain_connections); it is refused (503) only when
none is idle, and a connection with a request in hand is never closed for it.
"""

import time

from conftest import APPS
from httpraw import Conn
from ports import free_port

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
PARTIAL = b"GET / HTTP/1.1\r\nHost: x\r\n"  # a head not finished: busy, not idle


def nginx_conf(tmp_path, port, connections):
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "worker_processes 1;\nerror_log stderr;\npid %s/nginx.pid;\n"
        "events { worker_connections %d; }\n"
        "http { access_log off; server { listen 127.0.0.1:%d; "
        "location / { return 200 \"ok\\n\"; } } }\n" % (tmp_path, connections, port)
    )
    return conf


def answered_ok(conn):
    """Send one keep-alive request on `conn`: True if it is answered 200."""
    conn.send(REQUEST)
    return conn.read_response().status == 200


def idle_connection(port):
    """A keep-alive connection that was answered once and now idles."""
    conn = Conn("127.0.0.1", port, timeout=5)
    assert answered_ok(conn), "served under the limit"
    return conn


def busy_connection(port):
    """A connection with a request head half sent (a request in hand)."""
    conn = Conn("127.0.0.1", port, timeout=5)
    conn.send(PARTIAL)
    return conn


def new_client_status(port):
    """The status line a new `Connection: close` client is answered with."""
    with Conn("127.0.0.1", port, timeout=5) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return conn.read_response().raw_head.split(b"\r\n", 1)[0]


def test_at_the_limit_the_oldest_idle_connections_make_room(portico_server, tmp_path):
    port = free_port()
    server = portico_server("-c", nginx_conf(tmp_path, port, 16))
    held = []
    try:
        for _ in range(16):
            held.append(idle_connection(port))
            time.sleep(0.01)  # each goes idle after the one before
        assert new_client_status(port) == b"HTTP/1.1 200 OK", "room made for the new client"
        server.wait_for_line(r"16 worker_connections are not enough, closing idle")
        closed = [s.wait_closed(0.5 if i < 4 else 0.05) for i, s in enumerate(held)]
        print("closed to make room:", [i for i, c in enumerate(closed) if c])
        # nginx's measure: an eighth of the idle ones (2 of 16), oldest first
        assert closed[:2] == [True, True], closed
        assert not any(closed[2:]), closed
        for s in held[2:]:
            s.settimeout(5)
            assert answered_ok(s), "the newer ones still serve"
    finally:
        for s in held:
            s.close()


def test_connections_with_a_request_in_hand_are_never_closed_to_make_room(
    portico_server, tmp_path
):
    port = free_port()
    server = portico_server("-c", nginx_conf(tmp_path, port, 8))
    busy, idle = [], None
    try:
        for _ in range(7):
            busy.append(busy_connection(port))
        idle = idle_connection(port)
        time.sleep(0.1)
        # the one idle connection makes room; the busy ones are left alone
        assert new_client_status(port) == b"HTTP/1.1 200 OK"
        assert idle.wait_closed(1.0), "the idle one was closed"
        busy.append(busy_connection(port))
        time.sleep(0.1)
        # now all 8 have a request in hand: none is closed, the new one is refused
        assert new_client_status(port) == b"HTTP/1.1 503 Service Unavailable"
        server.wait_for_line(r"8 worker_connections are not enough: none is idle")
        for s in busy:
            s.send(b"\r\n")
            assert s.read_response().status == 200, "a busy one is answered"
    finally:
        for s in busy:
            s.close()
        if idle:
            idle.close()


def test_worker_connections_option_limits_an_http_listener(portico_server):
    server = portico_server(
        "--wsgi-file", APPS / "proc_app.py", "--worker-connections", "4", "--threads", "2"
    )
    port = server.port
    busy = [busy_connection(port) for _ in range(4)]
    try:
        time.sleep(0.1)
        assert new_client_status(port) == b"HTTP/1.1 503 Service Unavailable"
        server.wait_for_line(r"4 worker_connections are not enough: none is idle")
        for s in busy:
            s.send(b"\r\n")
            assert s.read_response().status == 200
        # answered, they idle now: a new client makes room
        assert new_client_status(port) == b"HTTP/1.1 200 OK"
        assert busy[0].wait_closed(1.0), "the oldest idle one was closed"
    finally:
        for s in busy:
            s.close()
