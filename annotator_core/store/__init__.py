"""The annotation store: one SQL database, one part per aggregate.

- :mod:`~annotator_core.store.database` — the shared engine, migrations and transactions
- :mod:`~annotator_core.store.users` — users, API tokens, passwords
- :mod:`~annotator_core.store.labels` — labels and their recommender state
- :mod:`~annotator_core.store.annotations` — annotations, their event log, consensus
- :mod:`~annotator_core.store.versions` — classifier versions

:class:`AnnotationStore` opens the database once and hands every part the same
engine, so a service holds one connection pool however many parts it uses.
Tables other packages own (the annotation service's ``jobs``) use ``store.db``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from annotator_core.db import Annotation, AnnotationEvent, ClassifierVersion, Label, User
from annotator_core.store.annotations import AnnotationLog, AnnotationRow, BulkOutcome, EventRow
from annotator_core.store.database import MIGRATIONS, Database
from annotator_core.store.labels import LabelInfo, LabelStore
from annotator_core.store.users import ROLES, UserInfo, UserStore
from annotator_core.store.versions import VersionInfo, VersionStore

__all__ = [
    "MIGRATIONS",
    "ROLES",
    "AnnotationLog",
    "AnnotationRow",
    "AnnotationStore",
    "BulkOutcome",
    "Database",
    "EventRow",
    "LabelInfo",
    "LabelStore",
    "UserInfo",
    "UserStore",
    "VersionInfo",
    "VersionStore",
]


class AnnotationStore:
    """The database, migrated on open, and its parts: ``users``, ``labels``, ``annotations``, ``versions``."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.db = Database(url)
        if migrate:
            self.db.migrate()
        self.users = UserStore(self.db)
        self.labels = LabelStore(self.db)
        self.annotations = AnnotationLog(self.db)
        self.versions = VersionStore(self.db)

    @classmethod
    def from_settings(cls, settings: Any, *, migrate: bool = True) -> AnnotationStore:
        if not settings.database_url:
            settings.ensure_data_dir()
        return cls(settings.resolved_database_url, migrate=migrate)

    def table_counts(self) -> dict[str, int]:
        """Rows per table, for `va status` (withdrawn annotations left out)."""
        with self.db.read() as s:
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
