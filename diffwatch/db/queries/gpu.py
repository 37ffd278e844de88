"""SQL used by the GPU collector: readings by COPY, and its collector_status counters."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from diffwatch.db.queries.ingest import bump_status
from diffwatch.model.gpu import GpuReading

KIND = "gpu"
_COLS = (
    "ts", "host", "gpu_index", "source", "gpu_uuid", "gpu_name", "mig_instance", "util_pct",
    "mem_used_mib", "mem_total_mib", "power_w", "temp_c", "sm_clock_mhz",
)  # fmt: skip


def insert_gpu_samples(
    conn: psycopg.Connection,
    readings: Sequence[GpuReading],
    collector: str | None = None,
    host: str | None = None,
) -> int:
    """Store readings with COPY in one transaction; returns the number of rows stored.

    With ``collector``, its ``ingested`` count in collector_status grows by the same number
    in the same transaction, so the counter never disagrees with the rows.
    """
    if not readings:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY gpu_samples ({', '.join(_COLS)}) FROM STDIN") as copy:
            for r in readings:
                copy.write_row(tuple(getattr(r, c) for c in _COLS))
        if collector is not None:
            bump_status(cur, collector, KIND, host or "", ingested=len(readings))
    return len(readings)


def record_gpu_failures(
    conn: psycopg.Connection, collector: str, host: str, failures: int, error: str
) -> None:
    """Count failed samples (scrapes or NVML reads) and the last error, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        bump_status(cur, collector, KIND, host, failures=failures, error=error)
