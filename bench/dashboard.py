"""Dashboard benchmark: page data from rollups against the same questions over raw rows.

Loads synthetic generations (generated inside PostgreSQL, ``diffwatch/db/queries/synthetic.py``)
over 30 days, a month of GPU samples (64 GPUs, one reading a minute) and scores for 2 % of the
generations into a scratch database; refreshes the rollups (timed); then, for each page,
times its query functions (rollups) over repeated runs and the raw-scan equivalents
(``diffwatch/db/queries/dashboard_raw.py``). It does this first at ``--rows / 10`` rows, then again
after loading the rest (a second refresh, incremental, with rows landing in old buckets).

Prints ONE JSON object on stdout; progress goes to stderr. Run ``python bench/dashboard.py -h``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import smoke  # noqa: E402
from bench.ingest import DEFAULT_ADMIN_URL, progress, scratch_database  # noqa: E402
from diffwatch.db import migrate  # noqa: E402
from diffwatch.db.engine import raw_conninfo  # noqa: E402
from diffwatch.db.queries import dashboard as d  # noqa: E402
from diffwatch.db.queries import dashboard_cost as dc  # noqa: E402
from diffwatch.db.queries import dashboard_raw, rollups, synthetic  # noqa: E402
from diffwatch.db.queries.dashboard_filters import Filters  # noqa: E402
from diffwatch.model.filters import DEFAULT_MINUTE_RETENTION  # noqa: E402

SCRATCH_DB = "diffwatch_bench_dash"
DAYS = 30
GOALS = {"p95_ms": 300.0, "speedup_vs_raw": 50.0, "growth_10x": 1.5}
CHUNK = 500_000  # rows per loading transaction


def pages(end: datetime) -> dict[str, Callable[[psycopg.Connection], Any]]:
    """Each page's data: the calls a Streamlit page makes, for the last 7 days."""
    week = Filters(end - timedelta(days=7), end)
    six_h = Filters(end - timedelta(hours=6), end)
    day = Filters(end - timedelta(days=1), end)
    return {
        "overview": lambda c: d.kpis_with_previous(c, week),
        "latency": lambda c: (
            d.latency(c, week, "total", by="version"),
            d.latency(c, week, "total", by="version", over_time=False),
        ),
        "throughput": lambda c: (d.throughput(c, six_h), d.throughput(c, week)),
        "errors": lambda c: (d.errors_by_kind(c, week), d.throughput(c, week, by="version")),
        "gpu": lambda c: (dc.gpu_hosts(c, week), dc.gpu_hosts(c, day, over_time=True)),
        "cost": lambda c: (
            dc.cost_by(c, week, "version"),
            dc.cost_by(c, week, "gpu_type"),
            dc.fleet_cost(c, week),
        ),
        "quality": lambda c: dc.quality_trend(c, week, by="version"),
    }


def _pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _ratio(x: float) -> float:
    return round(x, 1) if x >= 1 else round(x, 3)


def measure(conninfo: str, end: datetime, repeats: int, raw_repeats: int) -> dict[str, Any]:
    """Per page: rollup time p50/p95 (ms) over ``repeats`` runs, raw-scan time (ms)."""
    out: dict[str, Any] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name, page in pages(end).items():
            page(conn)  # warm the cache and the plan
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                page(conn)
                times.append((time.perf_counter() - t0) * 1000)
            raw = []
            for _ in range(raw_repeats):
                t0 = time.perf_counter()
                dashboard_raw.run_page(conn, name, end - timedelta(days=7), end)
                raw.append((time.perf_counter() - t0) * 1000)
            p95 = _pct(times, 0.95)
            out[name] = {
                "rollup_p50_ms": round(statistics.median(times), 2),
                "rollup_p95_ms": round(p95, 2),
                "raw_median_ms": round(statistics.median(raw), 1),
                # Below 1 (tiny data, where the raw scan wins) keep 3 decimals, not 0.0.
                "speedup_p95_vs_raw": _ratio(statistics.median(raw) / p95),
            }
            progress(f"  {name}: {out[name]}")
    return out


def load(conninfo: str, lo: int, hi: int, total: int, end: datetime, tag: str) -> float:
    """Load synthetic rows lo..hi-1 (and their scores) in chunks; seconds taken."""
    t0 = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        first = synthetic.max_id(conn) + 1
        for a in range(lo, hi, CHUNK):
            synthetic.add_generations(conn, a, min(hi, a + CHUNK), total, end, DAYS, tag)
            progress(f"  loaded {min(hi, a + CHUNK):,} / {total:,} generations")
        synthetic.add_scores(conn, first)
    return time.perf_counter() - t0


def refresh(conninfo: str) -> tuple[float, dict[str, int]]:
    """One refresh; (seconds, raw rows rolled up per table)."""
    t0 = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        res = rollups.refresh(conn, DEFAULT_MINUTE_RETENTION)
        conn.execute("ANALYZE")
    return time.perf_counter() - t0, res.rows


def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Load, refresh and measure at rows/10 and at rows; return the result object."""
    conninfo = raw_conninfo(url)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    small = max(1, args.rows // 10)
    # The small set is every 10th row of the full set's time line, so both span 30 days.
    result: dict[str, Any] = {
        "benchmark": "dashboard",
        "smoke": args.smoke,
        "rows": args.rows,
        "days": DAYS,
        "gpu_days": args.gpu_days,
    }
    t0 = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        synthetic.add_gpu_samples(conn, end, 0, round(args.gpu_days * 1440))
        gpu_rows = conn.execute("SELECT count(*) FROM gpu_samples").fetchone()[0]
    result["gpu_samples"] = {"rows": gpu_rows, "load_s": round(time.perf_counter() - t0, 1)}
    progress(f"loaded {gpu_rows:,} GPU samples")
    stages = []
    for label, lo, hi, total in (
        ("small", 0, small, small),
        ("full", 0, args.rows - small, args.rows - small),
    ):
        progress(f"[{label}] loading {hi - lo:,} generations")
        load_s = load(conninfo, lo, hi, total, end, label)
        progress(f"[{label}] refreshing rollups")
        refresh_s, rolled = refresh(conninfo)
        with psycopg.connect(conninfo) as conn:
            gens = conn.execute("SELECT count(*) FROM generations").fetchone()[0]
            sizes = dict(
                conn.execute(
                    "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname"
                    " IN ('generations', 'rollup_generations', 'rollup_gpu', 'rollup_quality',"
                    " 'rollup_errors', 'gpu_samples')"
                ).fetchall()
            )
            roll_rows = conn.execute("SELECT count(*) FROM rollup_generations").fetchone()[0]
        progress(f"[{label}] {gens:,} generations; measuring pages")
        stages.append(
            {
                "label": label,
                "generations": gens,
                "load_s": round(load_s, 1),
                "load_rows_per_s": round((hi - lo) / load_s),
                "refresh_s": round(refresh_s, 1),
                "refresh_rows": rolled,
                "rollup_generations_rows": roll_rows,
                "sizes_mb": {k: round(v / 1e6, 1) for k, v in sizes.items()},
                "pages": measure(conninfo, end, args.repeats, args.raw_repeats),
            }
        )
    result["stages"] = stages
    big, little = stages[-1]["pages"], stages[0]["pages"]
    worst_p95 = max(p["rollup_p95_ms"] for p in big.values())
    worst_speed = min(p["speedup_p95_vs_raw"] for p in big.values())
    growth = {k: round(big[k]["rollup_p95_ms"] / little[k]["rollup_p95_ms"], 2) for k in big}
    result["growth_p95_full_vs_small"] = growth
    result["goals"] = GOALS
    result["pass"] = {
        "p95_ms": worst_p95 <= GOALS["p95_ms"],
        "speedup_vs_raw": worst_speed >= GOALS["speedup_vs_raw"],
        "growth_10x": max(growth.values()) <= GOALS["growth_10x"],
    }
    result["worst"] = {"rollup_p95_ms": worst_p95, "speedup": worst_speed}
    expected = {"small": small, "full": args.rows}
    rolled_up = sum(st["refresh_rows"].get("generations", 0) for st in stages)
    checks = {
        # Each stage holds the rows it loaded, and the refreshes rolled every one up once.
        "generations_loaded": all(st["generations"] == expected[st["label"]] for st in stages),
        "every_generation_rolled_up": rolled_up == args.rows,
        "gpu_samples_rolled_up": stages[0]["refresh_rows"].get("gpu_samples") == gpu_rows,
        "every_page_measured": sorted(big) == sorted(little) == sorted(pages(end)),
    }
    result["correct"] = {**checks, "ok": all(checks.values())}
    with psycopg.connect(conninfo) as conn:
        result["postgres_version"] = conn.execute("SHOW server_version").fetchone()[0]
    result["cpu_count"] = os.cpu_count()
    return result


def smoke_sizes() -> dict[str, Any]:
    """``--smoke``: 2,000 generations, 6 h of GPU samples, few repeats, on the test server."""
    return {
        "rows": 2_000,
        "gpu_days": 0.25,
        "repeats": 3,
        "raw_repeats": 1,
        "admin_url": smoke.admin_url(),
        "db_name": smoke.scratch_name(SCRATCH_DB),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: scratch database, benchmark, one JSON object on stdout."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"Goals: every page's rollup data p95 <= {GOALS['p95_ms']} ms, >= "
        f"{GOALS['speedup_vs_raw']}x faster than the raw scan, and p95 at --rows <= "
        f"{GOALS['growth_10x']}x p95 at --rows/10.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=10_000_000, help="generations in the full set")
    p.add_argument("--repeats", type=int, default=20, help="timed runs of each page")
    p.add_argument("--raw-repeats", type=int, default=2, help="timed runs of each raw scan")
    p.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="server for the scratch db")
    p.add_argument(
        "--gpu-days", type=float, default=DAYS, help="days of GPU samples (64 GPUs, 1/min)"
    )
    p.add_argument("--db-name", default=SCRATCH_DB, help="name of the scratch database")
    p.add_argument("--keep-db", action="store_true", help="do not drop the scratch database")
    smoke.add_smoke(p)
    args = smoke.parse(p, argv, smoke_sizes())
    if args.rows < 100:
        raise SystemExit("--rows must be at least 100")
    if not 0 < args.gpu_days <= DAYS:
        raise SystemExit(f"--gpu-days must be in (0, {DAYS}], got {args.gpu_days}")
    t0 = time.perf_counter()
    with scratch_database(args.admin_url, args.db_name, args.keep_db) as url:
        migrate.upgrade(url)
        result = bench(args, url)
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["correct"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
