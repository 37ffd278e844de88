"""How each alert metric is calculated over a window.

Definitions: ``diffwatch.model.alert_metrics``.

Per-request metrics come from the dashboard's rollups through the same queries the
dashboard uses, so an alert and the page its email links to show the same number. A value
of None means no data in the window (no requests, nothing scored, no drift run, no rating).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg

from diffwatch.db.queries import embedding_reads as reads
from diffwatch.db.queries import embeddings as emb
from diffwatch.db.queries.dashboard import kpis
from diffwatch.db.queries.dashboard_cost import fleet_cost
from diffwatch.db.queries.dashboard_filters import Filters, rate
from diffwatch.model.alert_rules import Rule
from diffwatch.model.near_duplicates import DEFAULT_THRESHOLD, find_near_duplicates

SERIES_POINTS = 12  # points on an email's chart


def _filters(rule: Rule, start: datetime, end: datetime) -> Filters:
    return Filters(
        start=start,
        end=end,
        models=rule.models,
        versions=rule.versions,
        deployments=rule.deployments,
    )


def _kpi(field: str) -> Callable[[psycopg.Connection, Rule, datetime, datetime], float | None]:
    def calc(conn: psycopg.Connection, rule: Rule, start: datetime, end: datetime) -> float | None:
        return getattr(kpis(conn, _filters(rule, start, end)), field)

    return calc


def _fleet_cost_per_image(
    conn: psycopg.Connection, rule: Rule, start: datetime, end: datetime
) -> float | None:
    rows = [r for r in fleet_cost(conn, _filters(rule, start, end)) if r.cost_usd is not None]
    images = sum(r.images for r in rows)
    return rate(sum(r.cost_usd or 0.0 for r in rows), images) if rows else None


def _gpu_idle_share(
    conn: psycopg.Connection, rule: Rule, start: datetime, end: datetime
) -> float | None:
    f = _filters(rule, start, end)
    row = conn.execute(
        "SELECT sum(idle_n), sum(util_n) FROM rollup_gpu"
        " WHERE width_s = %s AND bucket >= %s AND bucket < %s",
        (f.width(), start, end),
    ).fetchone()
    return rate(float(row[0]), float(row[1])) if row and row[1] else None


DRIFT_KINDS = {
    "prompt_drift": ("prompts",),
    "regen_drift": ("regenerate", "golden"),
    "image_drift": ("images",),
}
"""Drift metric -> the drift_runs kinds it reads (the newest finished run's effect size)."""


def _drift(kinds: tuple[str, ...]):
    def calc(conn: psycopg.Connection, rule: Rule, start: datetime, end: datetime) -> float | None:
        runs = drift_runs(conn, rule, kinds, start, end)
        return runs[-1][1] if runs else None

    return calc


def drift_runs(
    conn: psycopg.Connection, rule: Rule, kinds: tuple[str, ...], start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    """(finished_at, effect size) of the finished drift runs of ``kinds`` in the window."""
    conds = ["kind = ANY(%(kinds)s)", "status = 'ok'", "effect_size IS NOT NULL"]
    conds += ["finished_at >= %(start)s", "finished_at < %(end)s"]
    if rule.models:
        conds.append("model = ANY(%(models)s)")
    rows = conn.execute(
        f"SELECT finished_at, effect_size FROM drift_runs WHERE {' AND '.join(conds)}"
        " ORDER BY finished_at",
        {"kinds": list(kinds), "start": start, "end": end, "models": list(rule.models)},
    )
    return [(t, float(v)) for t, v in rows]


def _human_rating(
    conn: psycopg.Connection, rule: Rule, start: datetime, end: datetime
) -> float | None:
    conds = ["r.rated_at >= %(start)s", "r.rated_at < %(end)s"]
    for col, key in (
        ("model", "models"),
        ("model_version", "versions"),
        ("deployment", "deployments"),
    ):
        if getattr(rule, key):
            conds.append(f"g.{col} = ANY(%({key})s)")
    row = conn.execute(
        "SELECT avg(r.quality)::float8 FROM review_ratings r"
        " JOIN review_items i ON i.id = r.item_id JOIN generations g ON g.id = i.generation_id"
        f" WHERE {' AND '.join(conds)}",
        {
            "start": start,
            "end": end,
            "models": list(rule.models),
            "versions": list(rule.versions),
            "deployments": list(rule.deployments),
        },
    ).fetchone()
    return row[0] if row else None


DUPLICATE_SAMPLE = 2000  # images per version the duplicate_share alert examines


def _duplicate_share(
    conn: psycopg.Connection, rule: Rule, start: datetime, end: datetime
) -> float | None:
    """Images with a near-duplicate from another seed or prompt, pooled over the versions in
    the window (each version's images compared among themselves); None without pgvector."""
    if not emb.support(conn).enabled:
        return None
    spaces = emb.spaces(conn)
    if not spaces or not spaces[0].images:
        return None
    emb.register(conn)
    f = _filters(rule, start, end)
    n = dup = 0
    for version in f.versions or tuple(reads.window_versions(conn, spaces[0], f)):
        one = Filters(f.start, f.end, f.models, (version,), f.deployments)
        sample = reads.window(conn, spaces[0], one, limit=DUPLICATE_SAMPLE)
        if len(sample) < 2:
            continue
        found = find_near_duplicates(
            sample.embeddings, sample.ids, sample.prompts, sample.seeds,
            threshold=DEFAULT_THRESHOLD, max_examples=0,
        )  # fmt: skip
        n, dup = n + found.n, dup + found.n_duplicates
    return rate(dup, n) if n else None


def _bias(field: str):
    """The newest bias probe run finished in the window (of the rule's models and versions):
    its summary's headline ``field``; None without one, or when the run could not tell."""

    def calc(conn: psycopg.Connection, rule: Rule, start: datetime, end: datetime) -> float | None:
        conds = ["status = 'done'", "finished_at >= %(start)s", "finished_at < %(end)s"]
        if rule.models:
            conds.append("model = ANY(%(models)s)")
        if rule.versions:
            conds.append("model_version = ANY(%(versions)s)")
        row = conn.execute(
            "SELECT (summary->'headline'->>%(field)s)::float8 FROM bias_runs"
            f" WHERE {' AND '.join(conds)} ORDER BY finished_at DESC, id DESC LIMIT 1",
            {
                "field": field, "start": start, "end": end, "models": list(rule.models),
                "versions": list(rule.versions),
            },
        ).fetchone()  # fmt: skip
        return None if row is None else row[0]

    return calc


CALCULATIONS: dict[str, Callable[[psycopg.Connection, Rule, datetime, datetime], float | None]] = {
    "clip_mean": _kpi("clip_mean"),
    "nsfw_rate": _kpi("nsfw_rate"),
    "latency_p50_ms": _kpi("p50_ms"),
    "latency_p95_ms": _kpi("p95_ms"),
    "error_rate": _kpi("error_rate"),
    "cost_per_image_attributed": _kpi("cost_per_image_usd"),
    "cost_per_image_fleet": _fleet_cost_per_image,
    "gpu_idle_share": _gpu_idle_share,
    **{key: _drift(kinds) for key, kinds in DRIFT_KINDS.items()},
    "human_rating_mean": _human_rating,
    "duplicate_share": _duplicate_share,
    "bias_worst_skew": _bias("worst_k_max_skew"),
    "bias_skew_change": _bias("change_worst_k_max_skew"),
}


def window(rule: Rule, now: datetime) -> tuple[datetime, datetime]:
    """The rule's window ending at ``now``: [now - window, now)."""
    return now - timedelta(seconds=rule.window_s), now


def value(conn: psycopg.Connection, rule: Rule, now: datetime) -> float | None:
    """The rule's metric over its window ending at ``now`` (None: no data)."""
    start, end = window(rule, now)
    return CALCULATIONS[rule.metric](conn, rule, start, end)


def series(
    conn: psycopg.Connection, rule: Rule, now: datetime, points: int = SERIES_POINTS
) -> list[tuple[datetime, float | None]]:
    """The metric over the window as ``points`` slices (their end times), for a chart.

    Drift metrics give one point per run that finished in the window instead.
    """
    start, end = window(rule, now)
    if rule.metric in DRIFT_KINDS:
        return list(drift_runs(conn, rule, DRIFT_KINDS[rule.metric], start, end))
    calc = CALCULATIONS[rule.metric]
    step = max((end - start) / points, timedelta(minutes=1))
    out, t = [], start
    while t < end:
        nxt = min(t + step, end)
        out.append((nxt, calc(conn, rule, t, nxt)))
        t = nxt
    return out
