"""Ops dashboard data from rollups only: cost, GPU utilisation, quality, the price table.

Attributed cost: the inference GPU time of requests (``inference_ms``, which covers the
request's whole batch, failed requests included) × the hourly price of their GPU type,
divided by the images delivered. Fleet cost: the time each GPU was observed by the GPU
collector (idle time included) × its price. Money in USD, time in hours, memory in MiB.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class CostRow:
    """Attributed cost of one group (a version, deployment or GPU type) in the range."""

    group: str
    requests: int
    images: int
    gpu_hours: float
    cost_usd: float | None  # None when none of its GPU time is priced
    cost_per_image_usd: float | None
    unpriced_gpu_hours: float


@dataclass(frozen=True, slots=True)
class FleetCostRow:
    """Fleet cost of one GPU type: every observed GPU-hour paid, busy or idle."""

    gpu_type: str
    gpus: int
    held_gpu_hours: float  # observed by the GPU collector
    busy_gpu_hours: float  # inference time attributed to requests
    usd_per_hour: float | None
    cost_usd: float | None
    images: int
    cost_per_image_usd: float | None
    idle_share: float | None  # readings under the idle threshold / readings


@dataclass(frozen=True, slots=True)
class HostUtilisation:
    """One host's GPUs over the range, or at one time-series point."""

    t: datetime
    host: str
    gpus: int
    util_mean_pct: float | None
    mem_used_mean_mib: float | None
    mem_used_pct: float | None
    power_mean_w: float | None
    idle_share: float | None
    observed_gpu_hours: float


@dataclass(frozen=True, slots=True)
class QualityPoint:
    """Mean CLIP score and NSFW rate of one group at one point (by generation time)."""

    t: datetime
    group: str
    clip_n: int
    clip_mean: float | None
    nsfw_n: int
    nsfw_rate: float | None


@dataclass(frozen=True, slots=True)
class GpuPrice:
    """A row of the price table (USD per GPU-hour)."""

    gpu_type: str
    usd_per_hour: float
    note: str | None


def cost_by(conn: psycopg.Connection, f: Filters, by: GroupBy = "version") -> list[CostRow]:
    """Attributed cost per group in the range, most expensive first."""
    w = f.width()
    cond, params = where(f, w, "r")
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0, 0])
    for g, req, img, inf_ms, price in conn.execute(
        f"SELECT {group_sql(by, 'r')}, sum(r.requests), sum(r.images), sum(r.inference_sum_ms),"
        " max(p.usd_per_hour) FROM rollup_generations r"
        " LEFT JOIN gpu_prices p ON p.gpu_type = r.gpu_type"
        f" WHERE r.lvl = %(lvl)s AND {cond} GROUP BY 1, r.gpu_type",
        params | {"lvl": level(f, by, need_gpu=True)},
    ):
        a = acc[g]
        hours = float(inf_ms) / 3.6e6
        a[0] += int(req)
        a[1] += int(img)
        a[2] += hours
        if price is None:
            a[4] += hours
        else:
            a[3] += hours * float(price)
            a[5] = 1
    rows = [
        CostRow(
            g,
            int(a[0]),
            int(a[1]),
            a[2],
            a[3] if a[5] else None,
            rate(a[3], a[1]) if a[5] else None,
            a[4],
        )
        for g, a in acc.items()
    ]
    return sorted(rows, key=lambda r: (-(r.cost_usd or 0.0), r.group))


def fleet_cost(conn: psycopg.Connection, f: Filters) -> list[FleetCostRow]:
    """Fleet cost per GPU type: observed GPU-hours × price, against the images made."""
    w = f.width()
    params = {"w": w, "start": f.start, "end": f.end}
    held = {
        name: (int(gpus), float(minutes) / 60, rate(float(idle), float(n)))
        for name, gpus, minutes, idle, n in conn.execute(
            "SELECT gpu_name, count(DISTINCT (host, gpu_index, mig_instance)),"
            " sum(bit_count(minutes::bit(64))), sum(idle_n), sum(util_n) FROM rollup_gpu"
            " WHERE width_s = %(w)s AND bucket >= %(start)s AND bucket < %(end)s"
            " GROUP BY gpu_name",
            params,
        )
    }
    gens = {
        g: (float(inf_ms) / 3.6e6, int(img))
        for g, inf_ms, img in conn.execute(
            "SELECT gpu_type, sum(inference_sum_ms), sum(images) FROM rollup_generations"
            " WHERE lvl = 14 AND width_s = %(w)s AND bucket >= %(start)s AND bucket < %(end)s"
            " GROUP BY gpu_type",
            params,
        )
    }
    prices = {g: p.usd_per_hour for g, p in ((p.gpu_type, p) for p in gpu_prices(conn))}
    out = []
    for name in sorted(set(held) | set(gens)):
        gpus, held_h, idle = held.get(name, (0, 0.0, None))
        busy_h, images = gens.get(name, (0.0, 0))
        price = prices.get(name)
        cost = held_h * price if price is not None else None
        per_image = rate(cost, images) if cost is not None else None
        out.append(FleetCostRow(name, gpus, held_h, busy_h, price, cost, images, per_image, idle))
    return out


def gpu_hosts(
    conn: psycopg.Connection, f: Filters, hosts: tuple[str, ...] = (), over_time: bool = False
) -> list[HostUtilisation]:
    """GPU utilisation, memory, power and idle share per host (and point, if over_time)."""
    w = f.width()
    step = f.step(w) if over_time else None
    params: dict[str, object] = {"w": w, "start": f.start, "end": f.end, "hosts": list(hosts)}
    host_cond = " AND host = ANY(%(hosts)s)" if hosts else ""
    rows = conn.execute(
        f"SELECT {point_sql(step)}, host, count(DISTINCT (gpu_index, mig_instance)),"
        " sum(util_sum), sum(util_n), sum(mem_used_sum_mib), sum(mem_total_sum_mib),"
        " sum(mem_n), sum(power_sum_w), sum(power_n), sum(idle_n),"
        " sum(bit_count(minutes::bit(64))) FROM rollup_gpu"
        " WHERE width_s = %(w)s AND bucket >= %(start)s AND bucket < %(end)s"
        f"{host_cond} GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    return [
        HostUtilisation(
            t,
            host,
            int(gpus),
            rate(util_s, util_n),
            rate(mem_s, mem_n),
            rate(100.0 * mem_s, mem_t) if mem_t else None,
            rate(pow_s, pow_n),
            rate(float(idle), float(util_n)),
            float(minutes) / 60,
        )
        for t, host, gpus, util_s, util_n, mem_s, mem_t, mem_n, pow_s, pow_n, idle, minutes in rows
    ]


def quality_trend(
    conn: psycopg.Connection, f: Filters, by: GroupBy = "version", over_time: bool = True
) -> list[QualityPoint]:
    """Mean CLIP score and NSFW rate per point and group, by the generations' time."""
    w = f.width()
    step = f.step(w) if over_time else None
    cond, params = where(f, w)
    rows = conn.execute(
        f"SELECT {point_sql(step)}, {group_sql(by)},"
        " sum(value_n) FILTER (WHERE scorer = 'clip'),"
        " sum(value_sum) FILTER (WHERE scorer = 'clip'),"
        " sum(flag_n) FILTER (WHERE scorer = 'nsfw'), sum(flagged_n) FILTER (WHERE scorer = 'nsfw')"
        f" FROM rollup_quality WHERE {cond} GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    return [
        QualityPoint(
            t,
            g,
            int(cn or 0),
            rate(float(cs or 0), float(cn or 0)),
            int(nn or 0),
            rate(float(nf or 0), float(nn or 0)),
        )
        for t, g, cn, cs, nn, nf in rows
    ]


def gpu_prices(conn: psycopg.Connection) -> list[GpuPrice]:
    """The price table, by GPU type."""
    return [
        GpuPrice(g, float(p), note)
        for g, p, note in conn.execute(
            "SELECT gpu_type, usd_per_hour, note FROM gpu_prices ORDER BY gpu_type"
        )
    ]


def set_gpu_price(
    conn: psycopg.Connection,
    gpu_type: str,
    usd_per_hour: float,
    note: str | None = None,
    actor: str | None = None,
) -> None:
    """Set (insert or replace) the hourly price of a GPU type (USD per GPU-hour).

    With an ``actor`` (a person, from the dashboard) the change and the old price are
    written to the audit log in the same transaction.
    """
    from diffwatch.db.queries.users import audit

    if usd_per_hour < 0:
        raise ValueError(f"price of {gpu_type!r}: must be >= 0 USD/hour, got {usd_per_hour}")
    with conn.transaction():
        old = conn.execute(
            "SELECT usd_per_hour FROM gpu_prices WHERE gpu_type = %s FOR UPDATE", (gpu_type,)
        ).fetchone()
        conn.execute(
            "INSERT INTO gpu_prices (gpu_type, usd_per_hour, note) VALUES (%s, %s, %s)"
            " ON CONFLICT (gpu_type) DO UPDATE SET usd_per_hour = EXCLUDED.usd_per_hour,"
            " note = EXCLUDED.note, updated_at = now()",
            (gpu_type, usd_per_hour, note),
        )
        if actor is not None:
            audit(conn, actor, "price.set", gpu_type, {
                "usd_per_hour": usd_per_hour,
                "old_usd_per_hour": float(old[0]) if old else None,
                "note": note,
            })  # fmt: skip
