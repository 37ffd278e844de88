"""The demo's GPU sample writes, through the GPU collector's own writer
(``diffwatch.db.queries.gpu``).

The demo's read queries (stored minutes, totals) live in ``diffwatch.db.queries.demo``.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from diffwatch.db.queries.gpu import insert_gpu_samples
from diffwatch.model.gpu import GpuReading


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
