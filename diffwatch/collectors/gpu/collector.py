"""The GPU collector loop: sample a source on a fixed interval, buffer, write to Postgres.

Sampling never waits for the database: readings queue in a bounded buffer while Postgres
is away, writes are retried with backoff between samples, and the buffer is flushed (oldest
first) when Postgres is back.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from diffwatch.collectors.gpu.buffer import ReadingBuffer
from diffwatch.db.queries import gpu as gpu_queries
from diffwatch.errors import first_line
from diffwatch.model.gpu import GpuReading, SampleFailed
from diffwatch.outage import DB_DOWN_ERRORS

log = logging.getLogger(__name__)


class Source(Protocol):
    """Where readings come from: NVML on this host or a dcgm-exporter URL."""

    name: str

    def sample(self) -> list[GpuReading]:
        """One sample of every GPU; raises SampleFailed when nothing usable came back."""
        ...

    def close(self) -> None:
        """Release what the source holds."""
        ...


@dataclass
class GpuSummary:
    """Totals of one collector run (counts of samples and readings, seconds)."""

    source: str
    samples: int = 0
    failed: int = 0
    stored: int = 0
    dropped: int = 0
    unsaved: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready totals."""
        return {
            "source": self.source,
            "scrapes": self.samples,
            "failed_scrapes": self.failed,
            "samples_stored": self.stored,
            "samples_dropped": self.dropped,
            "samples_unsaved": self.unsaved,
            "elapsed_s": round(self.elapsed_s, 3),
        }


class GpuCollector:
    """Samples ``source`` into ``gpu_samples``, counting successes and failures in
    ``collector_status`` under ``name`` (default ``gpu@HOST``)."""

    def __init__(
        self,
        conninfo: str,
        source: Source,
        *,
        name: str | None = None,
        buffer_rows: int = 50_000,
        write_rows: int = 5_000,
        max_backoff_s: float = 30.0,
        connect_timeout_s: int = 5,
    ) -> None:
        self.conninfo = conninfo
        self.source = source
        self.host = socket.gethostname()
        self.name = name or f"gpu@{self.host}"
        self.buffer = ReadingBuffer(buffer_rows)
        self.write_rows = write_rows
        self.max_backoff_s = max_backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.summary = GpuSummary(source=source.name)
        self._conn: psycopg.Connection | None = None
        self._pending_failures = 0
        self._last_error = ""
        self._db_down = False
        self._dropped_at_outage = 0

    # -- database -----------------------------------------------------------------
    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=self.connect_timeout_s
            )
        return self._conn

    def close(self) -> None:
        """Close the database connection (the source is closed by whoever opened it)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def pending(self) -> bool:
        """True while readings or failure counts wait to be written."""
        return bool(len(self.buffer) or self._pending_failures)

    def flush(self) -> None:
        """Write pending failure counts, then buffered readings oldest first, in batches.

        Each batch commits with its ``ingested`` count; a batch is forgotten only once
        committed, so an outage mid-flush loses nothing.
        """
        conn = self._connection()
        if self._pending_failures:
            gpu_queries.record_gpu_failures(
                conn, self.name, self.host, self._pending_failures, self._last_error
            )
            self._pending_failures = 0
        while len(self.buffer):
            stored = gpu_queries.insert_gpu_samples(
                conn, self.buffer.head(self.write_rows), self.name, self.host
            )
            self.buffer.pop_head(stored)
            self.summary.stored += stored

    def _went_down(self, exc: BaseException | None) -> None:
        self.close()
        if self._db_down:
            return
        self._db_down = True
        self._dropped_at_outage = self.buffer.dropped
        log.warning(
            "database unavailable (%s): keeping GPU readings in memory (up to %d) and "
            "retrying with backoff up to %.0f s",
            first_line(exc),
            self.buffer.max_rows,
            self.max_backoff_s,
        )

    def _came_back(self) -> None:
        if not self._db_down:
            return
        self._db_down = False
        lost = self.buffer.dropped - self._dropped_at_outage
        log.warning(
            "database reachable again: buffered GPU readings stored%s",
            f" ({lost} oldest readings were dropped while it was away)" if lost else "",
        )

    def flush_until(self, deadline: float, stop: threading.Event | None = None) -> bool:
        """Flush, retrying with backoff while the database is down, until ``deadline``
        (time.monotonic) or ``stop``. Returns True when nothing is left to write."""
        backoff = wait_exponential(multiplier=0.2, max=self.max_backoff_s)

        def wait(rs: RetryCallState) -> float:
            return max(0.0, min(backoff(rs), deadline - time.monotonic()))

        def give_up(_rs: RetryCallState) -> bool:
            return time.monotonic() >= deadline or (stop is not None and stop.is_set())

        def before_sleep(rs: RetryCallState) -> None:
            self._went_down(rs.outcome.exception() if rs.outcome else None)

        retrying = Retrying(
            retry=retry_if_exception_type(DB_DOWN_ERRORS),
            wait=wait,
            stop=give_up,
            before_sleep=before_sleep,
            sleep=stop.wait if stop is not None else time.sleep,
            reraise=True,
        )
        try:
            retrying(self.flush)
        except DB_DOWN_ERRORS as exc:
            self._went_down(exc)
            return False
        self._came_back()
        return True

    # -- sampling -----------------------------------------------------------------
    def sample(self) -> bool:
        """Take one sample into the buffer; a failed one is counted and logged, not raised."""
        self.summary.samples += 1
        try:
            readings = self.source.sample()
        except SampleFailed as exc:
            self.summary.failed += 1
            self._pending_failures += 1
            self._last_error = str(exc)
            log.warning("GPU sample failed, nothing stored from it: %s", exc)
            return False
        self.buffer.extend(readings)
        return True

    def _finish(self, t0: float) -> GpuSummary:
        self.summary.dropped = self.buffer.dropped
        self.summary.unsaved = len(self.buffer)
        self.summary.elapsed_s = time.monotonic() - t0
        if self.pending():
            log.warning(
                "exiting with %d GPU readings and %d failure counts not written: the "
                "database was unavailable",
                len(self.buffer),
                self._pending_failures,
            )
        self.close()
        return self.summary

    def run_once(self, db_wait_s: float = 30.0) -> GpuSummary:
        """One sample, written before returning (waiting up to ``db_wait_s`` for Postgres)."""
        t0 = time.monotonic()
        self.sample()
        self.flush_until(time.monotonic() + db_wait_s)
        return self._finish(t0)

    def run(
        self, stop: threading.Event, interval_s: float = 10.0, final_wait_s: float = 5.0
    ) -> GpuSummary:
        """Sample every ``interval_s`` seconds until ``stop`` is set, surviving DB outages.

        On stop, buffered readings get one last ``final_wait_s`` to reach the database.
        """
        t0 = time.monotonic()
        next_at = t0
        while not stop.is_set():
            self.sample()
            next_at += interval_s
            if next_at <= time.monotonic():  # a slow sample: skip the ticks it overran
                next_at = time.monotonic() + interval_s
            if self.pending():
                self.flush_until(next_at, stop)
            stop.wait(max(0.0, next_at - time.monotonic()))
        if self.pending():
            self.flush_until(time.monotonic() + final_wait_s)
        return self._finish(t0)
