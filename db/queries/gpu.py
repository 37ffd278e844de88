"""SQL used by the GPU collector."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from collectors.gpu.model import GpuReading

_COLS = (
    "ts", "host", "gpu_index", "source", "gpu_uuid", "gpu_name", "mig_instance", "util_pct",
    "mem_used_mib", "mem_total_mib", "power_w", "temp_c", "sm_clock_mhz",
)


def insert_gpu_samples(conn: psycopg.Connection, readings: Sequence[GpuReading]) -> int:
    """Store readings with COPY in one transaction; returns the number of rows stored."""
    if not readings:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY gpu_samples ({', '.join(_COLS)}) FROM STDIN") as copy:
            for r in readings:
                copy.write_row(tuple(getattr(r, c) for c in _COLS))
    return len(readings)
