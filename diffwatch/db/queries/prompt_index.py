"""The optional trigram index for prompt substring search (migration 0006 explains why it
is opt-in: it slows every insert into ``generations`` about 6.6x)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

INDEX = "ix_generations_prompt_trgm"


@dataclass(frozen=True)
class PromptIndexState:
    """Whether the server ships pg_trgm, whether the index exists, and its size (bytes)."""

    available: bool
    present: bool
    size_bytes: int | None


class PromptIndexUnavailable(RuntimeError):
    """The server has no pg_trgm extension to build the index with."""


def state(conn: psycopg.Connection) -> PromptIndexState:
    """Where the prompt index stands on this database."""
    available = bool(
        conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").fetchone()
    )
    row = conn.execute(
        "SELECT pg_relation_size(c.oid) FROM pg_class c WHERE c.relname = %s AND c.relkind = 'i'",
        (INDEX,),
    ).fetchone()
    return PromptIndexState(available, row is not None, row[0] if row else None)


def create(conn: psycopg.Connection) -> None:
    """Build the index without blocking ingest (CONCURRENTLY); ``conn`` must be in autocommit."""
    if not state(conn).available:
        raise PromptIndexUnavailable(
            "this PostgreSQL server does not ship the pg_trgm extension (the embedded server "
            "does not); install PostgreSQL's contrib package, or search without the index"
        )
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    conn.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON generations"
        " USING gin (prompt gin_trgm_ops)"
    )


def drop(conn: psycopg.Connection) -> None:
    """Drop the index without blocking ingest; ``conn`` must be in autocommit."""
    conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
