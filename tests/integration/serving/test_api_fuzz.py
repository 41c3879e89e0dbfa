"""Every route of the annotation service (from its OpenAPI schema) against a table of hostile inputs: never a 5xx."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from serving_support import client, own_service

# Path and query values: huge and negative integers, wrong types, NUL, bad UTF-8, oversize, traversal.
HOSTILE_TEXT = [
    "9" * 30, "-" + "9" * 30, "-1", "0", "1e309", "NaN", "true", "x" * 5000, "a\0b", "%FF%FE", "..%2F..%2Fetc",
    "\u202e\ufeff", "[]", "{}",
]  # fmt: skip
# JSON field values: the same, typed.
HOSTILE_JSON: list[Any] = [
    10**30, -(10**30), -1, 1.5e308, "x" * 100_000, "nul\0byte", True, None, [], {}, [None], ["a" * 1000] * 200,
    {"$gt": ""},
]  # fmt: skip
RAW_BODIES = [b"", b"\xff\xfe\xfd", b"\0" * 1000, b"{" * 5000, b"[1,2", b'{"a":' * 2000]


def _fill(path: str, value: str) -> str:
    """The path with every ``{param}`` replaced by ``value`` (already URL-quoted where it should be)."""
    return re.sub(r"\{[^}]+\}", value, path)


def _check(resp: httpx.Response, what: str) -> None:
    assert resp.status_code < 500, (what, resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        body = resp.json()
        assert set(body) == {"error"}, (what, body)
        error = body["error"]
        assert error["code"] and error["message"], (what, error)
        if resp.status_code == 422:
            assert error.get("field"), (what, error)
        if resp.status_code == 429:
            assert int(resp.headers["Retry-After"]) >= 1


def _body_fields(schema: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = content.get("schema", {}).get("$ref", "")
    if not ref:
        return []
    model = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return list(model.get("properties", {}))


def test_fuzz_every_route_with_hostile_input_never_answers_5xx(tmp_path: Path) -> None:
    with own_service(tmp_path, login_max_failures_per_address=100_000) as (url, _settings, tokens):
        admin = client(url, tokens["ada"])
        schema = admin.get("/openapi.json").json()
        admin.post("/api/labels", json={"name": "fuzz"})
        sent = 0
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                method = method.upper()
                params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
                # Hostile path parameters (the label kept real in half the cases, so deeper checks run too).
                for value in HOSTILE_TEXT:
                    for target in (_fill(path, quote(value, safe="%")), _real_label(path, quote(value, safe="%"))):
                        _check(admin.request(method, target, **_json_for(method)), f"{method} {target[:80]}")
                        sent += 1
                # Hostile query parameters, one at a time.
                for name in params:
                    for value in HOSTILE_TEXT:
                        target = _real_label(path, "fuzz:0")
                        resp = admin.request(method, target, params={name: value}, **_json_for(method))
                        _check(resp, f"{method} {target}?{name}={value[:20]}")
                        sent += 1
                if method not in ("POST", "PUT", "PATCH"):
                    continue
                target = _real_label(path, "reel:0")
                # Every field of the JSON body set to every hostile value, and raw junk bodies.
                for field in _body_fields(schema, operation):
                    for value in HOSTILE_JSON:
                        data = json.dumps({field: value}).encode()
                        resp = admin.request(method, target, content=data, headers={"content-type": "application/json"})
                        _check(resp, f"{method} {target} {field}={value!r:.40}")
                        sent += 1
                for raw in RAW_BODIES:
                    for content_type in ("application/json", "text/plain", "multipart/form-data", "text/csv"):
                        resp = admin.request(method, target, content=raw, headers={"content-type": content_type})
                        _check(resp, f"{method} {target} {raw[:10]!r} as {content_type}")
                        sent += 1
        # Logins with hostile names and passwords (no session: these must not 500 either).
        for value in HOSTILE_JSON:
            _check(httpx.post(f"{url}/api/login", json={"name": value, "password": value}), f"login {value!r:.40}")
            sent += 1
    assert sent > 1000, sent


def _real_label(path: str, other: str) -> str:
    """The path with ``{label}`` = the real label 'fuzz' and every other parameter = ``other``."""
    return _fill(path.replace("{label}", "fuzz"), other)


def _json_for(method: str) -> dict[str, Any]:
    return {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
