"""Dashboard query functions give the right numbers on a small hand-made dataset."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from diffwatch.db.queries import dashboard as d
from diffwatch.db.queries import dashboard_cost as dc
from diffwatch.db.queries.rollups import refresh
from diffwatch.model.filters import Filters
from diffwatch.model.histogram import ALPHA

L4, H100 = "NVIDIA L4", "NVIDIA H100 80GB HBM3"


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9)


@pytest.fixture
def hour() -> datetime:
    """Start of an hour well inside the minute tier's retention."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture
def dataset(conninfo: str, hour: datetime) -> Filters:
    rows = [  # version, deployment, gpu, status, batch, inference_ms, total_ms, error
        *[("v1", "stable", L4, "ok", 2, 360_000.0, t, None) for t in (100.0, 200.0, 300.0, 400.0)],
        ("v2", "canary", H100, "error", 1, 720_000.0, 1000.0, "CUDA out of memory. 2 GiB"),
        ("v2", "canary", H100, "ok", 1, 720_000.0, 500.0, None),
    ]
    with psycopg.connect(conninfo) as conn:
        for i, (v, dep, gpu, status, batch, inf, total, err) in enumerate(rows):
            conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
                " batch_size, queue_ms, inference_ms, total_ms, gpu_type, deployment, error)"
                " VALUES (%s, %s, 'm', %s, 'p', %s, %s, 10, %s, %s, %s, %s, %s)",
                (f"r{i}", hour + timedelta(minutes=5 + 10 * i), v, status, batch, inf, total, gpu,
                 dep, err),
            )  # fmt: skip
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " SELECT id, 'clip', 'c', id / 10.0 + 0.1, NULL FROM generations"
            " WHERE model_version = 'v1' UNION ALL"
            " SELECT id, 'nsfw', 'n', NULL, status = 'error' FROM generations"
            " WHERE model_version = 'v2'"
        )
        conn.execute(
            "INSERT INTO gpu_samples (ts, host, gpu_index, gpu_name, util_pct, mem_used_mib,"
            " mem_total_mib, power_w, source)"
            " SELECT %(h)s + make_interval(mins => i), 'a', 0, %(l4)s, 50, 1000, 4000, 100, 't'"
            " FROM generate_series(0, 59) i UNION ALL"
            " SELECT %(h)s + make_interval(mins => i), 'b', 0, %(h100)s, 0, 0, 80000, 70, 't'"
            " FROM generate_series(0, 29) i",
            {"h": hour, "l4": L4, "h100": H100},
        )
        dc.set_gpu_price(conn, L4, 0.80)
        dc.set_gpu_price(conn, H100, 3.00)
        conn.commit()
        refresh(conn)
    return Filters(hour, hour + timedelta(hours=1))


@pytest.mark.parametrize("width", [60, 3600])
def test_kpis_and_previous_period(conninfo, dataset, width) -> None:
    f = replace(dataset, width_s=width)
    with psycopg.connect(conninfo) as conn:
        cur, prev = d.kpis_with_previous(conn, f)
    assert (cur.requests, cur.images, cur.errors) == (6, 9, 1)
    assert cur.error_rate == approx(1 / 6)
    assert cur.p50_ms == pytest.approx(300, rel=ALPHA)
    assert cur.p95_ms == pytest.approx(1000, rel=ALPHA)
    assert cur.gpu_hours == approx(0.8)
    assert cur.cost_usd == approx(0.4 * 0.8 + 0.4 * 3.0)
    assert cur.cost_per_image_usd == approx(1.52 / 9)
    assert cur.unpriced_gpu_hours == 0
    assert cur.clip_mean == approx(0.35)  # ids 1-4 → 0.2, 0.3, 0.4, 0.5
    assert cur.nsfw_rate == approx(0.5)
    assert cur.scored == 6
    assert (prev.requests, prev.p50_ms, prev.cost_usd, prev.error_rate) == (0, None, None, None)


def test_latency_throughput_errors_cost(conninfo, dataset) -> None:
    with psycopg.connect(conninfo) as conn:
        lat = d.latency(conn, dataset, "total", by="version", over_time=False)
        thr = d.throughput(conn, dataset)
        thr_v = d.throughput(conn, replace(dataset, width_s=60))
        canary = d.throughput(conn, replace(dataset, deployments=("canary",)))
        errors = d.errors_by_kind(conn, dataset)
        cost = dc.cost_by(conn, dataset, by="version")
        by_gpu = dc.cost_by(conn, dataset, by="gpu_type")
        conn.execute("DELETE FROM gpu_prices WHERE gpu_type = %s", (L4,))
        unpriced = dc.cost_by(conn, dataset, by="gpu_type")
    assert [(p.group, p.n) for p in lat] == [("m/v1", 4), ("m/v2", 2)]
    assert lat[0].p50_ms == pytest.approx(200, rel=ALPHA)
    assert lat[0].p99_ms == pytest.approx(400, rel=ALPHA)
    assert lat[0].mean_ms == approx(250)
    assert lat[1].p50_ms == pytest.approx(500, rel=ALPHA)
    # Minute resolution for a 1 h range: one point per request's minute.
    assert {p.step_s for p in thr} == {60}
    assert sum(p.requests for p in thr) == 6 == len(thr)
    assert thr_v == thr
    assert sum(p.requests for p in canary) == 2
    assert sum(p.errors for p in canary) == 1
    assert [(e.kind, e.errors) for e in errors] == [("CUDA out of memory", 1)]
    assert errors[0].share_of_requests == approx(1 / 6)
    assert [(c.group, c.images) for c in cost] == [("m/v2", 1), ("m/v1", 8)]
    assert cost[0].cost_usd == approx(1.2) and cost[0].cost_per_image_usd == approx(1.2)
    assert cost[1].cost_usd == approx(0.32) and cost[1].cost_per_image_usd == approx(0.04)
    assert {c.group: c.gpu_hours for c in by_gpu} == {H100: approx(0.4), L4: approx(0.4)}
    l4 = next(c for c in unpriced if c.group == L4)
    assert (l4.cost_usd, l4.unpriced_gpu_hours) == (None, approx(0.4))


def test_gpu_fleet_and_quality(conninfo, dataset) -> None:
    with psycopg.connect(conninfo) as conn:
        hosts = dc.gpu_hosts(conn, dataset)
        over = dc.gpu_hosts(conn, dataset, hosts=("a",), over_time=True)
        fleet = dc.fleet_cost(conn, dataset)
        quality = dc.quality_trend(conn, dataset, by="version", over_time=False)
    a, b = hosts
    assert (a.host, a.gpus, a.util_mean_pct, a.idle_share, a.observed_gpu_hours) == (
        "a", 1, 50.0, 0.0, 1.0,
    )  # fmt: skip
    assert (a.mem_used_mean_mib, a.mem_used_pct, a.power_mean_w) == (1000.0, 25.0, 100.0)
    assert (b.host, b.util_mean_pct, b.idle_share, b.observed_gpu_hours) == ("b", 0.0, 1.0, 0.5)
    assert len(over) == 60 and {p.host for p in over} == {"a"}
    by_type = {r.gpu_type: r for r in fleet}
    assert by_type[L4].held_gpu_hours == 1.0 and by_type[L4].cost_usd == approx(0.8)
    assert by_type[L4].cost_per_image_usd == approx(0.1)
    assert by_type[H100].cost_usd == approx(1.5) and by_type[H100].idle_share == 1.0
    assert by_type[H100].busy_gpu_hours == approx(0.4)
    assert [(q.group, q.clip_n, q.nsfw_n) for q in quality] == [("m/v1", 4, 0), ("m/v2", 0, 2)]
    assert quality[0].clip_mean == approx(0.35) and quality[0].nsfw_rate is None
    assert quality[1].nsfw_rate == approx(0.5) and quality[1].clip_mean is None


def test_empty_database(conninfo) -> None:
    now = datetime.now(UTC)
    f = Filters(now - timedelta(days=7), now)
    with psycopg.connect(conninfo) as conn:
        refresh(conn)
        k = d.kpis(conn, f)
        assert (k.requests, k.images, k.p50_ms, k.cost_usd, k.clip_mean, k.error_rate) == (
            0, 0, None, None, None, None,
        )  # fmt: skip
        assert d.latency(conn, f, by="version") == []
        assert d.throughput(conn, f) == []
        assert d.errors_by_kind(conn, f) == []
        assert dc.cost_by(conn, f) == []
        assert dc.fleet_cost(conn, f) == []
        assert dc.gpu_hosts(conn, f) == []
        assert dc.quality_trend(conn, f) == []
