"""SQL used by the collectors: batched COPY through staging, offsets, rejections, status.

Everything a batch writes (rows, rejections, offsets, counters) commits in one transaction,
which is what makes ingestion exactly-once across crashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import psycopg
from psycopg.types.json import set_json_dumps

from diffwatch.model.log_record import ROW_COLUMNS
from diffwatch.model.log_values import printable

STAGE = "_stage_generations"
# Column types for binary COPY, in ROW_COLUMNS order.
_PG_TYPES = {
    "request_id": "text",
    "ts": "timestamptz",
    "model": "text",
    "model_version": "text",
    "prompt": "text",
    "status": "text",
    "negative_prompt": "text",
    "sampler": "text",
    "steps": "int4",
    "cfg_scale": "float8",
    "seed": "int8",
    "width": "int4",
    "height": "int4",
    "batch_size": "int4",
    "queue_ms": "float8",
    "inference_ms": "float8",
    "total_ms": "float8",
    "gpu_type": "text",
    "host": "text",
    "gpu_index": "int4",
    "image_uri": "text",
    "error": "text",
    "user_id": "text",
    "deployment": "text",
    "extra": "jsonb",
    "source": "text",
    "source_offset": "int8",
}
COPY_COLUMNS: tuple[str, ...] = (*ROW_COLUMNS, "source", "source_offset")
COPY_TYPES = [_PG_TYPES[c] for c in COPY_COLUMNS]
_COLS = ", ".join(COPY_COLUMNS)


@dataclass(frozen=True, slots=True)
class OffsetUpdate:
    """New consumed position of one log file, keyed by content fingerprint."""

    fingerprint: str
    path: str
    device: int
    inode: int
    offset: int
    line_no: int


@dataclass(frozen=True, slots=True)
class RejectionRow:
    """A refused line as stored in ``rejected_records``."""

    source: str
    source_key: str
    source_offset: int
    line_no: int
    raw: str
    raw_bytes: int
    raw_truncated: bool
    reason: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one committed batch did (counts of rows)."""

    inserted: int
    duplicates: int
    rejected: int
    conflicted: bool = False  # a duplicate forced the slower staging path


def prepare_connection(conn: psycopg.Connection) -> None:
    """Set up a collector connection: fast JSON dumps and this session's staging table.

    The staging table is temporary (no WAL, no indexes) and emptied at every commit.
    """
    set_json_dumps(msgspec.json.encode, conn)
    # Batches commit without waiting for the WAL flush. A batch lost to a server crash
    # loses its offset with it (same transaction), so it is simply read again; and each
    # pass ends with a synchronous commit (``sync_point``) that makes all of it durable.
    conn.execute("SET synchronous_commit = off")
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} "
        "(LIKE generations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )


def load_offsets(
    conn: psycopg.Connection, fingerprints: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """Stored (offset bytes, line number) for each known fingerprint."""
    rows = conn.execute(
        'SELECT fingerprint, "offset", line_no FROM log_offsets WHERE fingerprint = ANY(%s)',
        (list(fingerprints),),
    ).fetchall()
    return {fp: (off, ln) for fp, off, ln in rows}


class Batch(Protocol):
    """What ``write_batch`` needs: rows to stream (parsed lazily), then the rest."""

    rows: list[tuple[Any, ...]]  # every row iterated so far
    rejections: list[RejectionRow]

    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...
    def drain(self) -> None: ...
    def refuse(self, index: int, reason: str) -> None:
        """Move ``rows[index]`` to ``rejections`` with ``reason``."""
        ...

    @property
    def offset(self) -> OffsetUpdate: ...


class Abandon(Exception):
    """Raised by a batch's ``check`` to roll the batch back (its file changed under us)."""


def _copy_rows(cur: psycopg.Cursor, table: str, rows: Iterable[Sequence[Any]]) -> None:
    # Rows may be parsed lazily as this loop pulls them: the server indexes what it has
    # received while Python parses the next lines.
    with cur.copy(f"COPY {table} ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row(row)


# What one row's values can cause while it is written: on the client, while it is dumped
# for COPY (text that is not UTF-8, JSON too deep to encode), or on the server (a value out
# of range or not storable, a check that fails, an index entry too large, jsonb nested
# deeper than the server's stack). Anything else (the connection, the schema) concerns
# every row, and is raised.
ROW_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    psycopg.errors.CheckViolation,
    psycopg.errors.NotNullViolation,
    psycopg.errors.ProgramLimitExceeded,
    psycopg.errors.StatementTooComplex,
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
)
_INSERT_STAGED = (
    f"INSERT INTO generations ({_COLS}) SELECT {_COLS} FROM {STAGE} "
    "ON CONFLICT (request_id) DO NOTHING"
)


def refusal(exc: BaseException) -> str:
    """The rejection reason for a row that the database (or its driver) refused."""
    diag = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
    detail = diag or f"{type(exc).__name__}: {exc}"
    return printable(f"the database refused this record: {detail}"[:1000])


def insert_rows(cur: psycopg.Cursor, batch: Batch, direct: bool) -> tuple[int, bool, int]:
    """Insert the batch's rows skipping known request_ids.

    Returns (rows inserted, hit a duplicate, rows refused). ``direct``: COPY straight into
    ``generations`` under a savepoint, which costs what a raw COPY costs. A duplicate
    request_id aborts that COPY; the batch then goes again through the staging table and
    ``ON CONFLICT DO NOTHING``. So does a row that the database refuses; the refused rows
    are found by halving (``_insert_staged``) and moved to the batch's rejections.
    """
    conflicted = True
    if direct:
        try:
            with cur.connection.transaction():
                _copy_rows(cur, "generations", batch)
            return len(batch.rows), False, 0
        except psycopg.errors.UniqueViolation:
            pass
        except ROW_ERRORS:
            conflicted = False
    batch.drain()
    if not batch.rows:
        return 0, conflicted, 0
    refused: list[tuple[int, str]] = []
    inserted = _insert_staged(cur, batch.rows, 0, len(batch.rows), refused)
    for i, reason in refused:
        batch.refuse(i, reason)
    return inserted, conflicted, len(refused)


def _insert_staged(
    cur: psycopg.Cursor,
    rows: list[tuple[Any, ...]],
    lo: int,
    hi: int,
    refused: list[tuple[int, str]],
) -> int:
    """Insert ``rows[lo:hi]`` through the staging table; returns the rows inserted.

    A row error rolls the attempt back (savepoint); the range is then tried in halves, so
    that k bad rows among n cost about 2k·log2(n) attempts and every good row is kept.
    ``refused`` gets (index, reason) of each row that fails on its own.
    """
    try:
        with cur.connection.transaction():
            _copy_rows(cur, STAGE, rows[lo:hi])
            cur.execute(_INSERT_STAGED)
            inserted = cur.rowcount
            if hi - lo < len(rows):  # halving: the next range needs an empty staging table
                cur.execute(f"DELETE FROM {STAGE}")
        return inserted
    except ROW_ERRORS as exc:
        if hi - lo == 1:
            refused.append((lo, refusal(exc)))
            return 0
    mid = (lo + hi) // 2
    return _insert_staged(cur, rows, lo, mid, refused) + _insert_staged(cur, rows, mid, hi, refused)


def insert_rejections(cur: psycopg.Cursor, rejections: Sequence[RejectionRow]) -> None:
    """Store refused records once each (a retried batch's are already there)."""
    if not rejections:
        return
    cur.executemany(
        "INSERT INTO rejected_records (source, source_key, source_offset, line_no,"
        " raw, raw_bytes, raw_truncated, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (source_key, source_offset) DO NOTHING",
        [
            (r.source, r.source_key, r.source_offset, r.line_no, r.raw, r.raw_bytes,
             r.raw_truncated, r.reason)
            for r in rejections
        ],
    )  # fmt: skip


def write_batch(
    conn: psycopg.Connection,
    batch: Batch,
    collector: str,
    host: str,
    direct: bool = True,
    check: Callable[[], None] | None = None,
) -> BatchResult | None:
    """Store a batch's rows (deduplicated on request_id), rejections and offset at once.

    Returns None, having written nothing, when ``check`` raises ``Abandon`` before commit.
    """
    try:
        with conn.transaction(), conn.cursor() as cur:
            inserted, conflicted, refused = insert_rows(cur, batch, direct)
            if check is not None:
                check()
            insert_rejections(cur, batch.rejections)
            o = batch.offset
            cur.execute(
                'INSERT INTO log_offsets (fingerprint, path, device, inode, "offset", line_no)'
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (fingerprint) DO UPDATE SET"
                " path = EXCLUDED.path, device = EXCLUDED.device, inode = EXCLUDED.inode,"
                # Two collectors on one file must never move an offset backwards.
                ' "offset" = GREATEST(log_offsets."offset", EXCLUDED."offset"),'
                " line_no = GREATEST(log_offsets.line_no, EXCLUDED.line_no),"
                " updated_at = now()",
                (o.fingerprint, o.path, o.device, o.inode, o.offset, o.line_no),
            )
            result = BatchResult(
                inserted, len(batch.rows) - inserted - refused, len(batch.rejections), conflicted
            )
            bump_status(
                cur,
                collector,
                "logs",
                host,
                result.inserted,
                result.duplicates,
                result.rejected,
            )
    except Abandon:
        return None
    return result


def sync_point(conn: psycopg.Connection, collector: str, kind: str, host: str) -> None:
    """Make every earlier asynchronous commit of this session durable (a flushed commit)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = on")
        bump_status(cur, collector, kind, host)


def bump_status(
    cur: psycopg.Cursor,
    name: str,
    kind: str,
    host: str,
    ingested: int = 0,
    duplicates: int = 0,
    rejected: int = 0,
    failures: int = 0,
    error: str | None = None,
) -> None:
    """Add to a collector's running totals (and record its last error, if any)."""
    cur.execute(
        "INSERT INTO collector_status AS s (name, kind, host, ingested, duplicates, rejected,"
        " failures, last_error, last_error_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
        " CASE WHEN %s::text IS NULL THEN NULL ELSE now() END)"
        " ON CONFLICT (name) DO UPDATE SET ingested = s.ingested + EXCLUDED.ingested,"
        " duplicates = s.duplicates + EXCLUDED.duplicates,"
        " rejected = s.rejected + EXCLUDED.rejected, failures = s.failures + EXCLUDED.failures,"
        " last_error = COALESCE(EXCLUDED.last_error, s.last_error),"
        " last_error_at = COALESCE(EXCLUDED.last_error_at, s.last_error_at),"
        " host = EXCLUDED.host, updated_at = now()",
        (name, kind, host, ingested, duplicates, rejected, failures, error, error),
    )
