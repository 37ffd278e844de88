"""The demo's database side: what history is stored already, GPU sample writes, and totals.

GPU samples go through the GPU collector's own writer (``db.queries.gpu``). The few read
queries here are the demo's own; they belong in ``db/queries`` (see the note in docs/demo.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from collectors.gpu.model import GpuReading
from db.queries.gpu import insert_gpu_samples
from diffwatch.demo.fleet import SOURCE
from diffwatch.demo.traffic import MODEL


def stored_minutes(conn: psycopg.Connection, start: datetime, end: datetime) -> set[int]:
    """Minutes (since the epoch) of [start, end) already simulated, known by their GPU samples.

    The service stores a minute's samples only after that minute's log lines are written,
    and always all GPUs of a minute in one transaction.
    """
    rows = conn.execute(
        "SELECT DISTINCT floor(extract(epoch FROM ts) / 60)::bigint FROM gpu_samples "
        "WHERE source = %s AND ts >= %s AND ts < %s",
        (SOURCE, start, end),
    )
    return {int(r[0]) for r in rows}


class GpuWriter:
    """Buffers simulated readings and stores them in batches (one COPY each)."""

    def __init__(self, conn: psycopg.Connection, batch: int = 5000) -> None:
        self.conn = conn
        self.batch = batch
        self.stored = 0
        self._buf: list[GpuReading] = []

    def add(self, readings: Iterable[GpuReading]) -> None:
        """Queue one minute's readings; store the queue once it is long enough."""
        self._buf.extend(readings)
        if len(self._buf) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Store everything queued."""
        self.stored += insert_gpu_samples(self.conn, self._buf)
        self._buf = []


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


def totals(conn: psycopg.Connection) -> Totals:
    """Row counts of the demo model, rejections and simulated GPU samples."""
    t = Totals()
    for version, deployment, n, errors in conn.execute(
        "SELECT model_version, deployment, count(*), count(*) FILTER (WHERE status = 'error') "
        "FROM generations WHERE model = %s GROUP BY 1, 2 ORDER BY 3 DESC",
        (MODEL,),
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
        (SOURCE,),
    ).fetchone() or (0, 0)
    return t
