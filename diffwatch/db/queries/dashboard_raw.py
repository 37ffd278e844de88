"""The dashboard's questions answered by scanning raw rows: the baseline of bench/dashboard.py.

Each page's statements compute what the rollup functions return (exact percentiles with
``percentile_disc``). Pages must never run these; the benchmark times them beside rollups.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

_KPI = """
SELECT count(*), coalesce(sum(coalesce(batch_size, 1)) FILTER (WHERE g.status = 'ok'), 0),
    count(*) FILTER (WHERE g.status = 'error'),
    percentile_disc(0.5) WITHIN GROUP (ORDER BY total_ms),
    percentile_disc(0.95) WITHIN GROUP (ORDER BY total_ms),
    sum(inference_ms / 3.6e6 * p.usd_per_hour)
FROM generations g LEFT JOIN gpu_prices p ON p.gpu_type = g.gpu_type
WHERE ts >= %(a)s AND ts < %(b)s
"""
_QUALITY = """
SELECT s.scorer, avg(s.value), avg(s.flagged::int) FROM scorer_results s
JOIN generations g ON g.id = s.generation_id WHERE g.ts >= %(a)s AND g.ts < %(b)s GROUP BY 1
"""
PAGES: dict[str, list[str]] = {
    "overview": [
        _KPI,
        _KPI.replace("%(a)s AND ts < %(b)s", "%(pa)s AND ts < %(a)s"),
        _QUALITY,
        _QUALITY.replace("%(a)s AND g.ts < %(b)s", "%(pa)s AND g.ts < %(a)s"),
    ],
    "latency": [
        "SELECT date_trunc('hour', ts), model, model_version,"
        " percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY total_ms), avg(total_ms)"
        " FROM generations WHERE ts >= %(a)s AND ts < %(b)s GROUP BY 1, 2, 3",
        "SELECT model, model_version,"
        " percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY total_ms)"
        " FROM generations WHERE ts >= %(a)s AND ts < %(b)s GROUP BY 1, 2",
    ],
    "throughput": [
        "SELECT date_trunc('minute', ts), count(*), sum(batch_size), count(*) FILTER"
        " (WHERE status = 'error') FROM generations WHERE ts >= %(b)s - interval '6 hours'"
        " AND ts < %(b)s GROUP BY 1",
        "SELECT date_trunc('hour', ts), count(*), sum(batch_size) FROM generations"
        " WHERE ts >= %(a)s AND ts < %(b)s GROUP BY 1",
    ],
    "errors": [
        "SELECT substring(error FROM '^[^:.(;]*'), count(*) FROM generations"
        " WHERE status = 'error' AND ts >= %(a)s AND ts < %(b)s GROUP BY 1",
        "SELECT date_trunc('hour', ts), model, model_version, count(*),"
        " count(*) FILTER (WHERE status = 'error') FROM generations"
        " WHERE ts >= %(a)s AND ts < %(b)s GROUP BY 1, 2, 3",
    ],
    "gpu": [
        "SELECT host, avg(util_pct), avg(mem_used_mib), avg(power_w),"
        " avg((util_pct < 5)::int) FROM gpu_samples WHERE ts >= %(a)s AND ts < %(b)s GROUP BY 1",
        "SELECT date_trunc('hour', ts), host, avg(util_pct) FROM gpu_samples"
        " WHERE ts >= %(b)s - interval '24 hours' AND ts < %(b)s GROUP BY 1, 2",
    ],
    "cost": [
        "SELECT g.model, g.model_version, sum(inference_ms / 3.6e6 * p.usd_per_hour),"
        " sum(batch_size) FILTER (WHERE status = 'ok') FROM generations g"
        " LEFT JOIN gpu_prices p ON p.gpu_type = g.gpu_type"
        " WHERE ts >= %(a)s AND ts < %(b)s GROUP BY 1, 2",
        "SELECT g.gpu_type, sum(inference_ms / 3.6e6), sum(batch_size) FILTER"
        " (WHERE status = 'ok') FROM generations g WHERE ts >= %(a)s AND ts < %(b)s GROUP BY 1",
        "SELECT gpu_name, count(DISTINCT (host, gpu_index, date_trunc('minute', ts)))"
        " FROM gpu_samples WHERE ts >= %(a)s AND ts < %(b)s GROUP BY 1",
    ],
    "quality": [
        "SELECT date_trunc('hour', g.ts), g.model, g.model_version,"
        " avg(s.value) FILTER (WHERE s.scorer = 'clip'),"
        " avg(s.flagged::int) FILTER (WHERE s.scorer = 'nsfw') FROM scorer_results s"
        " JOIN generations g ON g.id = s.generation_id WHERE g.ts >= %(a)s AND g.ts < %(b)s"
        " GROUP BY 1, 2, 3",
    ],
}


def run_page(conn: psycopg.Connection, page: str, start: datetime, end: datetime) -> int:
    """Run one page's raw statements for [start, end); returns the rows they produced."""
    params = {"a": start, "b": end, "pa": start - (end - start)}
    return sum(len(conn.execute(stmt, params).fetchall()) for stmt in PAGES[page])
