"""Images per minute of the hour under way: its images over the minutes gone so far, so the
last point of a live chart does not dip (Overview, Latency & throughput)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from diffwatch.db.queries.dashboard import throughput
from diffwatch.db.queries.rollups import refresh
from diffwatch.model.filters import Filters


def test_the_current_hour_is_a_rate_over_its_minutes_so_far(conninfo) -> None:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    before = hour - timedelta(hours=1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
            " batch_size, total_ms, deployment)"
            " SELECT 'r-' || i, CASE WHEN i <= 120 THEN %(before)s + make_interval(secs => i * 29)"
            "   ELSE %(hour)s + (%(now)s - %(hour)s) * ((i - 120) / 31.0) END,"
            " 'sdxl', 'v1', 'p', 'ok', 1, 1000, 'stable' FROM generate_series(1, 150) i",
            {"before": before, "hour": hour, "now": now},
        )
        refresh(conn)
        points = throughput(conn, Filters(now - timedelta(hours=24), now, width_s=3600))
    full, current = points[-2], points[-1]
    assert (full.images, current.images) == (120, 30)
    assert full.images_per_min == 2.0  # 120 images over a whole hour
    gone_min = max((datetime.now(UTC) - hour).total_seconds(), 60) / 60
    # 30 images over the minutes gone so far (the point starts at the hour's first minute)
    assert abs(current.images_per_min - 30 / gone_min) <= 0.05 * 30 / gone_min
