"""Seeding for alert tests: generation rows minute by minute, as a service would log them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import psycopg

_ids = count()


def base_time(hours_ago: float = 3.0) -> datetime:
    """A whole minute ``hours_ago`` before now: within the rollups' minute tier."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


def add_requests(
    conninfo: str,
    ts: datetime,
    n: int = 10,
    *,
    errors: int = 0,
    total_ms: float = 1000.0,
    deployment: str = "stable",
    version: str = "v1",
    model: str = "sdxl",
) -> None:
    """``n`` requests logged at ``ts`` (``errors`` of them failed), each ``total_ms`` long."""
    with psycopg.connect(conninfo) as conn:
        for i in range(n):
            conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
                " batch_size, inference_ms, total_ms, gpu_type, deployment)"
                " VALUES (%s, %s, %s, %s, 'a red fox', %s, 1, %s, %s, 'NVIDIA L4', %s)",
                (
                    f"alert-{next(_ids)}",
                    ts,
                    model,
                    version,
                    "error" if i < errors else "ok",
                    0.8 * total_ms,
                    total_ms,
                    deployment,
                ),
            )
