"""`va users` makes accounts whose printed tokens work against the API; `va serve` serves it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner
from va_testing import poll, reserved_port
from va_testing import serve_annotation_app as serve


def test_users_add_prints_a_working_token_and_list_and_token_rotate(tmp_path: Path) -> None:
    from annotator_core.settings import Settings
    from va_cli.main import cli

    env = {"VA_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "eve", "--role", "admin", "--password", "correct-horse"], env=env)
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    assert token.startswith("va_")
    viewer = runner.invoke(cli, ["users", "add", "val", "--role", "viewer"], env=env)
    assert viewer.exit_code == 0
    bad = runner.invoke(cli, ["users", "add", "x", "--role", "boss"], env=env)
    assert bad.exit_code == 2 and "boss" in bad.output
    dup = runner.invoke(cli, ["users", "add", "eve"], env=env)
    assert dup.exit_code == 2 and "already exists" in dup.output
    listed = runner.invoke(cli, ["users", "list"], env=env).output
    assert "eve" in listed and "admin" in listed and "val" in listed and "viewer" in listed

    with serve(Settings(data_dir=tmp_path / "data", session_secret="s")) as url:
        me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"}).json()
        assert me == {"name": "eve", "role": "admin", "via": "token"}
        login = httpx.post(f"{url}/api/login", json={"name": "eve", "password": "correct-horse"})
        assert login.status_code == 200 and login.json()["role"] == "admin"
        rotated = runner.invoke(cli, ["users", "token", "eve"], env=env).output.strip()
        assert rotated.startswith("va_") and rotated != token
        assert httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {rotated}"}).status_code == 200


def _health(proc: subprocess.Popen[str], port: int) -> httpx.Response | None:
    """/api/health of the `va serve` in ``proc``; None while it is not answering yet."""
    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
    except httpx.TransportError:
        return None


def test_va_serve_starts_the_service(tmp_path: Path) -> None:
    va = Path(sys.executable).parent / "va"
    with reserved_port() as port:  # no other test can be given this port while `va serve` starts on it
        env = {**os.environ, "VA_DATA_DIR": str(tmp_path / "data"), "VA_PORT": str(port)}
        proc = subprocess.Popen([str(va), "serve", "--host", "127.0.0.1"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            health = poll(
                lambda: _health(proc, port), until=lambda r: r is not None, timeout=90, what="va serve answering"
            )
            assert health is not None and health.status_code == 200 and health.json()["status"] == "ok"
            assert (tmp_path / "data" / "session_secret").stat().st_mode & 0o077 == 0  # secret readable by owner only
        finally:
            proc.terminate()
            proc.wait(timeout=30)
