"""Alembic environment: runs on the connection the store hands over (see ``Database.migrate``).

One chain for the whole database. Its ``jobs`` table (0003) belongs to the annotation service
(``serving/annotation/jobs.py``), which this package must not import, so autogenerate skips it.
"""

from alembic import context
from sqlalchemy import engine_from_config, pool

from annotator_core.db import Base

config = context.config
target_metadata = Base.metadata
SERVICE_TABLES = frozenset({"jobs"})


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Leave the service's own tables out of autogenerate (it would otherwise drop them)."""
    return not (type_ == "table" and name in SERVICE_TABLES)


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, include_name=include_name
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(
            connection=conn, target_metadata=target_metadata, render_as_batch=True, include_name=include_name
        )
        with context.begin_transaction():
            context.run_migrations()


run()
