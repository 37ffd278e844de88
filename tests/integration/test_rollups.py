"""Rollups equal aggregates over raw rows, exactly once, under concurrency and late rows."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from diffwatch.db.queries import rollups
from diffwatch.db.queries.dashboard import latency
from diffwatch.model import histogram
from diffwatch.model.filters import DEFAULT_MINUTE_RETENTION, Filters

RETENTION = DEFAULT_MINUTE_RETENTION
KEYS = [
    ("sdxl", "v1", "stable", "NVIDIA H100 80GB HBM3"),
    ("sdxl", "v2", "canary", "NVIDIA H100 80GB HBM3"),
    ("sdxl", "v1", "stable", "NVIDIA A10G"),
    ("sd15", "v9", None, None),
]
ERRORS = ["CUDA out of memory. Tried 2.5 GiB", "timeout after 60000 ms waiting", None]


def insert_generations(conn: psycopg.Connection, n: int, seed: int, t0: datetime) -> None:
    """``n`` generations spread over the 3 hours before ``t0`` (no commit)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        model, version, dep, gpu = rng.choice(KEYS)
        ok = rng.random() > 0.1
        q = rng.choice([0.0, 0.5, rng.expovariate(1 / 80)])
        inf = rng.uniform(200, 9000) if ok or rng.random() < 0.5 else None
        rows.append(
            (
                f"r{seed}-{i}",
                t0 - timedelta(seconds=rng.uniform(0, 3 * 3600)),
                model,
                version,
                "p",
                "ok" if ok else "error",
                rng.choice([1, 2, 4, None]),
                q,
                inf,
                q + (inf or 0) + 20,
                gpu,
                dep,
                None if ok else rng.choice(ERRORS),
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
            " batch_size, queue_ms, inference_ms, total_ms, gpu_type, deployment, error)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def refresh(conninfo: str) -> rollups.RefreshResult:
    with psycopg.connect(conninfo) as conn:
        return rollups.refresh(conn, RETENTION)


def raw_vs_rollup(sql, width: int) -> None:
    """Per hour/minute bucket and model/version: counts and sums equal, p95 within ALPHA."""
    raw = sql(
        "SELECT date_bin(make_interval(secs => %s), ts, 'epoch'::timestamptz) b, model,"
        " model_version, count(*), count(*) FILTER (WHERE status = 'error'),"
        " coalesce(sum(coalesce(batch_size, 1)) FILTER (WHERE status = 'ok'), 0),"
        " count(inference_ms), coalesce(sum(inference_ms), 0), coalesce(sum(total_ms), 0),"
        " percentile_disc(0.95) WITHIN GROUP (ORDER BY total_ms),"
        " percentile_disc(0.5) WITHIN GROUP (ORDER BY queue_ms)"
        " FROM generations GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        (width,),
    )
    roll = sql(
        "SELECT bucket, model, model_version, requests, errors, images, inference_n,"
        " inference_sum_ms, total_sum_ms, h_total, h_queue FROM rollup_generations"
        " WHERE width_s = %s AND lvl = 3 ORDER BY 1, 2, 3",
        (width,),
    )
    assert len(raw) == len(roll) > 0
    for r, o in zip(raw, roll, strict=True):
        assert r[:8] == (*o[:7], pytest.approx(o[7], rel=1e-9))
        assert r[8] == pytest.approx(o[8], rel=1e-9)
        (p95,) = histogram.quantiles(histogram.unpack(o[9]), (0.95,))
        (p50q,) = histogram.quantiles(histogram.unpack(o[10]), (0.5,))
        assert p95 == pytest.approx(r[9], rel=histogram.ALPHA)
        assert p50q == pytest.approx(r[10], rel=histogram.ALPHA) or (r[10] <= 1 and p50q == 0)


def test_rollups_equal_raw_aggregates_and_refresh_is_idempotent(conninfo, sql) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn:
        insert_generations(conn, 1500, 1, now)
    first = refresh(conninfo)
    assert first.rows["generations"] == 1500
    for width in (60, 3600):
        raw_vs_rollup(sql, width)
    # Every grouping level sums to the same grand total.
    levels = sql(
        "SELECT lvl, sum(requests), sum(errors), sum(images) FROM rollup_generations"
        " WHERE width_s = 3600 GROUP BY lvl ORDER BY lvl"
    )
    assert [lv for lv, *_ in levels] == [0, 1, 2, 3, 13, 14, 15]
    assert len({tuple(r[1:]) for r in levels}) == 1
    # Unknown deployment / GPU are '' and '*' is only ever the rolled-up marker.
    assert sql(
        "SELECT count(*) FROM rollup_generations WHERE lvl = 0 AND (deployment = '*'"
        " OR gpu_type = '*')"
    ) == [(0,)]
    errors = sql("SELECT kind, sum(n) FROM rollup_errors WHERE width_s = 3600 GROUP BY 1")
    raw_errors = sql("SELECT count(*) FROM generations WHERE status = 'error'")[0][0]
    assert sum(n for _, n in errors) == raw_errors
    assert {k for k, _ in errors} <= {
        "CUDA out of memory",
        "timeout after # ms waiting",
        "unknown",
    }
    # The dashboard's quantiles (merged in SQL) against percentile_disc over raw rows.
    f = Filters(now - timedelta(hours=4), now + timedelta(hours=1), width_s=3600)
    with psycopg.connect(conninfo) as conn:
        got = latency(conn, f, "total", by="version", over_time=False)
    raw = sql(
        "SELECT model || '/' || model_version, count(total_ms), percentile_disc(ARRAY[0.5,"
        " 0.95, 0.99]) WITHIN GROUP (ORDER BY total_ms) FROM generations"
        " WHERE ts >= date_bin('1 hour', %s::timestamptz, 'epoch') GROUP BY 1 ORDER BY 1",
        (f.start,),
    )
    assert [(p.group, p.n) for p in got] == [(g, n) for g, n, _ in raw]
    for p, (_, _, exact) in zip(got, raw, strict=True):
        assert [p.p50_ms, p.p95_ms, p.p99_ms] == pytest.approx(exact, rel=histogram.ALPHA)
    before = sql("SELECT * FROM rollup_generations ORDER BY 1, 2, 3, 4, 5, 6, 7")
    again = refresh(conninfo)
    assert again.rows == {"generations": 0, "gpu_samples": 0, "scorer_results": 0}
    assert sql("SELECT * FROM rollup_generations ORDER BY 1, 2, 3, 4, 5, 6, 7") == before


def test_sql_bins_match_python(sql) -> None:
    rng = random.Random(3)
    values = [0.0, 0.5, 1.0, 1.0000001, 2.0, 1e7, 5e7] + [
        10 ** rng.uniform(-1, 7.5) for _ in range(3000)
    ]
    got = sql("SELECT dw_hist_bin(v) FROM unnest(%s::float8[]) v", (values,))
    assert [g[0] for g in got] == [histogram.bin_of(v) for v in values]
    for v in values[7:]:
        if histogram.FLOOR_MS < v < histogram.CEIL_MS:
            rep = histogram.value_of(histogram.bin_of(v))
            assert abs(rep - v) <= histogram.ALPHA * v * (1 + 1e-12)
    merged = sql(
        "SELECT dw_hist_merge(dw_hist_pack(ARRAY[1, 5, 5, 7]), dw_hist_pack(ARRAY[5, 9, 1]))"
    )[0][0]
    assert histogram.unpack(merged) == {1: 2, 5: 3, 7: 1, 9: 1}
    assert merged == histogram.pack({1: 2, 5: 3, 7: 1, 9: 1})


def test_late_rows_land_in_their_old_buckets(conninfo, sql) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn:
        insert_generations(conn, 300, 2, now)
    refresh(conninfo)
    old = now - timedelta(days=5)  # older than the minute tier's retention
    with psycopg.connect(conninfo) as conn:
        insert_generations(conn, 200, 3, old)
    assert refresh(conninfo).rows["generations"] == 200
    raw_vs_rollup(sql, 3600)
    assert sql(
        "SELECT sum(requests) FROM rollup_generations WHERE width_s = 3600 AND lvl = 15"
        " AND bucket < %s",
        (now - timedelta(days=4),),
    ) == [(200,)]
    # Minute buckets exist only inside the retention window.
    assert sql(
        "SELECT count(*) FROM rollup_generations WHERE width_s = 60 AND bucket < %s",
        (now - RETENTION - timedelta(minutes=1),),
    ) == [(0,)]
    assert sql("SELECT sum(requests) FROM rollup_generations WHERE width_s = 60 AND lvl = 15") == [
        (300,)
    ]


def test_rows_committed_after_a_refresh_started_are_counted_once_later(conninfo, sql) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn:
        insert_generations(conn, 100, 4, now)
    # A writer inserts, stays open across a refresh, and commits afterwards. Its ids are
    # smaller than those of a writer that commits before the refresh: an id watermark
    # would skip its rows forever.
    slow = psycopg.connect(conninfo)
    insert_generations(slow, 150, 5, now)
    with psycopg.connect(conninfo) as conn:
        insert_generations(conn, 50, 6, now)
    during = refresh(conninfo)
    # The open writer holds the horizon back: the 50 committed after it wait with it.
    assert during.rows["generations"] == 100
    assert refresh(conninfo).rows["generations"] == 0  # still open: still nothing
    slow.commit()
    slow.close()
    after = refresh(conninfo)
    assert after.rows["generations"] == 200
    assert sql(
        "SELECT sum(requests) FROM rollup_generations WHERE width_s = 3600 AND lvl = 15"
    ) == [(300,)]
    raw_vs_rollup(sql, 3600)


def test_concurrent_writers_and_refreshers_lose_and_double_nothing(conninfo, sql) -> None:
    now = datetime.now(UTC)
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            with psycopg.connect(conninfo) as conn:
                for batch in range(15):
                    insert_generations(conn, 20, seed * 1000 + batch, now)
                    conn.commit()
        except BaseException as exc:
            failures.append(exc)

    def refresher() -> None:
        try:
            while not stop.is_set():
                refresh(conninfo)
        except BaseException as exc:
            failures.append(exc)

    writers = [threading.Thread(target=writer, args=(s,)) for s in (7, 8, 9)]
    refreshers = [threading.Thread(target=refresher) for _ in range(2)]
    for t in writers + refreshers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in refreshers:
        t.join()
    assert not failures
    refresh(conninfo)
    assert sql(
        "SELECT sum(requests) FROM rollup_generations WHERE width_s = 3600 AND lvl = 15"
    ) == [(900,)]
    raw_vs_rollup(sql, 60)
    assert sql("SELECT rows_total FROM rollup_state WHERE source = 'generations'") == [(900,)]


def test_gpu_and_quality_rollups_match_raw(conninfo, sql) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    with psycopg.connect(conninfo) as conn:
        insert_generations(conn, 60, 10, now)
        conn.execute(
            "INSERT INTO gpu_samples (ts, host, gpu_index, gpu_name, util_pct, mem_used_mib,"
            " mem_total_mib, power_w, source) SELECT %s + make_interval(secs => i * 20),"
            " 'h' || (i %% 2), 0, 'NVIDIA L4', (i * 7) %% 100, 1000 + i, 23000, 70 + i, 't'"
            " FROM generate_series(0, 359) i",
            (now,),
        )
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " SELECT id, 'clip', 'c1', id / 10.0, NULL FROM generations"
            " UNION ALL SELECT id, 'nsfw', 'n1', NULL, id % 3 = 0 FROM generations"
        )
    res = refresh(conninfo)
    assert res.rows == {"generations": 60, "gpu_samples": 360, "scorer_results": 120}
    assert sql(
        "SELECT host, sum(n), sum(util_sum), sum(idle_n), sum(bit_count(minutes::bit(64)))"
        " FROM rollup_gpu WHERE width_s = 3600 GROUP BY 1 ORDER BY 1"
    ) == sql(
        "SELECT host, count(*), sum(util_pct), count(*) FILTER (WHERE util_pct < 5),"
        " count(DISTINCT date_trunc('minute', ts)) FROM gpu_samples GROUP BY 1 ORDER BY 1"
    )
    q = sql(
        "SELECT model_version, sum(value_sum) / sum(value_n), sum(flagged_n)::float / sum(flag_n)"
        " FROM rollup_quality WHERE width_s = 3600 GROUP BY 1 ORDER BY 1"
    )
    raw = sql(
        "SELECT g.model_version, avg(s.value) FILTER (WHERE s.scorer = 'clip'),"
        " avg(s.flagged::int::float8) FILTER (WHERE s.scorer = 'nsfw') FROM scorer_results s"
        " JOIN generations g ON g.id = s.generation_id GROUP BY 1 ORDER BY 1"
    )
    assert [(v, pytest.approx(a), pytest.approx(b)) for v, a, b in raw] == q


def test_refresh_refuses_to_run_inside_a_transaction(conninfo) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute("SELECT 1")  # opens a transaction (psycopg is not autocommit)
        with pytest.raises(ValueError, match="outside any transaction"):
            rollups.refresh(conn, RETENTION)
