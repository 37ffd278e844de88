"""SQL of the HTTP ingest endpoint: one request's batch, committed whole, exactly once.

The rows go the same way as the log collector's (``ingest``: COPY, then staging and
``ON CONFLICT (request_id) DO NOTHING`` on a duplicate, halving to find rows the database
refuses); there is no file offset, and the commit is synchronous, because the client is
told its records are stored only once they are.
"""

from __future__ import annotations

import psycopg

from diffwatch.db.queries import ingest
from diffwatch.db.queries.ingest import BatchResult, RejectionRow


def prepare_connection(conn: psycopg.Connection, statement_timeout_ms: int) -> None:
    """Set up an ingest connection: the collector's staging table, durable commits, and a
    statement timeout (ms) so that a slow database gives an answer (429), not a hang."""
    # First: creating the staging table waits on a lock of generations, and may be slow too.
    conn.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
    ingest.prepare_connection(conn)
    conn.execute("SET synchronous_commit = on")  # a 2xx promises the rows are durable


def write_records(
    conn: psycopg.Connection, batch: ingest.Batch, collector: str, host: str
) -> BatchResult:
    """Store a batch's rows (deduplicated on request_id) and rejections in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        inserted, conflicted, refused = ingest.insert_rows(cur, batch, direct=True)
        rejections: list[RejectionRow] = batch.rejections
        ingest.insert_rejections(cur, rejections)
        result = BatchResult(
            inserted, len(batch.rows) - inserted - refused, len(rejections), conflicted
        )
        ingest.bump_status(
            cur, collector, "http", host, result.inserted, result.duplicates, result.rejected
        )
    return result


def ping(conn: psycopg.Connection) -> None:
    """Raise unless the database answers a query."""
    conn.execute("SELECT 1").fetchone()


def schema_revision(conn: psycopg.Connection) -> str | None:
    """The migration revision the database is at (None: not migrated at all)."""
    exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version LIMIT 1").fetchone()
    return row[0] if row else None
