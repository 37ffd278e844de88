"""Alembic environment: the URL comes from the Config that ``diffwatch.db.migrate`` builds."""

from __future__ import annotations

from collections.abc import Callable

from alembic import context
from sqlalchemy import Connection, Index, pool

from diffwatch.db.engine import make_engine
from diffwatch.db.models import Base
from diffwatch.db.queries.embeddings import TABLES as EMBEDDING_TABLES

config = context.config
target_metadata = Base.metadata


def _skip_missing_extensions(connection: Connection) -> Callable[..., bool]:
    """An include_object hook: model indexes that need an extension the server lacks
    (``info["requires_extension"]``, see migration 0004) are not compared."""
    installed: set[str] = set()

    def include(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
        if type_ == "index" and name == "ix_generations_prompt_trgm":
            return False  # optional, created on request (migration 0006)
        if type_ == "table" and name in EMBEDDING_TABLES:
            return False  # need pgvector: created where it exists (migration 0017)
        need = obj.info.get("requires_extension") if isinstance(obj, Index) else None
        if need is None or reflected:
            return True
        # Read lazily: only comparisons call this, inside Alembic's own transaction (a
        # query before configure() would open a transaction that Alembic never commits).
        if not installed:
            installed.update(
                r[0] for r in connection.exec_driver_sql("SELECT extname FROM pg_extension")
            )
        return need in installed

    return include


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(
            connection=connectable,
            target_metadata=target_metadata,
            include_object=_skip_missing_extensions(connectable),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=_skip_missing_extensions(connection),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("diffwatch migrations run online only: use `diffwatch db upgrade`")
run_migrations_online()
