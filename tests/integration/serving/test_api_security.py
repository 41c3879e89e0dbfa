"""Who may do what, browser sessions with CSRF protection, media by shot id only, and size limits."""

from __future__ import annotations

import pytest
from va_testing import assert_error

LABEL = "roles"

# (action, method, path, json body) -> roles allowed; "allowed" means neither 401 nor 403.
ACTIONS = {
    "list labels": ("GET", "/api/labels", None),
    "read label": ("GET", f"/api/labels/{LABEL}", None),
    "search": ("GET", "/api/search?video=digits00&limit=5", None),
    "review": ("GET", f"/api/labels/{LABEL}/annotations", None),
    "history": ("GET", f"/api/labels/{LABEL}/events", None),
    "agreement": ("GET", f"/api/labels/{LABEL}/agreement", None),
    "versions": ("GET", f"/api/labels/{LABEL}/versions", None),
    "export": ("GET", f"/api/labels/{LABEL}/export.csv", None),
    "thumbnail": ("GET", "/api/shots/digits00:0/thumbnail", None),
    "create label": ("POST", "/api/labels", {"name": "made-by-{role}"}),
    "change label": ("PATCH", f"/api/labels/{LABEL}", {"description": "changed by {role}"}),
    "annotate": ("PUT", f"/api/labels/{LABEL}/annotations/digits00:25", {"value": True}),
    "withdraw": ("DELETE", f"/api/labels/{LABEL}/annotations/digits00:25", None),
    "batch": ("POST", f"/api/labels/{LABEL}/annotations:batch", {"items": [{"shot_id": "digits00:5", "value": False}]}),
    "build": ("POST", f"/api/labels/{LABEL}/build", None),
    "import": ("POST", f"/api/labels/{LABEL}/import", None),
    "publish": ("POST", f"/api/labels/{LABEL}/versions/1/publish", None),
    "list users": ("GET", "/api/users", None),
    "create user": ("POST", "/api/users", {"name": "new-by-{role}", "role": "viewer"}),
    "reset token": ("POST", "/api/users/new-by-admin/token", None),
}  # fmt: skip
READ = {"list labels", "read label", "search", "review", "history", "agreement", "versions", "export", "thumbnail"}
LABEL_WORK = {"create label", "change label", "annotate", "withdraw", "batch", "build", "import"}
ALLOWED = {
    "viewer": READ,
    "annotator": READ | LABEL_WORK,
    "admin": READ | LABEL_WORK | {"publish", "list users", "create user", "reset token"},
}
USER_OF_ROLE = {"viewer": "vic", "annotator": "ben", "admin": "ada"}


@pytest.fixture(scope="module")
def roles_label(service) -> str:
    assert service.client("ada").post("/api/labels", json={"name": LABEL}).status_code == 201
    return LABEL


@pytest.mark.parametrize("role", ["anonymous", "viewer", "annotator", "admin"])
def test_role_action_table(service, roles_label, role: str) -> None:
    client = service.client(USER_OF_ROLE.get(role))
    for action, (method, path, body) in ACTIONS.items():
        kwargs = {}
        if body is not None:
            kwargs["json"] = {k: v.format(role=role) if isinstance(v, str) else v for k, v in body.items()}
        if action == "import":
            kwargs = {"content": "shot_id,value\ndigits00:75,true\n", "headers": {"content-type": "text/csv"}}
        response = client.request(method, path, **kwargs)
        allowed = response.status_code not in (401, 403)
        expected = action in ALLOWED.get(role, set())
        assert allowed == expected, (role, action, response.status_code, response.text[:300])
        if not allowed:
            assert_error(response, 401 if role == "anonymous" else 403)
        else:
            assert response.status_code < 500, (action, response.text[:300])


def test_browser_session_needs_csrf_token_and_same_origin(service) -> None:
    browser = service.client()
    assert_error(browser.get("/api/me"), 401, "unauthenticated")
    assert_error(browser.post("/api/login", json={"name": "ann", "password": "wrong-password"}), 401, "bad_credentials")
    assert_error(
        browser.post(
            "/api/login",
            json={"name": "ann", "password": service.passwords["ann"]},
            headers={"Origin": "https://evil.example"},
        ),
        403,
        "csrf",
    )
    login = browser.post("/api/login", json={"name": "ann", "password": service.passwords["ann"]})
    assert login.status_code == 200, login.text
    set_cookie = login.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    token = login.json()["csrf_token"]
    me = browser.get("/api/me").json()
    assert me == {"name": "ann", "role": "annotator", "via": "session", "csrf_token": token}

    body = {"name": "csrf-label"}
    assert_error(browser.post("/api/labels", json=body), 403, "csrf")
    assert_error(browser.post("/api/labels", json=body, headers={"X-CSRF-Token": "forged"}), 403, "csrf")
    cross = {"X-CSRF-Token": token, "Origin": "https://evil.example"}
    assert_error(browser.post("/api/labels", json=body, headers=cross), 403, "csrf")
    cross_referer = {"X-CSRF-Token": token, "Referer": "https://evil.example/page"}
    assert_error(browser.post("/api/labels", json=body, headers=cross_referer), 403, "csrf")
    same = {"X-CSRF-Token": token, "Origin": service.base_url}
    assert browser.post("/api/labels", json=body, headers=same).status_code == 201

    # A tampered cookie is no session at all.
    forged = service.client()
    forged.cookies.set("va_session", browser.cookies["va_session"][:-3] + "abc")
    assert_error(forged.get("/api/me"), 401, "unauthenticated")

    assert browser.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert_error(browser.get("/api/me"), 401, "unauthenticated")


def test_bearer_token_is_checked(service) -> None:
    anon = service.client()
    assert_error(anon.get("/api/labels", headers={"Authorization": "Bearer nope"}), 401, "unauthenticated")
    assert_error(anon.get("/api/labels", headers={"Authorization": "Basic YTpi"}), 401, "unauthenticated")
    assert service.client("vic").get("/api/me").json() == {"name": "vic", "role": "viewer", "via": "token"}
    # Token calls carry no cookie, so CSRF does not apply to them.
    assert service.client("ann").post("/api/labels", json={"name": "token-label"}).status_code == 201


TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2e%2e",
    "..",
    "..%5C..%5Cwindows%5Cwin.ini",
    "%2Fetc%2Fpasswd",
    "digits00:0%2F..%2F..%2Fetc%2Fpasswd",
    "C:%5CWindows%5Cwin.ini",
    "file:%2F%2F%2Fetc%2Fpasswd",
    "%252e%252e%252fetc%252fpasswd",
]


@pytest.mark.parametrize("what", ["video", "thumbnail"])
@pytest.mark.parametrize("shot_id", TRAVERSALS)
def test_media_routes_refuse_paths(service, shot_id: str, what: str) -> None:
    import http.client
    import json
    from urllib.parse import urlsplit

    # http.client sends the path byte for byte (httpx would normalise the dot segments away).
    url = urlsplit(service.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("GET", f"/api/shots/{shot_id}/{what}", headers={"Authorization": f"Bearer {service.tokens['vic']}"})
    response = conn.getresponse()
    text = response.read().decode("utf-8", "replace")
    conn.close()
    assert 400 <= response.status < 500, (shot_id, response.status)
    assert "root:" not in text
    error = json.loads(text)["error"]
    assert error["code"] in {"bad_shot_id", "not_found"} and error["message"]


def test_oversized_bodies_and_batches_are_refused(service) -> None:
    ann = service.client("ann")
    limit = service.settings.max_body_bytes
    big = {"name": "too-big", "description": "x" * (limit + 10)}
    error = assert_error(ann.post("/api/labels", json=big), 413, "too_large")
    assert str(limit) in error["message"]

    import_limit = service.settings.max_import_bytes

    def chunks():  # no Content-Length: the limit has to be counted while reading
        for _ in range(import_limit // 1000 + 5):
            yield b"x" * 1000

    streamed = ann.post("/api/labels/too-big/import", content=chunks(), headers={"content-type": "text/csv"})
    error = assert_error(streamed, 413, "too_large")
    assert "VA_MAX_IMPORT_BYTES" in error["message"]
    assert ann.get("/api/labels/too-big").status_code == 404

    # An import over the general body limit but within its own limit is read (and reports its rows).
    ann.post("/api/labels", json={"name": "big-import"})
    rows = "".join(f"nope:{i},true\n" for i in range(limit // 10))
    assert limit < len(rows) < import_limit
    report = ann.post(
        "/api/labels/big-import/import", content="shot_id,value\n" + rows, headers={"content-type": "text/csv"}
    )
    assert report.status_code == 200, report.text
    assert report.json()["imported"] == 0 and report.json()["n_unmatched"] == limit // 10

    ann.post("/api/labels", json={"name": "batchy"})
    items = [{"shot_id": f"digits00:{25 * i}", "value": True} for i in range(service.settings.max_batch + 1)]
    error = assert_error(ann.post("/api/labels/batchy/annotations:batch", json={"items": items}), 413, "too_large")
    assert error["field"] == "items"


def test_repeated_failed_logins_lock_that_name_only(service) -> None:
    admin = service.client("ada")
    created = admin.post("/api/users", json={"name": "locky", "role": "viewer", "password": "right-password"})
    assert created.status_code == 201, created.text
    browser = service.client()
    limit = service.settings.login_max_failures
    for _ in range(limit):
        assert_error(browser.post("/api/login", json={"name": "locky", "password": "guess"}), 401, "bad_credentials")
    # Locked now: even the right password waits, and the answer says for how long.
    error = assert_error(
        browser.post("/api/login", json={"name": "locky", "password": "right-password"}), 429, "too_many_attempts"
    )
    assert 0 < error["retry_after_s"] <= service.settings.login_lockout_s
    assert "VA_LOGIN_MAX_FAILURES" in error["message"]
    # Other people still log in.
    other = service.client().post("/api/login", json={"name": "vic", "password": service.passwords["vic"]})
    assert other.status_code == 200, other.text
