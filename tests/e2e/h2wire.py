"""HTTP/2 on the wire for the tests: raw frames written by hand (struct), so a test
can send what no well-behaved client would (floods, resets, oversized header
lists), and a small well-behaved client on python-hyper's `h2` package for the
ordinary exchanges (many streams on one connection, request bodies).

    with RawH2(port) as c:                     # preface + empty SETTINGS sent
        c.send(c.headers(1, "/"))              # HEADERS (END_STREAM|END_HEADERS)
        frames = c.read_frames(2.0)            # [Frame(type, flags, stream, payload)]
        c.goaway()                             # the GOAWAY frame received, or None

    responses = h2_get_many(port, ["/a", "/b"])   # {stream_id: (status, headers, body)}
"""

import socket
import struct
import time
from collections import namedtuple

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack

from httpraw import SocketHolder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = (
    0x0, 0x1, 0x6, 0x7, 0x8, 0xB)

Frame = namedtuple("Frame", "type flags stream payload")


def frame(kind, flags, stream, payload=b""):
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings_frame(**values):
    """A SETTINGS frame; keys: header_table_size (1), enable_push (2),
    max_concurrent_streams (3), initial_window_size (4), max_frame_size (5),
    max_header_list_size (6)."""
    ids = {"header_table_size": 1, "enable_push": 2, "max_concurrent_streams": 3,
           "initial_window_size": 4, "max_frame_size": 5, "max_header_list_size": 6}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


class RawH2(SocketHolder):
    """A TCP connection speaking HTTP/2 by hand."""

    def __init__(self, port, host="127.0.0.1", settings=b"", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.encoder = hpack.Encoder()
        self.buf = b""
        self.frames = []
        self.closed = False
        self.sock.sendall(PREFACE + (settings or frame(SETTINGS, 0, 0)))

    def block(self, path="/", method="GET", extra=()):
        """An HPACK-encoded request header block."""
        return self.encoder.encode(
            [(":method", method), (":scheme", "http"), (":path", path), (":authority", "localhost")]
            + list(extra))

    def headers(self, stream, path="/", end_stream=True, extra=(), method="GET"):
        """A HEADERS frame carrying a whole request head."""
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, stream, self.block(path, method, extra))

    def send(self, data):
        """Send bytes; False if the server has closed (EPIPE / reset)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def read_frames(self, timeout=2.0, until=None):
        """Read frames for up to `timeout` seconds (or until `until(frames)` holds,
        or the connection closes); every frame read so far is kept in .frames."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            if until is not None and until(self.frames):
                break
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                break
            except OSError:
                self.closed = True
                break
            if not data:
                self.closed = True
                break
            self.buf += data
            while len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + length:
                    break
                kind, flags = self.buf[3], self.buf[4]
                stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                self.frames.append(Frame(kind, flags, stream, self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
        return self.frames

    def goaway(self):
        """(last stream id, error code) of the GOAWAY received, or None."""
        for f in self.frames:
            if f.type == GOAWAY:
                last, code = struct.unpack(">II", f.payload[:8])
                return last & 0x7FFFFFFF, code
        return None

    def resets(self):
        """{stream: error code} of the RST_STREAM frames received."""
        return {f.stream: struct.unpack(">I", f.payload)[0] for f in self.frames if f.type == RST_STREAM}

    def statuses(self):
        """{stream: status} of the responses received (a fresh decoder: only the
        static table and literals the server sent on this connection, in order)."""
        decoder = hpack.Decoder()
        decoder.max_header_list_size = 1 << 20
        out = {}
        for f in self.frames:
            if f.type == HEADERS:
                fields = dict(decoder.decode(f.payload))
                status = fields.get(":status") or fields.get(b":status")
                out[f.stream] = int(status)
        return out

    def data_bytes(self, stream):
        return sum(len(f.payload) for f in self.frames if f.type == DATA and f.stream == stream)


def h2_request_many(port, requests, host="127.0.0.1", timeout=20.0, window=None, lengths=True):
    """Send every (method, path, body, headers) of `requests` on one h2c
    connection, all streams open at once; return a list of (status, headers dict,
    body bytes) in the order given. `lengths`: bodies announce a content-length
    (else their end is END_STREAM alone)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if window:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    sock.sendall(conn.data_to_send())
    streams = {}
    pending_bodies = {}
    for method, path, body, headers in requests:
        sid = conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "http"), (":path", path),
                  (":authority", "localhost")] + list(headers or [])
        if body is not None and lengths:
            fields.append(("content-length", str(len(body))))
        conn.send_headers(sid, fields, end_stream=body is None)
        streams[sid] = {"status": None, "headers": {}, "body": bytearray(), "done": False}
        if body is not None:
            pending_bodies[sid] = memoryview(body)
    sock.sendall(conn.data_to_send())
    deadline = time.monotonic() + timeout
    while not all(s["done"] for s in streams.values()):
        # Request bodies, as the windows allow.
        for sid, rest in list(pending_bodies.items()):
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(rest))
            while room > 0:
                conn.send_data(sid, rest[:room].tobytes())
                rest = rest[room:]
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(rest))
            if len(rest) == 0:
                conn.end_stream(sid)
                del pending_bodies[sid]
            else:
                pending_bodies[sid] = rest
        sock.sendall(conn.data_to_send())
        if time.monotonic() > deadline:
            raise TimeoutError("streams not all answered: %r" % {
                k: v["status"] for k, v in streams.items() if not v["done"]})
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                s = streams[event.stream_id]
                s["headers"] = {k.decode(): v.decode() for k, v in event.headers}
                s["status"] = int(s["headers"][":status"])
            elif isinstance(event, h2.events.DataReceived):
                streams[event.stream_id]["body"] += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                streams[event.stream_id]["done"] = True
            elif isinstance(event, h2.events.StreamReset):
                raise ConnectionError("stream %d reset (%s)" % (event.stream_id, event.error_code))
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise ConnectionError("GOAWAY %s" % event.error_code)
        sock.sendall(conn.data_to_send())
    sock.close()
    return [(s["status"], s["headers"], bytes(s["body"])) for s in streams.values()]


def h2_get(port, path="/", **kw):
    """One GET on a fresh h2c connection: (status, headers, body)."""
    return h2_request_many(port, [("GET", path, None, ())], **kw)[0]
