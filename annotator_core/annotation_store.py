"""The annotation store: users, labels, annotations with their event log, classifier versions.

SQLAlchemy 2 over SQLite (the embedded default, WAL mode) or PostgreSQL (by
URL). The schema belongs to the Alembic migrations; :meth:`AnnotationStore.migrate`
brings any database to the newest revision.

Concurrency: every annotation row carries a ``version``. A write names the
version it read (``expected_version``); if someone changed the row since, the
write raises :class:`ConflictError` instead of silently overwriting. A write of
the value already stored changes nothing, so a repeated request is harmless.
An annotation and its event commit in one transaction or not at all.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.exc import ArgumentError as SAArgumentError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from annotator_core.db import Annotation, AnnotationEvent, ClassifierVersion, JobRecord, Label, User, utcnow
from annotator_core.errors import ConfigError, ConflictError, NotFoundError, StoreUnavailable, ValidationFailed

ROLES = ("admin", "annotator", "viewer")
MIGRATIONS = Path(__file__).parent / "migrations"


# --------------------------------------------------------------------------- records out


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True)
class LabelInfo:
    id: int
    name: str
    description: str
    keywords: list[str]
    positive_examples: list[str]
    negative_examples: list[str]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class AnnotationRow:
    label: str
    shot_id: str
    annotator: str
    value: bool | None  # None: withdrawn (the row stays, so its version keeps counting)
    source: str
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class EventRow:
    id: int
    label: str
    shot_id: str
    annotator: str  # whose annotation changed
    old_value: bool | None
    new_value: bool | None
    source: str
    version: int
    at: datetime
    actor: str  # who made the change (the annotator, or e.g. an admin undoing it)


@dataclass(frozen=True)
class VersionInfo:
    label: str
    version: int
    created_at: datetime
    created_by: str
    snapshot_event_id: int
    snapshot: list[list[Any]]
    n_pos: int
    n_neg: int
    model_quality: float
    data_diversity: float
    model: bytes
    encoder: str
    dim: int
    shots_table_version: int
    extra: dict[str, Any]
    published_at: datetime | None


# --------------------------------------------------------------------------- the store


class AnnotationStore:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = _make_engine(url)
        # Writers on SQLite take the write lock up front (BEGIN IMMEDIATE) so two
        # read-then-write transactions queue instead of failing on lock upgrade.
        self._write_engine = self.engine.execution_options(va_write=True)
        if migrate:
            self.migrate()

    @classmethod
    def from_settings(cls, settings: Any, *, migrate: bool = True) -> AnnotationStore:
        if not settings.database_url:
            settings.ensure_data_dir()
        return cls(settings.resolved_database_url, migrate=migrate)

    # -- lifecycle -----------------------------------------------------------

    def migrate(self) -> str:
        """Create or upgrade the schema to the newest Alembic revision; return it."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreUnavailable(_unreachable(self.url, exc)) from None
        return self.revision()

    def revision(self) -> str:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() or ""

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            raise StoreUnavailable(_unreachable(self.url, exc)) from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def atomic(self) -> Iterator[Session]:
        """One write transaction: everything inside commits together or not at all."""
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- users ---------------------------------------------------------------

    def create_user(self, name: str, role: str, *, password: str | None = None) -> tuple[UserInfo, str]:
        """Create a user; return it with a fresh API token (shown once, stored hashed)."""
        name = _check_name(name, "user name")
        if role not in ROLES:
            raise ValidationFailed(f"role {role!r} is not one of {', '.join(ROLES)}; pick one of them.")
        token = "va_" + secrets.token_urlsafe(32)
        with self.atomic() as s:
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
        token = "va_" + secrets.token_urlsafe(32)
        with self.atomic() as s:
            user = self._user(s, name)
            user.token_hash = _token_hash(token)
        return token

    def set_password(self, name: str, password: str) -> None:
        with self.atomic() as s:
            self._user(s, name).password_hash = hash_password(password)

    def get_user(self, name: str) -> UserInfo:
        with self._read() as s:
            return _user_info(self._user(s, name))

    def list_users(self) -> list[UserInfo]:
        with self._read() as s:
            return [_user_info(u) for u in s.scalars(select(User).order_by(User.name))]

    def user_by_token(self, token: str) -> UserInfo | None:
        with self._read() as s:
            user = s.scalar(select(User).where(User.token_hash == _token_hash(token)))
            return _user_info(user) if user else None

    def check_password(self, name: str, password: str) -> UserInfo | None:
        with self._read() as s:
            user = s.scalar(select(User).where(User.name == name))
            if user is None or not user.password_hash:
                return None
            return _user_info(user) if verify_password(user.password_hash, password) else None

    @staticmethod
    def _user(s: Session, name: str) -> User:
        return _by_name(s, User, name, f"no user named {name!r}; create it with `va users add {name} --role …`.")

    # -- labels --------------------------------------------------------------

    def create_label(
        self,
        name: str,
        *,
        description: str = "",
        keywords: Sequence[str] = (),
        created_by: str = "",
        positive_examples: Sequence[str] = (),
        negative_examples: Sequence[str] = (),
    ) -> LabelInfo:
        name = _check_name(name, "label name")
        with self.atomic() as s:
            if s.scalar(select(Label).where(Label.name == name)) is not None:
                raise ConflictError(f"label {name!r} already exists; open it or pick another name.")
            label = Label(
                name=name,
                description=description,
                keywords=list(keywords),
                created_by=created_by,
                positive_examples=list(positive_examples),
                negative_examples=list(negative_examples),
            )
            s.add(label)
            s.flush()
        return _label_info(label)

    def get_label(self, name: str) -> LabelInfo:
        with self._read() as s:
            return _label_info(self._label(s, name))

    def list_labels(self) -> list[LabelInfo]:
        with self._read() as s:
            return [_label_info(lbl) for lbl in s.scalars(select(Label).order_by(Label.name))]

    def update_label(self, name: str, **fields: Any) -> LabelInfo:
        allowed = {"description", "keywords", "positive_examples", "negative_examples"}
        bad = set(fields) - allowed
        if bad:
            raise ValidationFailed(f"cannot change {sorted(bad)} of a label; changeable: {sorted(allowed)}.")
        with self.atomic() as s:
            label = self._label(s, name)
            for key, value in fields.items():
                setattr(label, key, list(value) if key != "description" else value)
        return _label_info(label)

    def recommender_state(self, name: str) -> dict[str, Any]:
        with self._read() as s:
            return dict(self._label(s, name).recommender_state or {})

    def save_recommender_state(self, name: str, state: dict[str, Any]) -> None:
        with self.atomic() as s:
            self._label(s, name).recommender_state = state

    @staticmethod
    def _label(s: Session, name: str) -> Label:
        return _by_name(s, Label, name, f"no label named {name!r}; create it first (POST /api/labels).")

    # -- annotations ---------------------------------------------------------

    def annotate(
        self,
        label: str,
        shot_id: str,
        annotator: str,
        value: bool | None,
        *,
        expected_version: int | None = None,
        source: str = "",
        actor: str | None = None,
    ) -> AnnotationRow:
        """Set (``True``/``False``) or withdraw (``None``) one annotator's annotation.

        ``actor`` is who makes the change when it is not the annotator (an admin undoing it); the
        event log records both.

        ``expected_version`` is the version the caller last saw (0: none yet);
        when given and stale, :class:`ConflictError` is raised unless the
        stored value already equals ``value``. Without it the write applies to
        whatever is current, still atomically with its event.
        """
        if not shot_id:
            raise ValidationFailed("shot_id is empty; pass the id of a shot (video_id:start_frame).")
        try:
            with self.atomic() as s:
                lbl = self._label(s, label)
                row = s.scalar(
                    select(Annotation).where(
                        Annotation.label_id == lbl.id,
                        Annotation.shot_id == shot_id,
                        Annotation.annotator == annotator,
                    )
                )
                current_version = row.version if row is not None else 0
                current_value = row.value if row is not None else None
                if current_value == value and (row is not None or value is None):
                    # Same value again: nothing changes, whatever version the caller saw.
                    if row is None:
                        return AnnotationRow(label, shot_id, annotator, None, source, 0, utcnow())
                    return _annotation_row(label, row)
                if expected_version is not None and expected_version != current_version:
                    raise ConflictError(
                        f"annotation of {shot_id!r} for {label!r} by {annotator!r} changed since you read it "
                        f"(you saw version {expected_version}, it is now version {current_version} with value "
                        f"{current_value}); reload it and apply your change again."
                    )
                now = utcnow()
                if row is None:
                    row = Annotation(
                        label_id=lbl.id,
                        shot_id=shot_id,
                        annotator=annotator,
                        value=value,
                        source=source,
                        version=1,
                        updated_at=now,
                    )
                    s.add(row)
                    s.flush()
                else:
                    # Conditional on the version read: a concurrent writer makes this match nothing.
                    result = s.execute(
                        update(Annotation)
                        .where(Annotation.id == row.id, Annotation.version == current_version)
                        .values(value=value, source=source, version=current_version + 1, updated_at=now)
                        .execution_options(synchronize_session=False)
                    )
                    if result.rowcount != 1:  # type: ignore[attr-defined]
                        raise ConflictError(
                            f"annotation of {shot_id!r} for {label!r} was changed by a concurrent request; "
                            "reload it and apply your change again."
                        )
                    s.expire(row)
                self._append_event(
                    s,
                    AnnotationEvent(
                        label_id=lbl.id,
                        shot_id=shot_id,
                        annotator=annotator,
                        actor=actor or annotator,
                        old_value=current_value,
                        new_value=value,
                        source=source,
                        version=current_version + 1,
                        at=now,
                    ),
                )
                s.flush()
                return _annotation_row(label, row)
        except IntegrityError:
            # A concurrent request created the row first; if it wrote the same value, this is a repeat.
            current = self.get_annotation(label, shot_id, annotator)
            if current is not None and current.value == value:
                return current
            raise ConflictError(
                f"annotation of {shot_id!r} for {label!r} by {annotator!r} was created by a concurrent "
                "request; reload it and apply your change again."
            ) from None

    def _append_event(self, s: Session, ev: AnnotationEvent) -> None:
        s.add(ev)

    def annotations(
        self, label: str, *, annotator: str | None = None, value: bool | None = None
    ) -> list[AnnotationRow]:
        """Current annotations of a label (withdrawn ones left out), oldest first."""
        with self._read() as s:
            lbl = self._label(s, label)
            q = select(Annotation).where(Annotation.label_id == lbl.id, Annotation.value.is_not(None))
            if annotator is not None:
                q = q.where(Annotation.annotator == annotator)
            if value is not None:
                q = q.where(Annotation.value == value)
            rows = s.scalars(q.order_by(Annotation.updated_at, Annotation.id))
            return [_annotation_row(label, r) for r in rows]

    def get_annotation(self, label: str, shot_id: str, annotator: str) -> AnnotationRow | None:
        with self._read() as s:
            lbl = self._label(s, label)
            row = s.scalar(
                select(Annotation).where(
                    Annotation.label_id == lbl.id,
                    Annotation.shot_id == shot_id,
                    Annotation.annotator == annotator,
                )
            )
            return _annotation_row(label, row) if row else None

    def events(self, label: str, *, since_id: int = 0, limit: int | None = None) -> list[EventRow]:
        with self._read() as s:
            lbl = self._label(s, label)
            q = (
                select(AnnotationEvent)
                .where(AnnotationEvent.label_id == lbl.id, AnnotationEvent.id > since_id)
                .order_by(AnnotationEvent.id)
            )
            if limit is not None:
                q = q.limit(limit)
            return [_event_row(label, e) for e in s.scalars(q)]

    def last_event_id(self, label: str) -> int:
        with self._read() as s:
            lbl = self._label(s, label)
            found = s.scalar(select(func.max(AnnotationEvent.id)).where(AnnotationEvent.label_id == lbl.id))
            return int(found or 0)

    def consensus(self, label: str) -> dict[str, bool]:
        """One training value per shot: the annotators' majority, ties to the latest change."""
        votes: dict[str, list[AnnotationRow]] = {}
        for row in self.annotations(label):
            votes.setdefault(row.shot_id, []).append(row)
        result: dict[str, bool] = {}
        for shot, rows in votes.items():
            pos = sum(1 for r in rows if r.value)
            neg = len(rows) - pos
            if pos != neg:
                result[shot] = pos > neg
            else:
                result[shot] = bool(max(rows, key=lambda r: r.updated_at).value)
        return result

    def counts(self, label: str) -> tuple[int, int]:
        """(positives, negatives) of the consensus of a label."""
        values = self.consensus(label).values()
        pos = sum(1 for v in values if v)
        return pos, len(values) - pos

    # -- classifier versions ---------------------------------------------------

    def save_version(
        self,
        label: str,
        *,
        model: bytes,
        encoder: str,
        dim: int,
        n_pos: int,
        n_neg: int,
        model_quality: float,
        data_diversity: float,
        snapshot: list[list[Any]],
        snapshot_event_id: int,
        shots_table_version: int = 0,
        created_by: str = "",
        extra: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """Save a classifier as the label's next version number."""
        for _attempt in range(5):
            try:
                with self.atomic() as s:
                    lbl = self._label(s, label)
                    last = s.scalar(
                        select(func.max(ClassifierVersion.version)).where(ClassifierVersion.label_id == lbl.id)
                    )
                    row = ClassifierVersion(
                        label_id=lbl.id,
                        version=int(last or 0) + 1,
                        created_by=created_by,
                        snapshot_event_id=snapshot_event_id,
                        snapshot=snapshot,
                        n_pos=n_pos,
                        n_neg=n_neg,
                        model_quality=float(model_quality),
                        data_diversity=float(data_diversity),
                        model=model,
                        encoder=encoder,
                        dim=dim,
                        shots_table_version=shots_table_version,
                        extra=extra or {},
                    )
                    s.add(row)
                    s.flush()
                    return _version_info(label, row)
            except IntegrityError:
                continue  # two builds raced for the same number; take the next one
        raise ConflictError(f"could not allocate a version number for {label!r}; try the build again.")

    def versions(self, label: str) -> list[VersionInfo]:
        with self._read() as s:
            lbl = self._label(s, label)
            rows = s.scalars(
                select(ClassifierVersion)
                .where(ClassifierVersion.label_id == lbl.id)
                .order_by(ClassifierVersion.version)
            )
            return [_version_info(label, r) for r in rows]

    def get_version(self, label: str, version: int | None = None) -> VersionInfo:
        """A version of a label's classifier; ``None`` means the latest."""
        with self._read() as s:
            lbl = self._label(s, label)
            q = select(ClassifierVersion).where(ClassifierVersion.label_id == lbl.id)
            if version is None:
                q = q.order_by(ClassifierVersion.version.desc()).limit(1)
            else:
                q = q.where(ClassifierVersion.version == version)
            row = s.scalar(q)
            if row is None:
                what = "no classifier version yet" if version is None else f"no version {version}"
                raise NotFoundError(f"label {label!r} has {what}; build one first.")
            return _version_info(label, row)

    def mark_published(self, label: str, version: int) -> None:
        with self.atomic() as s:
            lbl = self._label(s, label)
            row = s.scalar(
                select(ClassifierVersion).where(
                    ClassifierVersion.label_id == lbl.id, ClassifierVersion.version == version
                )
            )
            if row is None:
                raise NotFoundError(f"label {label!r} has no version {version}; build one first.")
            row.published_at = utcnow()

    # -- jobs ------------------------------------------------------------------

    def save_job(self, job: dict[str, Any]) -> None:
        """Insert or update a job's state (keyed on its id); ``job`` is what the API shows."""
        with self.atomic() as s:
            row = s.get(JobRecord, job["id"])
            if row is None:
                row = JobRecord(
                    id=job["id"],
                    kind=job["kind"],
                    label=job["label"],
                    created_by=job.get("created_by", ""),
                    created_at=float(job["created_at"]),
                    state=job["state"],
                    data=job,
                )
                s.add(row)
            else:
                row.state, row.data = job["state"], job

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._read() as s:
            row = s.get(JobRecord, job_id)
            return dict(row.data) if row is not None else None

    def list_jobs(self, *, limit: int = 200) -> list[dict[str, Any]]:
        """The newest jobs first."""
        with self._read() as s:
            rows = s.scalars(select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit))
            return [dict(r.data) for r in rows]

    def table_counts(self) -> dict[str, int]:
        with self._read() as s:
            return {
                "users": s.scalar(select(func.count()).select_from(User)) or 0,
                "labels": s.scalar(select(func.count()).select_from(Label)) or 0,
                "annotations": s.scalar(
                    select(func.count()).select_from(Annotation).where(Annotation.value.is_not(None))
                )
                or 0,
                "annotation_events": s.scalar(select(func.count()).select_from(AnnotationEvent)) or 0,
                "classifier_versions": s.scalar(select(func.count()).select_from(ClassifierVersion)) or 0,
            }


# --------------------------------------------------------------------------- helpers


def _by_name(s: Session, model: type[Any], name: str, missing: str) -> Any:
    found = s.scalar(select(model).where(model.name == name))
    if found is None:
        raise NotFoundError(missing)
    return found


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


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str, what: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100 or any(c in name for c in "/\\\n\r\t"):
        raise ValidationFailed(f"{what} {name!r} is not allowed; use 1-100 characters without slashes or line breaks.")
    return name


def _make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _configure_sqlite(engine)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (SAArgumentError, ImportError, ValueError) as exc:
        raise ConfigError(
            f"VA_DATABASE_URL={url!r} is not a usable database URL ({exc}); "
            "use sqlite:///path/to/file.db or postgresql+psycopg://user:pass@host/db."
        ) from None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin event below issues BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("va_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def _unreachable(url: str, exc: Exception) -> str:
    shown = url.split("@")[-1] if "@" in url else url
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return f"VA_DATABASE_URL ({shown}) is not reachable: {reason}; start the database or fix VA_DATABASE_URL."


def _user_info(u: User) -> UserInfo:
    return UserInfo(name=u.name, role=u.role, created_at=u.created_at)


def _label_info(lbl: Label) -> LabelInfo:
    return LabelInfo(
        id=lbl.id,
        name=lbl.name,
        description=lbl.description or "",
        keywords=list(lbl.keywords or []),
        positive_examples=list(lbl.positive_examples or []),
        negative_examples=list(lbl.negative_examples or []),
        created_by=lbl.created_by or "",
        created_at=lbl.created_at,
    )


def _annotation_row(label: str, r: Annotation) -> AnnotationRow:
    return AnnotationRow(label, r.shot_id, r.annotator, r.value, r.source or "", r.version, r.updated_at)


def _event_row(label: str, e: AnnotationEvent) -> EventRow:
    return EventRow(
        e.id, label, e.shot_id, e.annotator, e.old_value, e.new_value, e.source, e.version, e.at, e.actor or e.annotator
    )


def _version_info(label: str, r: ClassifierVersion) -> VersionInfo:
    return VersionInfo(
        label=label,
        version=r.version,
        created_at=r.created_at,
        created_by=r.created_by or "",
        snapshot_event_id=r.snapshot_event_id,
        snapshot=list(r.snapshot or []),
        n_pos=r.n_pos,
        n_neg=r.n_neg,
        model_quality=r.model_quality,
        data_diversity=r.data_diversity,
        model=r.model,
        encoder=r.encoder,
        dim=r.dim,
        shots_table_version=r.shots_table_version,
        extra=dict(r.extra or {}),
        published_at=r.published_at,
    )
