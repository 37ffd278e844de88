"""Reads of the Prometheus exporter: rollups per (model, version, deployment), and health.

Every figure comes from the same rollup rows, levels and histogram merge as the ops
dashboard (``dashboard``, ``dashboard_cost``, ``rollups``): for one key the numbers equal
``kpis``, ``latency``, ``cost_by`` and ``quality_trend`` filtered to that key. The exporter
stage folds keys beyond its cardinality cap into ``other`` by adding these sums and
histograms. Latency in ms, money in USD, time in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg

from diffwatch.db.queries.dashboard_filters import Filters, level, where
from diffwatch.model import histogram

Key = tuple[str, str, str]  # (model, model_version, deployment); unknown deployment is ''
BACKLOG_HOURS = 24  # the scoring backlog counts generations of this many hours back


@dataclass(slots=True)
class KeyStats:
    """Sums of one (model, version, deployment) over a range: mergeable by addition."""

    requests: int = 0
    images: int = 0
    errors: int = 0
    hist: np.ndarray = field(default_factory=histogram.dense)  # h_total, dense
    gpu_hours: float = 0.0
    cost_usd: float = 0.0  # priced GPU time only
    priced: bool = False  # some of its GPU time is on a priced GPU type
    clip_n: int = 0
    clip_sum: float = 0.0
    nsfw_n: int = 0
    nsfw_flagged: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, o: KeyStats) -> None:
        """Add another key's sums into this one (histograms merge exactly)."""
        self.requests += o.requests
        self.images += o.images
        self.errors += o.errors
        self.hist += o.hist
        self.gpu_hours += o.gpu_hours
        self.cost_usd += o.cost_usd
        self.priced = self.priced or o.priced
        self.clip_n += o.clip_n
        self.clip_sum += o.clip_sum
        self.nsfw_n += o.nsfw_n
        self.nsfw_flagged += o.nsfw_flagged
        for k, n in o.errors_by_kind.items():
            self.errors_by_kind[k] = self.errors_by_kind.get(k, 0) + n


def key_stats(conn: psycopg.Connection, f: Filters) -> dict[Key, KeyStats]:
    """Volume, latency histogram, attributed cost, quality and error kinds per key."""
    w = f.width()
    cond, params = where(f, w, "r")
    out: dict[Key, KeyStats] = {}

    def get(m: str, v: str, d: str) -> KeyStats:
        s = out.get((m, v, d))
        if s is None:
            s = out[(m, v, d)] = KeyStats()
        return s

    # Level 1 (model, version, deployment) as the dashboard reads a version + deployment.
    per_key = Filters(f.start, f.end, versions=("*",), deployments=("*",))
    lvl = level(per_key, None)
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT r.model, r.model_version, r.deployment, r.requests, r.images, r.errors,"
            f" r.h_total FROM rollup_generations r WHERE r.lvl = %(lvl)s AND {cond}",
            params | {"lvl": lvl},
        )
        for m, v, d, req, img, err, packed in cur:
            s = get(m, v, d)
            s.requests += int(req)
            s.images += int(img)
            s.errors += int(err)
            histogram.add_packed(s.hist, packed)
    # Level 0 (with the GPU type) for the price, as cost_by does.
    lvl0 = level(per_key, None, need_gpu=True)
    for m, v, d, inf_ms, price in conn.execute(
        "SELECT r.model, r.model_version, r.deployment, sum(r.inference_sum_ms),"
        " max(p.usd_per_hour) FROM rollup_generations r"
        " LEFT JOIN gpu_prices p ON p.gpu_type = r.gpu_type"
        f" WHERE r.lvl = %(lvl)s AND {cond} GROUP BY 1, 2, 3, r.gpu_type",
        params | {"lvl": lvl0},
    ):
        s = get(m, v, d)
        hours = float(inf_ms) / 3.6e6
        s.gpu_hours += hours
        if price is not None:
            s.cost_usd += hours * float(price)
            s.priced = True
    qcond, qparams = where(f, w)
    for m, v, d, cn, cs, nn, nf in conn.execute(
        "SELECT model, model_version, deployment,"
        " sum(value_n) FILTER (WHERE scorer = 'clip'),"
        " sum(value_sum) FILTER (WHERE scorer = 'clip'),"
        " sum(flag_n) FILTER (WHERE scorer = 'nsfw'), sum(flagged_n) FILTER (WHERE scorer = 'nsfw')"
        f" FROM rollup_quality WHERE {qcond} GROUP BY 1, 2, 3",
        qparams,
    ):
        s = get(m, v, d)
        s.clip_n += int(cn or 0)
        s.clip_sum += float(cs or 0)
        s.nsfw_n += int(nn or 0)
        s.nsfw_flagged += int(nf or 0)
    for m, v, d, kind, n in conn.execute(
        "SELECT model, model_version, deployment, kind, sum(n) FROM rollup_errors"
        f" WHERE {qcond} GROUP BY 1, 2, 3, 4",
        qparams,
    ):
        s = get(m, v, d)
        s.errors_by_kind[kind] = s.errors_by_kind.get(kind, 0) + int(n)
    return out


@dataclass(frozen=True, slots=True)
class DriftLatest:
    """The newest finished drift run of one kind and model ('' when over every model)."""

    kind: str
    model: str
    p_value: float | None
    effect_size: float | None
    drifted: bool | None
    started_at: datetime


def drift_latest(conn: psycopg.Connection) -> list[DriftLatest]:
    """Per drift kind and model, the newest run that finished ok."""
    return [
        DriftLatest(k, m, p, e, d, t)
        for k, m, p, e, d, t in conn.execute(
            "SELECT DISTINCT ON (kind, coalesce(model, '')) kind, coalesce(model, ''), p_value,"
            " effect_size, drifted, started_at FROM drift_runs WHERE status = 'ok'"
            " ORDER BY kind, coalesce(model, ''), started_at DESC, id DESC"
        )
    ]


def alerts_firing(conn: psycopg.Connection) -> dict[str, int]:
    """Enabled alert rules firing now, per severity."""
    return {
        sev: int(n)
        for sev, n in conn.execute(
            "SELECT r.severity, count(*) FROM alert_states s"
            " JOIN alert_rules r ON r.id = s.rule_id"
            " WHERE s.state = 'firing' AND r.enabled GROUP BY 1"
        )
    }


def scoring_backlog(conn: psycopg.Connection, hours: int = BACKLOG_HOURS) -> int:
    """Generations with an image from the last ``hours`` that have no score and no scoring
    error yet (no scorer has settled them)."""
    row = conn.execute(
        "SELECT count(*) FROM generations g WHERE g.ts >= now() - make_interval(hours => %s)"
        " AND g.status = 'ok' AND g.image_uri IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM scorer_results s WHERE s.generation_id = g.id)"
        " AND NOT EXISTS (SELECT 1 FROM scoring_errors e WHERE e.generation_id = g.id)",
        (hours,),
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class CollectorLag:
    """Seconds since a collector last reported to ``collector_status``."""

    name: str
    kind: str
    lag_s: float


def collector_lag(conn: psycopg.Connection, limit: int = 50) -> list[CollectorLag]:
    """Per collector (most recently seen ``limit``), seconds since its last report."""
    return [
        CollectorLag(n, k, max(0.0, float(s)))
        for n, k, s in conn.execute(
            "SELECT name, kind, extract(epoch FROM now() - updated_at) FROM collector_status"
            " ORDER BY updated_at DESC, name LIMIT %s",
            (limit,),
        )
    ]
