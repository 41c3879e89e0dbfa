"""Hostile and unlucky use of the annotation service (issue 11): no 500s, atomic imports, safe exports, logins."""

from __future__ import annotations

import csv
import io
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_support import add_users, client, own_service, write_shots
from va_testing import assert_error, poll, reserved_port

HUGE = "9" * 30  # past SQLite's and PostgreSQL's integers


# --------------------------------------------------------------------------- integers


def test_integers_past_the_database_range_are_a_422_naming_the_field(service) -> None:
    ada = service.client("ada")
    label = "huge-ints"
    ada.post("/api/labels", json={"name": label})
    shot = service.shots_of_digit(3, 1)[0]
    cases = [
        ("POST", f"/api/labels/{label}/events/{HUGE}/undo", {}, "event_id"),
        ("GET", f"/api/labels/{label}/feeds/top_positive?version={HUGE}", {}, "version"),
        ("POST", f"/api/labels/{label}/versions/{HUGE}/publish", {}, "n"),
        ("GET", f"/api/labels/{label}/events?since_id={HUGE}", {}, "since_id"),
        ("GET", f"/api/labels/{label}/annotations?offset={HUGE}", {}, "offset"),
        ("GET", f"/api/search?video=reel&limit={HUGE}", {}, "limit"),
        ("PUT", f"/api/labels/{label}/annotations/{shot}", {"json": {"value": True, "expected_version": 10**30}},
         "expected_version"),
        ("DELETE", f"/api/labels/{label}/annotations/{shot}?expected_version={HUGE}", {}, "expected_version"),
    ]  # fmt: skip
    for method, path, kwargs, field in cases:
        error = assert_error(ada.request(method, path, **kwargs), 422, "invalid")
        assert error["field"] == field, (path, error)


# --------------------------------------------------------------------------- CSV import


def test_a_csv_field_over_the_csv_modules_limit_is_read_or_refused_naming_its_line(service) -> None:
    ann = service.client("ann")
    ann.post("/api/labels", json={"name": "long-field"})
    shot = service.shots_of_digit(4, 1)[0]
    # 200,000 characters in one field: past the csv module's default limit (131,072), within the import's.
    text = f"shot_id,value,note\n{shot},true,{'x' * 200_000}\n"
    report = ann.post("/api/labels/long-field/import", content=text, headers={"content-type": "text/csv"})
    assert report.status_code == 200, report.text[:300]
    assert report.json()["imported"] == 1
    # A line the csv reader refuses (broken quoting) is a 422 naming the line, and the connection keeps working.
    broken = f'shot_id,value\n{shot},true\n{shot},"tr"ue\n'
    error = assert_error(
        ann.post("/api/labels/long-field/import", content=broken, headers={"content-type": "text/csv"}), 422
    )
    assert error["field"] == "body" and error["line"] == 3 and "line 3" in error["message"]
    assert ann.get("/api/labels/long-field").status_code == 200


def _import(url: str, token: str, label: str, text: str, timeout: float = 300) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "content-type": "text/csv"}
    return httpx.post(f"{url}/api/labels/{label}/import", content=text, headers=headers, timeout=timeout)


def _count(settings: Any, label: str) -> int:
    from annotator_core.store import AnnotationStore

    store = AnnotationStore.from_settings(settings)
    try:
        return len(store.annotations.current(label))
    finally:
        store.db.close()


N_IMPORT = 30_000


def test_an_import_killed_midway_leaves_no_rows_and_a_full_one_is_fast(tmp_path: Path) -> None:
    from annotator_core.settings import Settings

    data = tmp_path / "data"
    settings = Settings(data_dir=data, encoder="handcrafted")
    ids = write_shots(settings, N_IMPORT)
    tokens = add_users(settings)
    text = "shot_id,value\n" + "".join(f"{sid},{'true' if i % 3 else 'false'}\n" for i, sid in enumerate(ids))
    va = Path(sys.executable).parent / "va"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VA_")}
    with reserved_port() as port:
        env.update({"VA_DATA_DIR": str(data), "VA_PORT": str(port), "VA_ENCODER": "handcrafted"})
        url = f"http://127.0.0.1:{port}"

        def start() -> subprocess.Popen[bytes]:
            proc = subprocess.Popen([str(va), "serve", "--host", "127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
            poll(lambda: _alive(url, proc), until=bool, timeout=90, what="va serve answering")
            return proc

        proc = start()
        try:
            for label in ("full", "killed"):
                assert httpx.post(f"{url}/api/labels", json={"name": label},
                                  headers={"Authorization": f"Bearer {tokens['ann']}"}).status_code == 201  # fmt: skip
            started = time.perf_counter()
            full = _import(url, tokens["ann"], "full", text)
            elapsed = time.perf_counter() - started
            assert full.status_code == 200, full.text[:300]
            assert full.json()["imported"] == N_IMPORT
            rate = N_IMPORT / elapsed
            print(f"\nCSV import over HTTP: {N_IMPORT} rows in {elapsed:.2f} s = {rate:,.0f} rows/s (SQLite)")
            assert rate >= 1_000, rate  # the target on a quiet machine is 5,000 rows/s; CI machines are shared

            # The same import again, and the service is killed while it runs.
            outcome: dict[str, Any] = {}
            request = threading.Thread(target=lambda: outcome.update(r=_try_import(url, tokens["ann"], text)))
            request.start()
            time.sleep(elapsed / 2)
            assert request.is_alive(), "the import finished before the kill: nothing was tested"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            request.join(timeout=60)
            assert outcome["r"] is None, "the import was answered although the service was killed during it"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    assert _count(settings, "killed") in (0, N_IMPORT)
    assert _count(settings, "full") == N_IMPORT


def _alive(url: str, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "va serve exited"
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _try_import(url: str, token: str, text: str) -> httpx.Response | None:
    try:
        return _import(url, token, "killed", text)
    except httpx.TransportError:
        return None


# --------------------------------------------------------------------------- exports and names


def test_csv_export_neutralises_formulas_and_parquet_stays_raw(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    with own_service(tmp_path) as (url, _settings, tokens):
        ada = client(url, tokens["ada"])
        created = ada.post("/api/users", json={"name": "=1+2", "role": "annotator"})
        assert created.status_code == 201, created.text
        evil = client(url, created.json()["token"])
        label = '=HYPERLINK("evil.example","x")'  # no slash: names cannot have one
        assert evil.post("/api/labels", json={"name": label}).status_code == 201
        for shot, source in (("reel:0", "search"), ("reel:25", "")):
            assert evil.put(
                f"/api/labels/{label}/annotations/{shot}", json={"value": True, "source": source}
            ).is_success
        exported = evil.get(f"/api/labels/{label}/export.csv")
        assert exported.status_code == 200
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert {r["label"] for r in rows} == {"'" + label}
        assert {r["annotator"] for r in rows} == {"'=1+2"}
        for row in rows:
            for cell in row.values():
                assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), row
        raw = pq.read_table(io.BytesIO(evil.get(f"/api/labels/{label}/export.parquet").content)).to_pylist()
        assert {r["label"] for r in raw} == {label} and {r["annotator"] for r in raw} == {"=1+2"}


@pytest.mark.parametrize("name", ["nul\0name", "tab\tname", "line\nbreak", "a/b", "x" * 101, ""])
def test_label_names_outside_the_documented_set_are_refused(service, name) -> None:
    error = assert_error(service.client("ann").post("/api/labels", json={"name": name}), 422, "invalid")
    assert error["field"] == "name"


def test_updated_at_has_one_format_in_every_answer(service) -> None:
    ann = service.client("ann")
    ann.post("/api/labels", json={"name": "stamps"})
    shot = service.shots_of_digit(6, 1)[0]
    written = ann.put(f"/api/labels/stamps/annotations/{shot}", json={"value": True}).json()["updated_at"]
    listed = ann.get("/api/labels/stamps/annotations").json()["annotations"][0]["updated_at"]
    seen = ann.get(f"/api/shots/{shot}", params={"label": "stamps"}).json()["annotations"][0]["updated_at"]
    assert written == listed == seen and written.endswith("+00:00")


# --------------------------------------------------------------------------- logins


def _login(url: str, name: str, password: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/api/login", json={"name": name, "password": password}, timeout=60, **kwargs)


def test_unknown_and_known_names_take_the_same_time_to_refuse(tmp_path: Path) -> None:
    with own_service(tmp_path, login_max_failures=1000, login_max_failures_per_address=1000) as (url, _s, _t):
        _login(url, "ann", "warm-up")  # the dummy hash is made on first use
        _login(url, "nobody", "warm-up")

        def seconds(name: str) -> float:
            started = time.perf_counter()
            assert _login(url, name, "wrong-password").status_code == 401
            return time.perf_counter() - started

        known = statistics.median(seconds("ann") for _ in range(7))
        unknown = statistics.median(seconds("nobody-at-all") for _ in range(7))
    print(f"\nwrong password: known name {known * 1000:.0f} ms, unknown name {unknown * 1000:.0f} ms")
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_one_address_cannot_lock_out_every_name_and_every_429_says_when(tmp_path: Path) -> None:
    with own_service(tmp_path, login_max_failures=2, login_max_failures_per_address=3) as (url, _s, _t):
        for name in ("victim-1", "victim-2", "ann"):
            assert_error(_login(url, name, "guess"), 401, "bad_credentials")
        # The address is spent: it waits before any more guesses count against anyone.
        refused = _login(url, "ann", "guess")
        error = assert_error(refused, 429, "too_many_attempts")
        assert int(refused.headers["Retry-After"]) == error["retry_after_s"] > 0
        assert "VA_LOGIN_MAX_FAILURES_PER_ADDRESS" in error["message"]
        # ann failed once, below the per-name limit of 2: not locked for other addresses.
        from serving.annotation.sessions import LoginGuard

        guard = LoginGuard(per_name=2, per_address=3, lockout_s=300)
        for name in ("victim-1", "victim-2", "ann", "ann"):
            guard.failed(name, "10.0.0.1")
        assert guard.retry_after("ann", "10.0.0.2") == (pytest.approx(300, abs=1), "name")
        assert guard.retry_after("victim-1", "10.0.0.2") == (0.0, "")


def test_a_name_lockout_429_carries_retry_after(tmp_path: Path) -> None:
    with own_service(tmp_path, login_max_failures=2) as (url, _s, _t):
        for _ in range(2):
            assert_error(_login(url, "ann", "guess"), 401, "bad_credentials")
        locked = _login(url, "ann", "ann-password-1")
        error = assert_error(locked, 429, "too_many_attempts")
        assert locked.headers["Retry-After"] == str(error["retry_after_s"])


def test_a_login_sent_as_text_never_echoes_the_password(service) -> None:
    secret = "hunter2-very-secret"
    for body, content_type in (
        (f'{{"name": "ann", "password": "{secret}"}}', "text/plain"),
        (f"name=ann&password={secret}", "application/x-www-form-urlencoded"),
        (f'{{"name": ["ann"], "password": "{secret}"}}', "application/json"),
        (f'{{"name": "ann", "password": ["{secret}"]}}', "application/json"),
    ):
        response = httpx.post(f"{service.base_url}/api/login", content=body, headers={"content-type": content_type})
        assert_error(response, 422, "invalid")
        assert secret not in response.text, response.text


# --------------------------------------------------------------------------- media and limits


def test_a_chunked_413_names_its_field_and_a_416_says_the_length(service) -> None:
    ann = service.client("ann")

    def chunks() -> Iterator[bytes]:
        for _ in range(service.settings.max_body_bytes // 1000 + 5):
            yield b"x" * 1000

    error = assert_error(ann.post("/api/labels", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert error["field"] == "body"
    shot = service.media_shots[0]
    size = service.video_path.stat().st_size
    beyond = ann.get(f"/api/shots/{shot}/video", headers={"Range": f"bytes={size + 10}-"})
    assert_error(beyond, 416, "range_not_satisfiable")
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
