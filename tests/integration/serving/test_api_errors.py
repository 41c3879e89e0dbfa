"""Every endpoint answers bad input with a 4xx in the one error shape, naming the problem."""

from __future__ import annotations

from va_testing import assert_error

L = "errors-label"

# (method, path, request kwargs, expected status, expected code or None, expected field or None)
BAD_REQUESTS = [
    ("GET", "/api/no-such-route", {}, 404, "not_found", None),
    ("DELETE", "/api/labels", {}, 405, "method_not_allowed", None),
    ("GET", "/api/users/ann/token", {}, 405, "method_not_allowed", None),
    ("POST", "/api/login", {"json": {"name": "ann"}}, 422, "invalid", "password"),
    ("POST", "/api/login", {"json": {"name": "ann", "password": "nope"}}, 401, "bad_credentials", "password"),
    ("POST", "/api/users", {"json": {"name": "x", "role": "boss"}}, 422, "invalid", "role"),
    ("POST", "/api/users", {"json": {"name": "y", "password": "short"}}, 422, "invalid", "password"),
    ("POST", "/api/users", {"json": {"name": "ann", "role": "viewer"}}, 409, "conflict", None),
    ("POST", "/api/users/nobody/token", {}, 404, "not_found", None),
    ("GET", "/api/shots/digits00:999999", {}, 404, "not_found", None),
    ("GET", "/api/shots/..%5Cx", {}, 400, "bad_shot_id", "shot_id"),
    ("GET", "/api/shots/digits00:0?label=nope", {}, 404, "not_found", None),
    ("GET", "/api/search", {}, 422, "invalid", "q"),
    ("GET", "/api/search?limit=0&video=digits00", {}, 422, "invalid", "limit"),
    ("GET", "/api/search?limit=abc&video=digits00", {}, 422, "invalid", "limit"),
    ("GET", "/api/search?limit=100000&video=digits00", {}, 422, "invalid", "limit"),
    ("GET", "/api/search?q=x&like=digits00:0", {}, 422, "invalid", "like"),
    ("GET", "/api/search?like=digits00:999999", {}, 404, "not_found", "like"),
    ("GET", "/api/search?like=..%2F..%2Fetc", {}, 400, "bad_shot_id", "like"),
    ("GET", "/api/search?q=", {}, 422, "invalid", "q"),
    ("GET", "/api/search?video=a'b", {}, 422, "invalid", "video"),
    ("GET", "/api/search?video=digits00&label=nope", {}, 404, "not_found", None),
    ("POST", "/api/search/vector", {"json": {"vector": [0.5, 0.5]}}, 422, "invalid", "vector"),
    ("POST", "/api/search/vector", {"json": {"vector": "x"}}, 422, "invalid", "vector"),
    ("POST", "/api/labels", {"json": {}}, 422, "invalid", "name"),
    ("POST", "/api/labels", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     422, "invalid", None),
    ("POST", "/api/labels", {"json": {"name": "a/b"}}, 422, "invalid", None),
    ("POST", "/api/labels", {"json": {"name": "n", "colour": "red"}}, 422, "invalid", "colour"),
    ("POST", "/api/labels", {"json": {"name": "n", "keywords": "notalist"}}, 422, "invalid", "keywords"),
    ("POST", "/api/labels", {"json": {"name": "n", "positive_examples": ["digits00:999999"]}}, 404, "not_found",
     "positive_examples"),
    ("POST", "/api/labels", {"json": {"name": L}}, 409, "conflict", None),
    ("GET", "/api/labels/nope", {}, 404, "not_found", None),
    ("PATCH", f"/api/labels/{L}", {"json": {}}, 422, "invalid", "body"),
    ("PATCH", "/api/labels/nope", {"json": {"description": "d"}}, 404, "not_found", None),
    ("PATCH", f"/api/labels/{L}", {"json": {"negative_examples": ["digits00:999999"]}}, 404, "not_found",
     "negative_examples"),
    ("PUT", f"/api/labels/{L}/annotations/digits00:0", {"json": {"value": "yes"}}, 422, "invalid", "value"),
    ("PUT", f"/api/labels/{L}/annotations/digits00:0", {"json": {}}, 422, "invalid", "value"),
    ("PUT", f"/api/labels/{L}/annotations/digits00:0", {"json": [True]}, 422, "invalid", None),
    ("PUT", f"/api/labels/{L}/annotations/digits00:0", {"json": {"value": True, "expected_version": -1}}, 422,
     "invalid", "expected_version"),
    ("PUT", f"/api/labels/{L}/annotations/digits00:0", {"json": {"value": True, "source": "magic"}}, 422,
     "invalid", "source"),
    ("PUT", f"/api/labels/{L}/annotations/digits00:999999", {"json": {"value": True}}, 404, "not_found", "shot_id"),
    ("PUT", f"/api/labels/{L}/annotations/a%5Cb", {"json": {"value": True}}, 400, "bad_shot_id", "shot_id"),
    ("PUT", "/api/labels/nope/annotations/digits00:0", {"json": {"value": True}}, 404, "not_found", None),
    ("DELETE", f"/api/labels/{L}/annotations/digits00:0?expected_version=abc", {}, 422, "invalid",
     "expected_version"),
    ("DELETE", "/api/labels/nope/annotations/digits00:0", {}, 404, "not_found", None),
    ("POST", f"/api/labels/{L}/annotations:batch", {"json": {"items": "x"}}, 422, "invalid", "items"),
    ("POST", f"/api/labels/{L}/annotations:batch", {"json": {"items": [{"shot_id": "s"}]}}, 422, "invalid",
     "items.0.value"),
    ("POST", f"/api/labels/{L}/annotations:batch", {"json": {"items": [{"shot_id": "a/b", "value": True}]}}, 400,
     "bad_shot_id", "items.shot_id"),
    ("POST", "/api/labels/nope/annotations:batch", {"json": {"items": []}}, 404, "not_found", None),
    ("GET", f"/api/labels/{L}/annotations?value=maybe", {}, 422, "invalid", "value"),
    ("GET", f"/api/labels/{L}/annotations?limit=0", {}, 422, "invalid", "limit"),
    ("GET", "/api/labels/nope/annotations", {}, 404, "not_found", None),
    ("GET", f"/api/labels/{L}/events?since_id=-1", {}, 422, "invalid", "since_id"),
    ("GET", "/api/labels/nope/events", {}, 404, "not_found", None),
    ("POST", f"/api/labels/{L}/events/0/undo", {}, 422, "invalid", "event_id"),
    ("POST", f"/api/labels/{L}/events/99999/undo", {}, 404, "not_found", "event_id"),
    ("GET", "/api/labels/nope/disagreements", {}, 404, "not_found", None),
    ("GET", "/api/labels/nope/agreement", {}, 404, "not_found", None),
    ("POST", f"/api/labels/{L}/build", {}, 409, "not_enough_annotations", None),
    ("POST", f"/api/labels/{L}/build?wait=perhaps", {}, 422, "invalid", "wait"),
    ("POST", "/api/labels/nope/build", {}, 404, "not_found", None),
    ("GET", "/api/jobs/nope", {}, 404, "not_found", None),
    ("GET", f"/api/labels/{L}/sample?size=0", {}, 422, "invalid", "size"),
    ("GET", f"/api/labels/{L}/sample?size=501", {}, 422, "invalid", "size"),
    ("GET", f"/api/labels/{L}/sample?size=abc", {}, 422, "invalid", "size"),
    ("GET", "/api/labels/nope/sample", {}, 404, "not_found", None),
    ("GET", f"/api/labels/{L}/feeds/best", {}, 422, "invalid", "feed"),
    ("GET", f"/api/labels/{L}/feeds/top_positive", {}, 404, "not_found", None),
    ("GET", f"/api/labels/{L}/feeds/random?version=0", {}, 422, "invalid", "version"),
    ("GET", "/api/labels/nope/versions", {}, 404, "not_found", None),
    ("POST", f"/api/labels/{L}/versions/7/publish", {}, 404, "not_found", None),
    ("POST", f"/api/labels/{L}/versions/x/publish", {}, 422, "invalid", "n"),
    ("GET", "/api/labels/nope/export.csv", {}, 404, "not_found", None),
    ("GET", "/api/labels/nope/export.parquet", {}, 404, "not_found", None),
    ("POST", f"/api/labels/{L}/import", {"content": b"a,b\n1,2\n", "headers": {"content-type": "text/csv"}}, 422,
     "invalid", "header"),
    ("POST", f"/api/labels/{L}/import", {"content": b"\xff\xfe\x00bad", "headers": {"content-type": "text/csv"}},
     422, "invalid", "body"),
    ("POST", f"/api/labels/{L}/import", {"files": {"note": (None, "1")}}, 422, "invalid", "file"),
    ("POST", "/api/labels/nope/import", {"content": b"shot_id,value\n", "headers": {"content-type": "text/csv"}},
     404, "not_found", None),
    ("GET", "/api/shots/digits00:999999/video", {}, 404, "not_found", None),
    ("GET", "/api/shots/digits00:0/video", {"headers": {"Range": "bytes=99999999-"}}, 404, "video_unavailable", None),
    ("GET", "/api/shots/digits00:999999/group", {}, 404, "not_found", "shot_id"),
    ("POST", f"/api/labels/{L}/groups/digits00:0/annotations", {"json": {"value": "yes"}}, 422, "invalid", "value"),
    ("POST", f"/api/labels/{L}/groups/digits00:999999/annotations", {"json": {"value": True}}, 404, "not_found",
     "shot_id"),
    ("POST", "/api/labels/nope/groups/digits00:0/annotations", {"json": {"value": True}}, 404, "not_found", None),
    ("POST", f"/api/labels/{L}/batches/abc/undo", {}, 404, "not_found", "batch"),
    ("POST", f"/api/labels/{L}/batches/NOT-A-BATCH/undo", {}, 422, "invalid", "batch"),
    ("GET", "/api/videos/no-such-video/timeline", {}, 404, "not_found", "video_id"),
    ("GET", f"/api/labels/{L}/map?max_points=0", {}, 422, "invalid", "max_points"),
    ("POST", f"/api/labels/{L}/map/select", {"json": {"rect": [0, 0, 1, 1], "limit": 0}}, 422, "invalid", "limit"),
]  # fmt: skip


def test_every_endpoint_answers_bad_input_with_one_error_shape(service) -> None:
    admin = service.client("ada")
    assert admin.post("/api/labels", json={"name": L}).status_code == 201
    seen = set()
    for method, path, kwargs, status, code, field in BAD_REQUESTS:
        response = admin.request(method, path, **kwargs)
        error = assert_error(response, status, code)
        if field is not None:
            assert error.get("field") == field, (method, path, error)
        seen.add((method, path.split("?")[0]))
    documented = {(m.upper(), p) for p, ops in admin.get("/openapi.json").json()["paths"].items() for m in ops}
    # Every documented route (bar the ones without input) is exercised above, with its real path shape.
    shapes = {(m, _shape(p)) for m, p in seen}
    missing = {
        (m, p) for m, p in documented if (m, p) not in shapes and p not in {"/api/health", "/api/me", "/api/jobs"}
        and (m, p) not in {("POST", "/api/logout"), ("GET", "/api/labels"), ("GET", "/api/videos"),
                           ("GET", "/api/users"), ("GET", "/api/shots/{shot_id}/thumbnail")}
    }  # fmt: skip
    assert not missing, missing


def _shape(path: str) -> str:
    """/api/labels/x/feeds/top → /api/labels/{label}/feeds/{feed} (the OpenAPI path template)."""
    parts = path.split("/")
    template = []
    for i, part in enumerate(parts):
        prev = parts[i - 1] if i else ""
        if prev == "labels" and i == 3:
            template.append("{label}")
        elif prev == "shots":
            template.append("{shot_id}")
        elif prev == "users" and part not in {""}:
            template.append("{name}")
        elif prev == "jobs":
            template.append("{job_id}")
        elif prev == "feeds":
            template.append("{feed}")
        elif prev == "versions" and part != "":
            template.append("{n}")
        elif prev == "events":
            template.append("{event_id}")
        elif prev == "groups":
            template.append("{shot_id}")
        elif prev == "batches":
            template.append("{batch}")
        elif prev == "videos":
            template.append("{video_id}")
        elif prev == "annotations" and i == 5:
            template.append("{shot_id}")
        else:
            template.append(part)
    return "/".join(template)


def test_unauthenticated_and_unknown_routes_keep_the_shape(service) -> None:
    anon = service.client()
    assert_error(anon.get("/api/labels"), 401, "unauthenticated")
    assert_error(anon.get("/api/nothing/here"), 404, "not_found")
    health = anon.get("/api/health").json()
    assert health["status"] == "ok" and health["encoder"] == "handcrafted" and health["has_text"] is False
    spec = anon.get("/openapi.json").json()
    assert "/api/labels/{label}/build" in spec["paths"]
    assert anon.get("/docs").status_code == 200
