"""Hostile input to the scoring service (issue 11): never a 5xx, one error shape naming the field, no URL fetched."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from scoring_support import make_store, start_server, stop_server

pytestmark = pytest.mark.slow

DIM = 256
ARROW = {"content-type": "application/vnd.apache.arrow.stream"}


def assert_shape(response: httpx.Response, *, field: bool = True) -> dict[str, Any]:
    """A 4xx in the one error shape; with ``field``, it names the field at fault."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str), error
    if field:
        assert error.get("field"), error
    if response.status_code == 429:
        assert int(response.headers["Retry-After"]) >= 1
    return error


def arrow_body(column: pa.Array, name: str = "vector") -> bytes:
    table = pa.table({name: column})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


WRONG_ARROW = {
    "list<string>": pa.array([["0.1"] * DIM], type=pa.list_(pa.string())),
    "list<list<float32>>": pa.array([[[0.1]] * DIM], type=pa.list_(pa.list_(pa.float32()))),
    "string": pa.array(["0.1"]),
    "struct": pa.array([{"x": 0.1}]),
    "list<bool>": pa.array([[True] * DIM], type=pa.list_(pa.bool_())),
}


@pytest.mark.parametrize("kind", list(WRONG_ARROW))
def test_an_arrow_column_of_the_wrong_type_is_a_422_naming_column_and_type(scoring_server, kind) -> None:
    server, _ = scoring_server
    resp = httpx.post(f"{server.url}/v1/score/embeddings/binary", content=arrow_body(WRONG_ARROW[kind]), headers=ARROW)
    error = assert_shape(resp)
    assert resp.status_code == 422 and error["field"] == "vector", error
    assert "fixed_size_list<float32>" in error["message"] and "'vector'" in error["message"]


@pytest.mark.parametrize("bad", ['"0.5"', "true", "null", '{"x": 1}'])
def test_vector_values_must_be_json_numbers(scoring_server, bad) -> None:
    server, _ = scoring_server
    body = '{"vectors": [[' + ",".join(["0.1"] * 5 + [bad] + ["0.1"] * (DIM - 6)) + "]]}"
    resp = httpx.post(f"{server.url}/v1/score/embeddings", content=body, headers={"content-type": "application/json"})
    error = assert_shape(resp)
    assert resp.status_code == 422 and error["field"] == "vectors[0][5]", error


@contextmanager
def recording_http_server() -> Iterator[tuple[str, list[str]]]:
    """A local web server that records every path asked of it: proof that nothing was fetched."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"not a video")

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_clip_is_an_uploaded_file_only_and_urls_are_never_fetched(scoring_server) -> None:
    server, _ = scoring_server
    route = f"{server.url}/v1/score/clip"
    with recording_http_server() as (url, seen):
        attempts = [
            httpx.post(route, data={"clip": "hello"}, files={"other": ("x.txt", b"x")}),
            httpx.post(route, data={"clip": f"{url}/video.mp4"}, files={"other": ("x.txt", b"x")}),
            httpx.post(route, content=f"{url}/video.mp4", headers={"content-type": "text/plain"}),
            httpx.post(route, json={"clip": f"{url}/video.mp4"}),
            httpx.post(route, content=f"{url}/video.mp4", headers={"content-type": "application/json"}),
        ]
        for resp in attempts:
            error = assert_shape(resp)
            assert resp.status_code == 422 and error["field"] == "clip", error
            assert "uploaded file" in error["message"]
        assert seen == [], f"the scoring service fetched {seen}"


def test_bentomls_own_errors_have_the_one_shape(scoring_server) -> None:
    server, _ = scoring_server
    assert_shape(httpx.post(f"{server.url}/v1/no-such-route", json={}), field=False)
    assert_shape(httpx.get(f"{server.url}/v1/score/embeddings"), field=False)
    wrong_type = httpx.post(f"{server.url}/v1/score/embeddings", content=b"<x/>", headers={"content-type": "text/xml"})
    assert_shape(wrong_type, field=False)


def test_a_burst_is_shed_with_429s_in_the_one_shape_with_retry_after(scoring_server, sample_videos_dir) -> None:
    server, _ = scoring_server
    clip = (sample_videos_dir / "bikes.mp4").read_bytes()

    def score(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/v1/score/clip", files={"clip": ("b.mp4", clip, "video/mp4")}, timeout=120)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(score, range(8)))
    shed = [r for r in answers if r.status_code == 429]
    assert shed and any(r.status_code == 200 for r in answers), [r.status_code for r in answers]
    for resp in shed:
        error = assert_shape(resp, field=False)
        assert error["code"] == "too_many_requests" and "VA_SCORING_MAX_CONCURRENCY" in error["message"]


def test_a_client_error_is_one_log_line_not_a_traceback(scoring_server) -> None:
    server, _ = scoring_server
    before = len(server.log_text())
    assert_shape(httpx.post(f"{server.url}/v1/score/embeddings", json={"vectors": "not a list"}))
    assert_shape(httpx.post(f"{server.url}/v1/score/shots", json={"shot_ids": 7}))
    written = server.log_text()[before:]
    assert "Traceback" not in written, written[-3000:]
    assert written.count("client error 422 (invalid)") == 2, written[-3000:]


def test_a_corrupt_model_is_named_when_nothing_else_loads(tmp_path: Path, corpus) -> None:
    from serving.model_store import publish

    settings = make_store(tmp_path / "va-data", corpus)
    broken = publish("bikes", settings=settings)
    Path(broken.path, "model.onnx").write_bytes(b"\x08\x01garbage that is not a protobuf graph")
    server = start_server(tmp_path / "va-data", tmp_path / "serve.log")
    try:
        resp = httpx.post(f"{server.url}/v1/score/embeddings", json={"vectors": [[0.1] * DIM]})
        assert resp.status_code == 503, resp.text
        error = resp.json()["error"]
        assert error["code"] == "model_unavailable" and broken.tag in error["message"] and "corrupt" in error["message"]
        assert "no label is published" not in error["message"]
        named = httpx.post(f"{server.url}/v1/score/embeddings", json={"vectors": [[0.1] * DIM], "labels": ["bikes"]})
        assert named.status_code == 503 and broken.tag in named.json()["error"]["message"]
    finally:
        stop_server(server.process)


# --------------------------------------------------------------------------- the fuzz table

HOSTILE_VALUES: list[Any] = [
    10**30, -(10**30), -1, 0, 1.5e308, "x" * 100_000, "nul\0byte", "\udcff", True, None, [], {}, [[None]],
    [["0.1"]], [[10**30]], ["a", 1], {"$gt": ""},
]  # fmt: skip
JSON_ROUTES = {
    "/v1/score/embeddings": ("vectors", "labels", "encoder"),
    "/v1/score/shots": ("shot_ids", "labels"),
    "/v1/labels": (),
}
RAW_BODIES = [
    b"", b"\xff\xfe\xfd", b"\0" * 4096, b"{" * 10_000, b"[" + b"1," * 50_000 + b"1]", b'{"vectors": [[1e999]]}',
    "{\"vectors\": \"\udcff\"}".encode("utf-8", "surrogatepass"),
]  # fmt: skip
CONTENT_TYPES = ["application/json", "application/octet-stream", "application/vnd.apache.arrow.stream", "text/plain",
                 "multipart/form-data; boundary=x", "multipart/form-data"]  # fmt: skip


def test_fuzz_every_route_never_answers_5xx(scoring_server) -> None:
    """Every route, every hostile value in every field, raw junk bodies under every content type."""
    server, _ = scoring_server
    sent = 0
    with httpx.Client(base_url=server.url, timeout=60) as client:

        def check(resp: httpx.Response, what: str) -> None:
            nonlocal sent
            sent += 1
            assert resp.status_code < 500, (what, resp.status_code, resp.text[:300])
            if resp.status_code >= 400:
                error = assert_shape(resp, field=False)
                if resp.status_code == 422:
                    assert error.get("field"), (what, error)

        for route, fields in JSON_ROUTES.items():
            for field in fields:
                for value in HOSTILE_VALUES:
                    payload = {"vectors": [[0.1] * DIM], "shot_ids": ["bikes:0"], field: value}
                    data = _json_bytes(payload)
                    check(
                        client.post(route, content=data, headers={"content-type": "application/json"}),
                        f"{route} {field}={value!r:.40}",
                    )
        for route in (*JSON_ROUTES, "/v1/score/embeddings/binary", "/v1/score/clip"):
            for body in RAW_BODIES:
                for content_type in CONTENT_TYPES:
                    check(
                        client.post(route, content=body, headers={"content-type": content_type}),
                        f"{route} {body[:20]!r} {content_type}",
                    )
        for query in ("labels=" + "x" * 5000, "labels=%00", "encoder=%FF", "labels=a,,b", "encoder=" + "9" * 30):
            body = np.zeros((1, DIM), "<f4").tobytes()
            check(
                client.post(
                    f"/v1/score/embeddings/binary?{query}",
                    content=body,
                    headers={"content-type": "application/octet-stream"},
                ),
                query,
            )
        for value in [v for v in HOSTILE_VALUES if v != "\udcff"][:8]:  # a form field must be encodable
            check(
                client.post("/v1/score/clip", data={"clip": str(value)[:1000]}, files={"x": ("x", b"x")}),
                f"clip={value!r:.40}",
            )
        check(
            client.post("/v1/score/clip", files={"clip": ("evil\0name.mp4", b"\0" * 1000, "video/mp4")}),
            "clip NUL name",
        )
        for arrow in WRONG_ARROW.values():
            check(client.post("/v1/score/embeddings/binary", content=arrow_body(arrow), headers=ARROW), str(arrow.type))
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            check(client.request(method, "/v1/score/embeddings"), method)
    assert sent > 300, sent


def _json_bytes(payload: dict[str, Any]) -> bytes:
    import json

    return json.dumps(payload, allow_nan=True).encode("utf-8", "surrogatepass")
