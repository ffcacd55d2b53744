"""The port helper itself (tests/e2e/ports.py), without Portico: ports come
from outside the kernel's ephemeral range, never twice, never one something
holds, and the start helpers recognise a taken port in a server's log.
"""

import errno
import os
import socket

import pytest

import ports


def test_ports_are_handed_out_below_the_ephemeral_range():
    low, high = ports.ephemeral_range()
    for _ in range(20):
        port = ports.free_port()
        assert not low <= port <= high, (port, low, high)


def test_a_port_is_never_handed_out_twice_in_a_process():
    given = [ports.free_port() for _ in range(200)]
    assert len(set(given)) == len(given)


def test_a_port_something_listens_on_is_never_handed_out():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        assert not ports.is_free(taken)
        with pytest.raises(RuntimeError, match="no free port left"):
            ports.PortSource(taken, taken, 0).take()


def test_a_wildcard_listener_makes_the_port_taken():
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        assert not ports.is_free(held.getsockname()[1])


def test_the_range_wraps_from_the_offset_and_ends_when_used_up():
    source = ports.PortSource(100, 102, 5, free=lambda port: port != 101)
    assert [source.take(), source.take()] == [102, 100]
    with pytest.raises(RuntimeError, match="no free port left in 100..102"):
        source.take()


@pytest.mark.parametrize("ephemeral,expected", [
    ((32768, 60999), (ports.FLOOR, 32767)),
    ((1024, 50000), (50001, 65535)),
    ((1024, 65535), None),
])
def test_the_handout_range_is_below_the_ephemeral_one_else_above(ephemeral, expected):
    assert ports.handout_range(ephemeral) == expected


def test_a_taken_port_is_recognised_in_each_servers_words():
    assert ports.port_taken(f"bind() to 127.0.0.1:1 failed (98: {os.strerror(errno.EADDRINUSE)})")
    assert ports.port_taken("portico: binding 127.0.0.1:1: Address already in use (os error 98)")
    assert not ports.port_taken("portico: unknown directive")
