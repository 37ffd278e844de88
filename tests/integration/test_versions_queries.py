"""Version-comparison statistics read from rollups equal direct computations on raw rows."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from diffwatch.analytics.versions import verdict
from diffwatch.db.queries.dashboard_cost import set_gpu_price
from diffwatch.db.queries.rollups import refresh
from diffwatch.db.queries.versions import Side, compare_stats, version_stats
from diffwatch.model.filters import Filters
from diffwatch.model.histogram import bin_of

L4, H100, UNPRICED = "NVIDIA L4", "NVIDIA H100 80GB HBM3", "Mystery GPU"
STABLE = Side("stable v1", versions=("v1",))
CANARY = Side("canary v2", versions=("v2",), deployments=("canary",))


@pytest.fixture
def start() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)


@pytest.fixture
def dataset(conninfo: str, start: datetime) -> Filters:
    rnd = random.Random(4)
    rows = []
    for i in range(600):
        v, dep = ("v1", "stable") if i % 2 else ("v2", rnd.choice(["canary", "shadow"]))
        gpu = rnd.choice([L4, H100, UNPRICED])
        ok = rnd.random() > 0.05
        rows.append((
            f"req-{i}", start + timedelta(seconds=rnd.uniform(0, 3 * 3600)), v,
            "ok" if ok else "error", rnd.choice([1, 2, 4]), rnd.uniform(100, 5000),
            rnd.lognormvariate(6.0 if v == "v1" else 6.2, 0.4), gpu, dep,
        ))  # fmt: skip
    with psycopg.connect(conninfo) as conn:
        conn.cursor().executemany(
            "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
            " batch_size, inference_ms, total_ms, gpu_type, deployment)"
            " VALUES (%s, %s, 'm', %s, 'p', %s, %s, %s, %s, %s, %s)",
            rows,
        )
        # clip at c1 on both sides; c0 only on v1 (more results, but not comparable).
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " SELECT id, 'clip', 'c1', 20 + (id * 7919 % 150) / 10.0, NULL::boolean"
            " FROM generations WHERE status = 'ok' AND id % 3 <> 0 UNION ALL"
            " SELECT id, 'clip', 'c0', 1, NULL FROM generations WHERE model_version = 'v1'"
            " UNION ALL SELECT id, 'nsfw', 'n1', NULL, id % 17 = 0 FROM generations"
            " WHERE status = 'ok' UNION ALL"
            " SELECT id, 'nsfw', 'n1-broken', NULL, NULL FROM generations WHERE id % 5 = 0"
        )
        set_gpu_price(conn, L4, 0.80)
        set_gpu_price(conn, H100, 3.00)
        conn.commit()
        refresh(conn)
    return Filters(start, start + timedelta(hours=3), models=("m",))


def _direct(conn: psycopg.Connection, version: str, deps: tuple[str, ...], w: int) -> dict:
    """The same statistics computed from raw rows."""
    gens = conn.execute(
        "SELECT id, status, batch_size, inference_ms, total_ms, p.usd_per_hour,"
        " date_bin(make_interval(secs => %s), ts, timestamptz '1970-01-01 00:00:00+00')"
        " FROM generations g LEFT JOIN gpu_prices p ON p.gpu_type = g.gpu_type"
        " WHERE model_version = %s AND (cardinality(%s::text[]) = 0 OR deployment = ANY(%s))",
        (w, version, list(deps), list(deps)),
    ).fetchall()
    hist: dict[int, int] = defaultdict(int)
    cost: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
    unpriced = 0.0
    for _, status, batch, inf, total, price, bucket in gens:
        hist[bin_of(total)] += 1
        if price is None:
            unpriced += inf / 3.6e6
        else:
            cost[bucket][0] += inf / 3.6e6 * price
            cost[bucket][1] += batch if status == "ok" else 0
    ids = [g[0] for g in gens]
    clip: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for value, bucket in conn.execute(
        "SELECT s.value, date_bin(make_interval(secs => %s), g.ts, timestamptz '1970-01-01Z')"
        " FROM scorer_results s JOIN generations g ON g.id = s.generation_id"
        " WHERE s.scorer = 'clip' AND s.scorer_version = 'c1' AND g.id = ANY(%s)",
        (w, ids),
    ):
        clip[bucket][0] += value
        clip[bucket][1] += 1
    flagged, scored = conn.execute(
        "SELECT count(*) FILTER (WHERE flagged), count(flagged) FROM scorer_results"
        " WHERE scorer = 'nsfw' AND scorer_version = 'n1' AND generation_id = ANY(%s)",
        (ids,),
    ).fetchone()
    return {
        "requests": len(gens),
        "errors": sum(g[1] == "error" for g in gens),
        "images": sum(g[2] for g in gens if g[1] == "ok"),
        "hist": dict(hist),
        "cost": [tuple(cost[b]) for b in sorted(cost)],
        "unpriced": unpriced,
        "clip": [tuple(clip[b]) for b in sorted(clip)],
        "nsfw": (flagged, scored),
    }


def _flat(pairs) -> list[float]:
    return [x for pair in pairs for x in pair]


@pytest.mark.parametrize("width", [60, 3600])
def test_stats_per_side_equal_direct_computations(conninfo, dataset, width) -> None:
    f = replace(dataset, width_s=width)
    with psycopg.connect(conninfo) as conn:
        a, b = compare_stats(conn, f, STABLE, CANARY)
        want = {"a": _direct(conn, "v1", (), width), "b": _direct(conn, "v2", ("canary",), width)}
    for got, exp in ((a, want["a"]), (b, want["b"])):
        assert got.requests == exp["requests"] > 100
        assert (got.errors.successes, got.errors.n) == (exp["errors"], exp["requests"])
        assert got.images == exp["images"]
        assert got.latency_hist == exp["hist"]
        assert _flat(got.cost.pairs) == pytest.approx(_flat(exp["cost"]), rel=1e-9)
        assert got.unpriced_gpu_hours == pytest.approx(exp["unpriced"], rel=1e-9)
        assert _flat(got.clip.pairs) == pytest.approx(_flat(exp["clip"]), rel=1e-9)
        assert got.clip_scorer_version == "c1" and got.nsfw_scorer_version == "n1"
        assert (got.nsfw.successes, got.nsfw.n) == exp["nsfw"]
        assert got.rating is None and got.width_s == width
    assert len(a.clip.pairs) > 2  # several buckets: the variance comes from their spread
    assert a.label == "stable v1" and b.label == "canary v2"


def test_one_side_alone_reads_its_most_used_scorer_version(conninfo, dataset) -> None:
    with psycopg.connect(conninfo) as conn:
        alone = version_stats(conn, dataset, STABLE)
    # On its own, v1 has more c0 results than c1 ones; compared with v2, c1 is common.
    assert alone.clip_scorer_version == "c0"
    assert alone.clip.n == alone.requests


def test_verdict_from_the_database(conninfo, dataset) -> None:
    with psycopg.connect(conninfo) as conn:
        a, b = compare_stats(conn, dataset, STABLE, CANARY)
    v = verdict(a, b)
    # About 300 vs 150 requests: latency p95 needs 400 a side, so no promotion yet.
    assert v.recommendation in ("hold", "not_enough_data")
    p50 = next(c for c in v.comparisons if c.metric.key == "p50_ms")
    assert p50.status == "regressed"  # lognormal median e^6.2 vs e^6.0: +22 %
    assert "P50 latency: slower" in v.text


def test_empty_range(conninfo, start) -> None:
    f = Filters(start - timedelta(days=30), start - timedelta(days=29))
    with psycopg.connect(conninfo) as conn:
        refresh(conn)
        a, b = compare_stats(conn, f, STABLE, CANARY)
    assert (a.requests, a.latency_hist, a.cost.pairs, a.clip_scorer_version) == (0, {}, (), None)
    v = verdict(a, b)
    assert v.recommendation == "not_enough_data"
    assert v.summary.endswith("nothing was measured; keep canary v2 running and look again.")
