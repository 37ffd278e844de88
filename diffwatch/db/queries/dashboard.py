"""Ops dashboard data from rollups only: KPIs, latency percentiles, throughput, errors.

Every function takes a ``Filters`` (time range [start, end) and optional filters) and returns
a small list of frozen dataclasses (``pandas.DataFrame(rows)`` makes a frame of them).
Latencies are in ms, with the relative error of ``diffwatch.model.histogram.ALPHA`` (2 %); money in
USD. Cost, GPU and quality queries are in ``dashboard_cost``; see docs/rollups.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import psycopg

from diffwatch.db.queries.dashboard_filters import (
    Filters,
    GroupBy,
    group_sql,
    level,
    point_sql,
    rate,
    where,
)
from diffwatch.model import histogram

Metric = Literal["queue", "inference", "total"]


@dataclass(frozen=True, slots=True)
class Kpis:
    """Headline figures of one period (latency: total_ms; cost attributed to requests)."""

    requests: int
    images: int
    errors: int
    error_rate: float | None  # errors / requests
    p50_ms: float | None
    p95_ms: float | None
    gpu_hours: float  # inference GPU time of the requests (h)
    cost_usd: float | None  # gpu_hours × price of their GPU type; None when none is priced
    cost_per_image_usd: float | None
    unpriced_gpu_hours: float  # GPU time on GPU types missing from gpu_prices (h)
    clip_mean: float | None
    nsfw_rate: float | None  # flagged / scored by the nsfw scorer
    scored: int  # scorer results in the period


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    """Latency of one group at one time-series point (ms)."""

    t: datetime
    group: str
    n: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    """Requests, images and errors of one group at one point; rates per minute."""

    t: datetime
    group: str
    requests: int
    images: int
    errors: int
    error_rate: float | None
    images_per_min: float
    step_s: int


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """Failed requests of one kind in the range, and their share of all requests."""

    kind: str
    errors: int
    share_of_requests: float | None


def _quantile_bins(
    conn: psycopg.Connection,
    f: Filters,
    metric: Metric,
    by: GroupBy,
    step: int | None,
    lvl: int,
    qs: tuple[float, ...],
) -> dict[tuple[datetime, str], list[float | None]]:
    """Nearest-rank quantiles (ms) per (point, group) of the merged histograms.

    The stored sparse arrays come back in binary and are merged into dense numpy arrays
    here: far cheaper than unnesting them into rows in SQL.
    """
    w = f.width()
    cond, params = where(f, w, "r")
    acc: dict[tuple[datetime, str], np.ndarray] = {}
    with conn.cursor(binary=True) as cur:
        cur.execute(
            f"SELECT {point_sql(step, 'r')}, {group_sql(by, 'r')}, r.h_{metric}"
            f" FROM rollup_generations r WHERE r.lvl = %(lvl)s AND {cond}",
            params | {"lvl": lvl},
        )
        for t, g, packed in cur:
            h = acc.get((t, g))
            if h is None:
                h = acc[(t, g)] = histogram.dense()
            histogram.add_packed(h, packed)
    return {key: histogram.dense_quantiles(h, qs) for key, h in acc.items()}


def kpis(conn: psycopg.Connection, f: Filters) -> Kpis:
    """Headline figures for the range: volume, errors, latency, attributed cost, quality."""
    w, lvl = f.width(), level(f, None, need_gpu=True)
    cond, params = where(f, w, "r")
    requests = images = errors = 0
    gpu_h = unpriced_h = 0.0
    cost: float | None = None
    for _gpu, req, img, err, inf_ms, price in conn.execute(
        "SELECT r.gpu_type, sum(r.requests), sum(r.images), sum(r.errors),"
        " sum(r.inference_sum_ms), max(p.usd_per_hour) FROM rollup_generations r"
        " LEFT JOIN gpu_prices p ON p.gpu_type = r.gpu_type"
        f" WHERE r.lvl = %(lvl)s AND {cond} GROUP BY r.gpu_type",
        params | {"lvl": lvl},
    ):
        requests, images, errors = requests + int(req), images + int(img), errors + int(err)
        hours = float(inf_ms) / 3.6e6
        gpu_h += hours
        if price is None:
            unpriced_h += hours
        else:
            cost = (cost or 0.0) + hours * float(price)
    p50, p95 = _quantile_bins(conn, f, "total", None, None, lvl, (0.5, 0.95)).get(
        (f.start, ""), [None, None]
    )
    q = _quality_totals(conn, f, w)
    clip, nsfw = q.get("clip"), q.get("nsfw")
    return Kpis(
        requests=requests,
        images=images,
        errors=errors,
        error_rate=rate(errors, requests),
        p50_ms=p50,
        p95_ms=p95,
        gpu_hours=gpu_h,
        cost_usd=cost,
        cost_per_image_usd=rate(cost, images) if cost is not None else None,
        unpriced_gpu_hours=unpriced_h,
        clip_mean=rate(clip[1], clip[0]) if clip else None,
        nsfw_rate=rate(nsfw[3], nsfw[2]) if nsfw else None,
        scored=sum(v[4] for v in q.values()),
    )


def _quality_totals(
    conn: psycopg.Connection, f: Filters, w: int
) -> dict[str, tuple[int, float, int, int, int]]:
    cond, params = where(f, w)
    return {
        s: (int(vn), float(vs), int(fn), int(fd), int(n))
        for s, vn, vs, fn, fd, n in conn.execute(
            "SELECT scorer, sum(value_n), sum(value_sum), sum(flag_n), sum(flagged_n), sum(n)"
            f" FROM rollup_quality WHERE {cond} GROUP BY scorer",
            params,
        )
    }


def kpis_with_previous(conn: psycopg.Connection, f: Filters) -> tuple[Kpis, Kpis]:
    """KPIs of the range and of the period of the same length just before it."""
    return kpis(conn, f), kpis(conn, f.previous())


def history_start(conn: psycopg.Connection) -> datetime | None:
    """Start of the oldest hour bucket of generations (hour buckets are kept forever): where
    the stored history begins, or None when there is none."""
    row = conn.execute("SELECT min(bucket) FROM rollup_generations WHERE width_s = 3600").fetchone()
    return row[0] if row else None


def latency(
    conn: psycopg.Connection,
    f: Filters,
    metric: Metric = "total",
    by: GroupBy = None,
    over_time: bool = True,
) -> list[LatencyPoint]:
    """p50/p95/p99 and mean latency (ms) per point and group; one point if not over_time."""
    w, lvl = f.width(), level(f, by)
    step = f.step(w) if over_time else None
    qbins = _quantile_bins(conn, f, metric, by, step, lvl, (0.5, 0.95, 0.99))
    cond, params = where(f, w, "r")
    sums: dict[Any, tuple[int, float]] = {
        (t, g): (int(n), float(s))
        for t, g, n, s in conn.execute(
            f"SELECT {point_sql(step, 'r')}, {group_sql(by, 'r')}, sum(r.{metric}_n),"
            f" sum(r.{metric}_sum_ms) FROM rollup_generations r"
            f" WHERE r.lvl = %(lvl)s AND {cond} GROUP BY 1, 2",
            params | {"lvl": lvl},
        )
    }
    out = []
    for key in sorted(qbins):
        n, total = sums.get(key, (0, 0.0))
        p50, p95, p99 = qbins[key]
        out.append(LatencyPoint(key[0], key[1], n, rate(total, n), p50, p95, p99))
    return out


def throughput(conn: psycopg.Connection, f: Filters, by: GroupBy = None) -> list[ThroughputPoint]:
    """Requests, images and errors per time-series point and group."""
    w, lvl = f.width(), level(f, by)
    step = f.step(w)
    cond, params = where(f, w, "r")
    rows = conn.execute(
        f"SELECT {point_sql(step, 'r')} AS t, {group_sql(by, 'r')} AS g, sum(r.requests),"
        f" sum(r.images), sum(r.errors) FROM rollup_generations r"
        f" WHERE r.lvl = %(lvl)s AND {cond} GROUP BY 1, 2 ORDER BY 1, 2",
        params | {"lvl": lvl},
    )
    now = datetime.now(UTC)
    return [
        ThroughputPoint(
            t,
            g,
            int(req),
            int(img),
            int(err),
            rate(int(err), int(req)),
            float(img) * 60 / _elapsed_s(t, step, w, now),
            step,
        )
        for t, g, req, img, err in rows
    ]


def _elapsed_s(t: datetime, step: int, width: int, now: datetime) -> float:
    """Seconds of a point's buckets that have happened (at least a minute): ``step``, except
    for the point that holds the current bucket, whose images so far must not be spread over
    the part of the hour still to come (the last point would dip in every live view).

    The point at ``t`` holds the buckets (``width`` s, aligned to the epoch) that start in
    ``[t, t + step)``: its span starts at the first bucket boundary at or after ``t``.
    """
    first = -(-int(t.timestamp()) // width) * width
    end = min(first + step, now.timestamp())
    return max(end - first, 60.0)


def errors_by_kind(conn: psycopg.Connection, f: Filters) -> list[ErrorKind]:
    """Failed requests per error kind in the range, most frequent first."""
    w = f.width()
    cond, params = where(f, w)
    row = conn.execute(
        f"SELECT coalesce(sum(requests), 0) FROM rollup_generations WHERE lvl = %(lvl)s AND {cond}",
        params | {"lvl": level(f, None)},
    ).fetchone()
    requests = int(row[0]) if row else 0
    return [
        ErrorKind(kind, int(n), rate(int(n), requests))
        for kind, n in conn.execute(
            f"SELECT kind, sum(n) FROM rollup_errors WHERE {cond} GROUP BY kind ORDER BY 2 DESC, 1",
            params,
        )
    ]
