"""SQL used by the collectors: batched COPY through staging, offsets, rejections, status.

Everything a batch writes (rows, rejections, offsets, counters) commits in one transaction,
which is what makes ingestion exactly-once across crashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from collectors.logs.parse import ROW_COLUMNS

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


def ensure_stage(conn: psycopg.Connection) -> None:
    """Create this session's staging table (temporary, emptied at every commit)."""
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} "
        f"(LIKE generations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
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


def write_batch(
    conn: psycopg.Connection,
    rows: Iterable[Sequence[Any]],
    rejections: Sequence[RejectionRow],
    offsets: Sequence[OffsetUpdate],
    collector: str,
    host: str,
) -> BatchResult:
    """Store rows (deduplicated on request_id), rejections and offsets in one transaction."""
    with conn.transaction():
        ensure_stage(conn)
        staged = 0
        with conn.cursor() as cur:
            with cur.copy(f"COPY {STAGE} ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
                    staged += 1
            inserted = 0
            if staged:
                cur.execute(
                    f"INSERT INTO generations ({_COLS}) SELECT {_COLS} FROM {STAGE} "
                    "ON CONFLICT (request_id) DO NOTHING"
                )
                inserted = cur.rowcount
            rejected = 0
            if rejections:
                cur.executemany(
                    "INSERT INTO rejected_records (source, source_key, source_offset, line_no,"
                    " raw, raw_bytes, raw_truncated, reason) VALUES"
                    " (%s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (source_key, source_offset) DO NOTHING",
                    [
                        (
                            r.source,
                            r.source_key,
                            r.source_offset,
                            r.line_no,
                            r.raw,
                            r.raw_bytes,
                            r.raw_truncated,
                            r.reason,
                        )
                        for r in rejections
                    ],
                )
                rejected = len(rejections)
            if offsets:
                cur.executemany(
                    'INSERT INTO log_offsets (fingerprint, path, device, inode, "offset", line_no)'
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (fingerprint) DO UPDATE SET"
                    " path = EXCLUDED.path, device = EXCLUDED.device, inode = EXCLUDED.inode,"
                    # Two collectors on one file must never move an offset backwards.
                    ' "offset" = GREATEST(log_offsets."offset", EXCLUDED."offset"),'
                    " line_no = GREATEST(log_offsets.line_no, EXCLUDED.line_no),"
                    " updated_at = now()",
                    [
                        (o.fingerprint, o.path, o.device, o.inode, o.offset, o.line_no)
                        for o in offsets
                    ],
                )
            result = BatchResult(inserted, staged - inserted, rejected)
            bump_status(
                cur, collector, "logs", host, result.inserted, result.duplicates, result.rejected
            )
    return result


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


def jsonb(value: dict[str, Any]) -> Jsonb:
    """Wrap a dict for a jsonb column."""
    return Jsonb(value)
