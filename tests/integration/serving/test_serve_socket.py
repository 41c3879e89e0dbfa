"""`va serve` with several workers: the shared socket's connections send small responses at once.

uvicorn opens the socket it shares between workers without naming TCP, and
asyncio sets TCP_NODELAY only on connections of sockets whose protocol is
IPPROTO_TCP; without it a kept-alive response waits for the client's delayed
ACK (~40 ms). Real sockets on loopback, the server on a port of its own.
"""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import uvicorn

from va_cli.serve import _tcp_socket


def _nodelay_of_accepted(sock: socket.socket) -> int:
    """TCP_NODELAY of the first connection an asyncio server on ``sock`` accepts."""

    async def main() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        sock.listen()
        server = await asyncio.start_server(on_connect, sock=sock)
        port = sock.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(accepted, timeout=30)
        writer.close()
        server.close()
        await server.wait_closed()
        return value

    # In a thread of its own: a test run's browser tests may leave an event loop running on this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


def test_the_shared_socket_gives_connections_tcp_nodelay() -> None:
    config = uvicorn.Config("va_cli.serve:app_from_environment", host="127.0.0.1", port=0, workers=2)
    ours = _tcp_socket(config)
    assert ours.proto == socket.IPPROTO_TCP
    assert _nodelay_of_accepted(ours) != 0


def test_va_serve_with_two_workers_answers_on_kept_alive_connections(tmp_path) -> None:
    """The supervisor path `va serve` takes for VA_WORKERS > 1 starts and serves on the socket it made."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import httpx
    from va_testing import poll, reserved_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("VA_")}
    with reserved_port() as port:
        env.update(VA_DATA_DIR=str(tmp_path / "data"), VA_PORT=str(port), VA_WORKERS="2", VA_ENCODER="handcrafted")
        va = Path(sys.executable).parent / "va"
        proc = subprocess.Popen([str(va), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

                def health() -> int:
                    assert proc.poll() is None, "va serve exited"
                    try:
                        return client.get("/api/health").status_code
                    except httpx.TransportError:
                        return 0

                poll(health, until=lambda code: code == 200, timeout=120, what="va serve answering /api/health")
                assert [client.get("/api/health").status_code for _ in range(3)] == [200, 200, 200]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
