"""The log collector: files → parsed batches → one transaction each (rows + offsets)."""

from __future__ import annotations

import glob
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from diffwatch.collectors.logs.batching import Source, batches
from diffwatch.collectors.logs.tail import fingerprint, fingerprint_fd, is_compressed, iter_lines
from diffwatch.db.queries import ingest
from diffwatch.model.clock import utcnow
from diffwatch.outage import DB_DOWN_ERRORS, OutageRetry

log = logging.getLogger(__name__)


@dataclass
class CollectSummary:
    """Totals of one collect run (counts of lines, bytes and seconds)."""

    files: int = 0
    bytes_read: int = 0
    ingested: int = 0
    duplicates: int = 0
    rejected: int = 0
    blank: int = 0
    elapsed_s: float = 0.0
    skipped_files: list[str] = field(default_factory=list)

    def add(self, other: CollectSummary) -> None:
        """Fold another run's totals into this one."""
        for name in ("files", "bytes_read", "ingested", "duplicates", "rejected", "blank"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped_files.extend(p for p in other.skipped_files if p not in self.skipped_files)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready totals, with the ingest rate (rows/s)."""
        d = asdict(self)
        d["rows_per_s"] = round(self.ingested / self.elapsed_s, 1) if self.elapsed_s else None
        d["elapsed_s"] = round(self.elapsed_s, 3)
        return d


def expand(patterns: Sequence[str]) -> list[str]:
    """Regular files matching any pattern (globs, ``**`` allowed), oldest first."""
    seen: dict[str, float] = {}
    for pattern in patterns:
        for path in glob.glob(os.path.expanduser(pattern), recursive=True):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # rotated away between glob and stat
            if os.path.isfile(path):
                seen.setdefault(os.path.abspath(path), st.st_mtime)
    return sorted(seen, key=lambda p: (seen[p], p))


class LogCollector:
    """Tails JSON-lines generation logs into ``generations`` exactly once."""

    def __init__(
        self,
        conninfo: str,
        patterns: Sequence[str],
        *,
        batch_rows: int = 5000,
        name: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.patterns = list(patterns)
        self.batch_rows = batch_rows
        self.host = socket.gethostname()
        self.name = name or f"logs@{self.host}"
        self.clock = clock
        self.progress = progress
        self._conn: psycopg.Connection | None = None
        self._warned: set[str] = set()
        self._direct_after = 0  # batches to go before trying direct COPY again
        # Batches committed asynchronously since the last sync point: (fingerprint, end
        # offset, counts). If the database goes away before the sync point, the next pass
        # counts those whose offset survived and leaves the rest to be read again.
        self._unsynced: list[tuple[str, int, CollectSummary]] = []

    # -- connection ---------------------------------------------------------------
    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
            ingest.prepare_connection(self._conn)
        return self._conn

    def close(self) -> None:
        """Close the database connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- one pass -----------------------------------------------------------------
    def candidates(self) -> list[Source]:
        """Files to read now, one per content fingerprint (the largest copy wins)."""
        by_fp: dict[str, Source] = {}
        for path in expand(self.patterns):
            try:
                if is_compressed(path):
                    if path not in self._warned:
                        self._warned.add(path)
                        log.warning(
                            "skipping %s: compressed logs are not read (rotate with delaycompress)",
                            path,
                        )
                    continue
                fp = fingerprint(path)
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if fp is None:
                continue  # no complete first line yet
            c = Source(path, fp, st.st_size, st.st_dev, st.st_ino)
            if fp not in by_fp or c.size > by_fp[fp].size:
                by_fp[fp] = c
        return list(by_fp.values())

    def pending_bytes(self) -> int:
        """Bytes not yet consumed across all matching files (for progress bars)."""
        cands = self.candidates()
        offsets = ingest.load_offsets(self._connection(), [c.fingerprint for c in cands])
        return sum(max(0, c.size - offsets.get(c.fingerprint, (0, 0))[0]) for c in cands)

    def run_once(self) -> CollectSummary:
        """Read every matching file to its last complete line and commit what was read."""
        t0 = time.perf_counter()
        summary = CollectSummary()
        conn = self._connection()
        cands = self.candidates()
        offsets = ingest.load_offsets(conn, [c.fingerprint for c in cands])
        summary.add(self._settle(offsets))
        for cand in cands:
            start, line_no = offsets.get(cand.fingerprint, (0, 0))
            if cand.size < start:
                log.warning(
                    "%s is shorter (%d bytes) than its stored offset %d: it was truncated "
                    "and rewritten; reading it again from the start (duplicates are dropped)",
                    cand.path,
                    cand.size,
                    start,
                )
                start, line_no = 0, 0
            if cand.size == start:
                continue
            summary.add(self._read_file(conn, cand, start, line_no))
        if summary.bytes_read:
            ingest.sync_point(conn, self.name, "logs", self.host)
        self._unsynced.clear()
        summary.elapsed_s = time.perf_counter() - t0
        return summary

    def _settle(self, offsets: dict[str, tuple[int, int]]) -> CollectSummary:
        """Counts of the batches a failed pass committed that are durable after all.

        A pass that fails before its sync point has lost its totals, though some of its
        batches were committed: those whose offset the database still holds are counted
        now; the others were lost with a crash and are read (and counted) again.
        """
        settled = CollectSummary()
        for fp, end, counts in self._unsynced:
            if offsets.get(fp, (0, 0))[0] >= end:
                settled.add(counts)
        self._unsynced.clear()
        return settled

    def _read_file(
        self, conn: psycopg.Connection, src: Source, start: int, line_no: int
    ) -> CollectSummary:
        s = CollectSummary(files=1)
        try:
            fd = os.open(src.path, os.O_RDONLY)
        except FileNotFoundError:
            return CollectSummary()

        def unchanged() -> None:
            if fingerprint_fd(fd) != src.fingerprint:
                log.warning(
                    "%s changed while being read (copytruncate?); reading it again next pass",
                    src.path,
                )
                raise ingest.Abandon

        try:
            lines = iter_lines(fd, start)
            for batch in batches(lines, src, start, line_no, self.batch_rows, self.clock):
                res = ingest.write_batch(
                    conn,
                    batch,
                    self.name,
                    self.host,
                    direct=self._direct_after <= 0,
                    check=unchanged,
                )
                if res is None:
                    break
                # After a duplicate expect more (a replayed file): skip doomed direct COPYs.
                self._direct_after = 20 if res.conflicted else self._direct_after - 1
                counts = CollectSummary(
                    bytes_read=batch.nbytes,
                    ingested=res.inserted,
                    duplicates=res.duplicates,
                    rejected=res.rejected,
                    blank=batch.blank,
                )
                self._unsynced.append((src.fingerprint, batch.pos, counts))
                s.add(counts)
                if self.progress:
                    self.progress(batch.nbytes)
        finally:
            os.close(fd)
        return s

    # -- follow -------------------------------------------------------------------
    def follow(
        self,
        stop: threading.Event,
        poll_s: float = 0.5,
        on_pass: Callable[[CollectSummary], None] | None = None,
        max_backoff_s: float = 30.0,
    ) -> CollectSummary:
        """Tail until ``stop`` is set, surviving database outages without loss."""
        total = CollectSummary()
        t0 = time.perf_counter()
        retrying = OutageRetry(
            stop,
            log,
            on_down=self.close,
            consequence="Nothing is lost: reading resumes from the last committed offset.",
            resumed="ingestion resumed",
            max_backoff_s=max_backoff_s,
        )
        while not stop.is_set():
            try:
                summary = retrying(self.run_once)
            except DB_DOWN_ERRORS:
                if stop.is_set():
                    break
                raise
            total.add(summary)
            if on_pass:
                on_pass(summary)
            if not summary.bytes_read:
                stop.wait(poll_s)
        total.elapsed_s = time.perf_counter() - t0
        self.close()
        return total
