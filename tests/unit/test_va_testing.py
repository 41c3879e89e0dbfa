"""The test harness's own helpers: a reserved port really is held, and a poll really has a deadline."""

from __future__ import annotations

import errno
import itertools
import socket
import time

import pytest
from va_testing import poll, reserved_port


def _bind(port: int, *, reuse: bool) -> socket.socket:
    sock = socket.socket()
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def test_a_reserved_port_is_held_yet_a_server_can_listen_on_it() -> None:
    with reserved_port() as port:
        with pytest.raises(OSError) as taken:  # a server that does not share the port cannot have it
            _bind(port, reuse=False).close()
        assert taken.value.errno == errno.EADDRINUSE
        handed_out = set()
        for _ in range(5000):  # nor is it handed to anyone asking for any free port
            with _bind(0, reuse=True) as other:
                handed_out.add(other.getsockname()[1])
        assert port not in handed_out
        with _bind(port, reuse=True) as server:  # what uvicorn and BentoML's circus do
            server.listen()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                accepted, _ = server.accept()
                client.sendall(b"ok")
                assert accepted.recv(2) == b"ok"
                accepted.close()


def test_a_reserved_port_is_released_at_the_end_of_the_block() -> None:
    with reserved_port() as port:
        pass
    _bind(port, reuse=False).close()


def test_poll_returns_the_first_value_that_satisfies_it() -> None:
    counter = itertools.count()
    assert poll(lambda: next(counter), until=lambda n: n >= 3, timeout=5, what="counting", interval=0) == 3


def test_poll_fails_at_its_deadline_with_the_last_value_seen() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"the job finishing did not happen within 0\.3 s; last seen: 'running'"):
        poll(lambda: "running", until=lambda s: s == "done", timeout=0.3, what="the job finishing")
    assert 0.3 <= time.monotonic() - started < 5
