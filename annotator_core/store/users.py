"""Users of the annotation service: roles, API tokens (stored hashed) and passwords (argon2)."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator_core.db import User
from annotator_core.errors import ConflictError, ValidationFailed
from annotator_core.store.database import Database, by_name, check_name

ROLES = ("admin", "annotator", "viewer")


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: str
    created_at: datetime


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, role: str, *, password: str | None = None) -> tuple[UserInfo, str]:
        """Create a user; return it with a fresh API token (shown once, stored hashed)."""
        name = check_name(name, "user name")
        if role not in ROLES:
            raise ValidationFailed(f"role {role!r} is not one of {', '.join(ROLES)}; pick one of them.")
        token = _new_token()
        with self.db.atomic() as s:
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise ConflictError(f"user {name!r} already exists; pick another name or use `va users token`.")
            user = User(
                name=name,
                role=role,
                password_hash=hash_password(password) if password else None,
                token_hash=_token_hash(token),
            )
            s.add(user)
        return _user_info(user), token

    def reset_token(self, name: str) -> str:
        token = _new_token()
        with self.db.atomic() as s:
            _user(s, name).token_hash = _token_hash(token)
        return token

    def set_password(self, name: str, password: str) -> None:
        with self.db.atomic() as s:
            _user(s, name).password_hash = hash_password(password)

    def get(self, name: str) -> UserInfo:
        with self.db.read() as s:
            return _user_info(_user(s, name))

    def all(self) -> list[UserInfo]:
        with self.db.read() as s:
            return [_user_info(u) for u in s.scalars(select(User).order_by(User.name))]

    def by_token(self, token: str) -> UserInfo | None:
        with self.db.read() as s:
            user = s.scalar(select(User).where(User.token_hash == _token_hash(token)))
            return _user_info(user) if user else None

    def check_password(self, name: str, password: str) -> UserInfo | None:
        with self.db.read() as s:
            user = s.scalar(select(User).where(User.name == name))
            if user is None or not user.password_hash:
                verify_password(_dummy_hash(), password)  # the same argon2 work, so timing tells no names apart
                return None
            return _user_info(user) if verify_password(user.password_hash, password) else None


@functools.cache
def _dummy_hash() -> str:
    """A hash of no one's password, made with the same parameters as real ones."""
    return hash_password(secrets.token_urlsafe(32))


def hash_password(password: str) -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    from argon2 import PasswordHasher
    from argon2.exceptions import VerificationError, VerifyMismatchError

    try:
        return PasswordHasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError):
        return False


def _user(s: Session, name: str) -> User:
    found: User = by_name(s, User, name, f"no user named {name!r}; create it with `va users add {name} --role …`.")
    return found


def _new_token() -> str:
    return "va_" + secrets.token_urlsafe(32)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user_info(u: User) -> UserInfo:
    return UserInfo(name=u.name, role=u.role, created_at=u.created_at)
