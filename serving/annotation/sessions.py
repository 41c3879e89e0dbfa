"""Browser sessions and password logins: the signing secret, the session cookie signer, the login throttle."""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer

if TYPE_CHECKING:
    from annotator_core.settings import Settings

SESSION_MAX_AGE_S = 14 * 24 * 3600
SECRET_FILE = "session_secret"


def session_secret(settings: Settings) -> str:
    """The secret that signs sessions: the setting, else one created once in the data folder."""
    if settings.session_secret:
        return settings.session_secret
    path = Path(settings.ensure_data_dir()) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class SessionSigner:
    """Signs and checks the session cookie: {user name, CSRF token}, expiring after two weeks."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="va-session")

    def dumps(self, name: str, csrf_token: str) -> str:
        return self._serializer.dumps({"u": name, "c": csrf_token})

    def loads(self, cookie: str) -> tuple[str, str] | None:
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("c"), str):
            return None
        return data["u"], data["c"]


class LoginThrottle:
    """Failed password logins per user name: past the limit, that name is locked for a while.

    Kept in memory per worker process, so with several workers the limit applies per worker.
    """

    def __init__(self, max_failures: int, lockout_s: float) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, name: str) -> float:
        """Seconds until ``name`` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(name, []) if now - t < self.lockout_s]
            self._failures[name] = recent
            if len(recent) < self.max_failures:
                return 0.0
            return self.lockout_s - (now - recent[0])

    def failed(self, name: str) -> None:
        with self._lock:
            self._failures.setdefault(name, []).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
