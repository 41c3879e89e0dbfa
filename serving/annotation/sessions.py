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
    """Failed password logins per key: past ``max_failures`` within ``lockout_s``, that key waits.

    Kept in memory per worker process, so with several workers the limit applies per worker.
    """

    def __init__(self, max_failures: int, lockout_s: float) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if now - t < self.lockout_s]
            if recent:
                self._failures[key] = recent
            else:
                self._failures.pop(key, None)  # forgotten keys do not pile up
            if len(recent) < self.max_failures:
                return 0.0
            return self.lockout_s - (now - recent[0])

    def failed(self, key: str) -> None:
        with self._lock:
            self._failures.setdefault(key, []).append(time.monotonic())

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class LoginGuard:
    """Both limits on password logins: per user name (the lockout) and per client address.

    An address past its own limit waits before its failures count against any name, so one
    address can lock out at most ``per_address // per_name`` names per lockout period.
    """

    def __init__(self, *, per_name: int, per_address: int, lockout_s: float) -> None:
        self.names = LoginThrottle(per_name, lockout_s)
        self.addresses = LoginThrottle(per_address, lockout_s)

    def retry_after(self, name: str, address: str) -> tuple[float, str]:
        """(seconds to wait, which limit: "address" or "name"); (0, "") when the login may be tried."""
        wait = self.addresses.retry_after(address)
        if wait > 0:
            return wait, "address"
        wait = self.names.retry_after(name)
        return (wait, "name") if wait > 0 else (0.0, "")

    def failed(self, name: str, address: str) -> None:
        self.addresses.failed(address)
        self.names.failed(name)

    def succeeded(self, name: str) -> None:
        self.names.succeeded(name)
