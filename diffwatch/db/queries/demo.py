"""SQL used by ``diffwatch demo``: how much history is stored already, and the totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg


def stored_minutes(
    conn: psycopg.Connection, source: str, start: datetime, end: datetime
) -> set[int]:
    """Minutes (since the epoch) of [start, end) already simulated, known by their GPU samples.

    The demo stores a minute's samples (``gpu_samples.source = source``) only after that
    minute's log lines are written, and always all GPUs of a minute in one transaction.
    """
    rows = conn.execute(
        "SELECT DISTINCT floor(extract(epoch FROM ts) / 60)::bigint FROM gpu_samples "
        "WHERE source = %s AND ts >= %s AND ts < %s",
        (source, start, end),
    )
    return {int(r[0]) for r in rows}


@dataclass
class Totals:
    """What the database holds after the demo (row counts)."""

    generations: int = 0
    errors: int = 0
    by_version: dict[str, int] = field(default_factory=dict)  # "v1.4 (stable)": rows
    rejected_records: int = 0
    rejection_examples: list[str] = field(default_factory=list)  # one reason of each kind
    gpu_samples: int = 0
    gpus: int = 0


def totals(conn: psycopg.Connection, model: str, source: str) -> Totals:
    """Row counts of the demo model, rejections and simulated GPU samples."""
    t = Totals()
    for version, deployment, n, errors in conn.execute(
        "SELECT model_version, deployment, count(*), count(*) FILTER (WHERE status = 'error') "
        "FROM generations WHERE model = %s GROUP BY 1, 2 ORDER BY 3 DESC",
        (model,),
    ):
        t.by_version[f"{version} ({deployment})"] = n
        t.generations += n
        t.errors += errors
    row = conn.execute("SELECT count(*) FROM rejected_records").fetchone()
    t.rejected_records = row[0] if row else 0
    # Reasons quote the bad value; their first words tell the kinds apart.
    t.rejection_examples = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT ON (left(reason, 12)) reason FROM rejected_records "
            "ORDER BY left(reason, 12), id LIMIT 5"
        )
    ]
    t.gpu_samples, t.gpus = conn.execute(
        "SELECT count(*), count(DISTINCT (host, gpu_index)) FROM gpu_samples WHERE source = %s",
        (source,),
    ).fetchone() or (0, 0)
    return t


def clip_count(conn: psycopg.Connection, start: datetime, end: datetime, deployment: str) -> int:
    """CLIP scores of one deployment's generations in [start, end) (any CLIP version)."""
    return conn.execute(
        "SELECT count(*) FROM scorer_results s JOIN generations g ON g.id = s.generation_id"
        " WHERE s.scorer = 'clip' AND s.value IS NOT NULL AND g.deployment = %s"
        " AND g.ts >= %s AND g.ts < %s",
        (deployment, start, end),
    ).fetchone()[0]
