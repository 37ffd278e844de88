"""Ingest benchmark: `diffwatch collect logs` against raw COPY and executemany, same run.

Generates realistic generation-log records (JSON lines) in a temporary directory, then on one
PostgreSQL server, with the ingest tables truncated between variants, measures:

1. the real CLI, ``diffwatch collect logs FILE --json``, as a subprocess (wall clock, and
   the rows/s it reports itself);
2. raw psycopg binary ``COPY`` of the same rows straight into ``generations`` (rows built in
   memory before the clock starts: the database write only);
3. psycopg ``cursor.executemany`` ``INSERT`` of the same rows (a subset by default).

Prints ONE JSON object on stdout; progress goes to stderr. Run ``python bench/ingest.py -h``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_dumps
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python bench/ingest.py` from anywhere
    sys.path.insert(0, str(REPO))

from bench import smoke  # noqa: E402
from bench.records import generate  # noqa: E402
from diffwatch.db import migrate  # noqa: E402
from diffwatch.db.engine import normalise_url, raw_conninfo  # noqa: E402
from diffwatch.db.queries.ingest import COPY_COLUMNS, COPY_TYPES  # noqa: E402

GOALS = {"vs_copy": 0.6, "vs_executemany": 2.0}
DEFAULT_ADMIN_URL = smoke.DEFAULT_ADMIN_URL
SCRATCH_DB = "diffwatch_bench"
T = TypeVar("T")
# The tables the collector writes. Every table that references them (scores, leases, drift
# items, review items, ...) is emptied with them: TRUNCATE refuses to leave those behind.
INGEST_TABLES = ("generations", "rejected_records", "log_offsets", "collector_status")


def smoke_sizes() -> dict[str, Any]:
    """``--smoke``: 2,000 lines (1 % bad), one round, in a scratch database on the test
    server (never DIFFWATCH_DATABASE_URL's; an explicit --database-url still wins)."""
    return {
        "database_url": None,
        "records": 2_000,
        "bad_ratio": 0.01,
        "executemany_records": 500,
        "repeats": 1,
        "admin_url": smoke.admin_url(),
        "db_name": smoke.scratch_name(SCRATCH_DB),
    }


_DEPENDENTS = """
WITH RECURSIVE deps(rel) AS (
    SELECT c.oid FROM pg_class c
    WHERE c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace
    UNION
    SELECT con.conrelid FROM pg_constraint con JOIN deps ON con.confrelid = deps.rel
    WHERE con.contype = 'f'
)
SELECT relname FROM pg_class WHERE oid IN (SELECT rel FROM deps) ORDER BY relname
"""


# ---------------------------------------------------------------------------------------
# Database helpers
# ---------------------------------------------------------------------------------------
def progress(msg: str) -> None:
    """Progress for a person, on stderr (stdout carries only the JSON result)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def scratch_database(admin_url: str, name: str, keep: bool) -> Iterator[str]:
    """Create database ``name`` via ``admin_url``, yield its URL, drop it afterwards."""
    admin = raw_conninfo(admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    sa_url = normalise_url(
        make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    )
    try:
        yield sa_url
    finally:
        if keep:
            progress(f"kept scratch database {name}")
        else:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            progress(f"dropped scratch database {name}")


def truncated_tables(conninfo: str) -> list[str]:
    """The ingest tables and every table that references them, transitively: what
    ``reset`` empties (the schema decides, so new referencing tables are included)."""
    with psycopg.connect(conninfo) as conn:
        return [r[0] for r in conn.execute(_DEPENDENTS, (list(INGEST_TABLES),))]


def reset(conninfo: str) -> None:
    """Empty the ingest tables (and their dependents) and checkpoint, so every variant
    starts alike."""
    tables = sql.SQL(", ").join(sql.Identifier(t) for t in truncated_tables(conninfo))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(tables))
        # Flush dirty pages now, not during the next variant (needs superuser).
        with suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def count(conninfo: str, table: str) -> int:
    """Rows in ``table``."""
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()[0]


def _connect_fast(conninfo: str) -> psycopg.Connection:
    conn = psycopg.connect(conninfo)
    set_json_dumps(msgspec.json.encode, conn)  # the same JSON encoder the collector uses
    return conn


# ---------------------------------------------------------------------------------------
# The three variants
# ---------------------------------------------------------------------------------------
def run_collector(
    url: str, path: Path, batch_rows: int | None, python_args: Sequence[str] = ()
) -> dict[str, Any]:
    """``diffwatch collect logs PATH --json`` as a subprocess; wall clock and its summary.

    ``python_args`` go to the interpreter before ``-m diffwatch.cli`` (e.g. a profiler).
    """
    cmd = [
        sys.executable,
        *python_args,
        "-m",
        "diffwatch.cli",
        "collect",
        "logs",
        str(path),
        "--json",
        "--database-url",
        url,
    ]
    if batch_rows:
        cmd += ["--batch-rows", str(batch_rows)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DIFFWATCH_DATABASE_URL", None)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if out.returncode != 0:
        raise SystemExit(f"collector failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "summary": summary,
        "command": "python -m diffwatch.cli collect logs FILE --json"
        + (f" --batch-rows {batch_rows}" if batch_rows else ""),
    }


def run_copy(conninfo: str, rows: Sequence[tuple[Any, ...]]) -> tuple[float, float]:
    """Binary COPY of ``rows`` into generations in one transaction.

    Returns (wall seconds including the commit, CPU seconds of this process).
    """
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in COPY_COLUMNS)
    stmt = sql.SQL("COPY generations ({}) FROM STDIN (FORMAT BINARY)").format(cols)
    with _connect_fast(conninfo) as conn:
        c0, t0 = time.process_time(), time.perf_counter()
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            copy.set_types(COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - t0, time.process_time() - c0


def run_executemany(conninfo: str, rows: Sequence[tuple[Any, ...]]) -> float:
    """``cursor.executemany`` INSERT of ``rows`` in one transaction; seconds incl. commit."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in COPY_COLUMNS)
    marks = sql.SQL(", ").join(sql.Placeholder() * len(COPY_COLUMNS))
    stmt = sql.SQL("INSERT INTO generations ({}) VALUES ({})").format(cols, marks)
    xi = COPY_COLUMNS.index("extra")
    params = [(*r[:xi], Jsonb(r[xi]), *r[xi + 1 :]) for r in rows]  # wrapped before timing
    with _connect_fast(conninfo) as conn:
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(stmt, params)
        conn.commit()
        return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Prints one JSON object on stdout.",
        epilog=(
            "Database: --database-url or DIFFWATCH_DATABASE_URL points at an existing, "
            "migrated diffwatch database whose ingest tables are TRUNCATEd (refused if "
            "generations holds rows, unless --force-truncate). Without either, a scratch "
            f"database {SCRATCH_DB!r} is created through --admin-url, migrated, and dropped "
            "at the end. Goals: collector rows/s >= 0.6x raw COPY and >= 2x executemany."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--records", type=int, default=500_000, help="log lines to generate")
    p.add_argument(
        "--bad-ratio",
        type=float,
        default=0.001,
        help="fraction of lines made invalid (rejected by the collector)",
    )
    p.add_argument(
        "--extra-ratio",
        type=float,
        default=1.0,
        help="fraction of records carrying keys outside the contract (stored in extra)",
    )
    p.add_argument(
        "--executemany-records",
        type=int,
        default=50_000,
        help="rows for the executemany baseline (0: all good rows)",
    )
    p.add_argument(
        "--batch-rows",
        type=int,
        default=None,
        help="pass --batch-rows to the collector (unset: the CLI's own default)",
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("DIFFWATCH_DATABASE_URL"),
        help="existing diffwatch database [env: DIFFWATCH_DATABASE_URL] (unset: scratch database)",
    )
    p.add_argument(
        "--admin-url", default=DEFAULT_ADMIN_URL, help="server used to create the scratch database"
    )
    p.add_argument("--db-name", default=SCRATCH_DB, help="name of the scratch database")
    p.add_argument("--keep-db", action="store_true", help="do not drop the scratch database")
    p.add_argument(
        "--force-truncate",
        action="store_true",
        help="allow truncating a --database-url that already holds generations",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also break the collector's time down: parse_line alone over every line (no "
        "database), and the CLI run again under cProfile, its time grouped by stage",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds of the three variants (interleaved); medians are reported",
    )
    p.add_argument("--seed", type=int, default=20240514, help="random seed for the records")
    p.add_argument(
        "--workdir",
        default=None,
        help="parent of the temporary directory for the log file "
        "(unset: the system temp dir; removed at the end either way)",
    )
    smoke.add_smoke(p)
    return smoke.parse(p, argv, smoke_sizes())


def _median(items: Sequence[T], key: Callable[[T], float]) -> T:
    """The middle item by ``key`` (the lower middle for an even count)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def code_version() -> dict[str, Any]:
    """The git commit measured, and which collector/db files differ from it (if any)."""

    def git(*a: str) -> str:
        out = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.rstrip("\n")  # porcelain lines start with a significant space

    dirty = git(
        "status", "--porcelain", "--", "diffwatch/collectors", "diffwatch/db", "diffwatch/cli"
    )
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "uncommitted": [line[3:] for line in dirty.splitlines()],
    }


def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run the three variants against ``url``; return the result object."""
    conninfo = raw_conninfo(url)
    with tempfile.TemporaryDirectory(prefix="diffwatch-bench-", dir=args.workdir) as tmp:
        path = Path(tmp) / "gen.jsonl"
        progress(f"generating {args.records:,} records into {path}")
        t0 = time.perf_counter()
        gen = generate(path, args.records, args.bad_ratio, args.seed, progress, args.extra_ratio)
        good = len(gen.rows)
        progress(
            f"wrote {gen.nbytes / 1e6:.1f} MB ({good:,} good, {gen.bad} bad lines) "
            f"in {time.perf_counter() - t0:.1f} s"
        )

        with psycopg.connect(conninfo) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]

        n_em = good if args.executemany_records <= 0 else min(args.executemany_records, good)
        cols: list[dict[str, Any]] = []
        copies: list[tuple[float, float]] = []
        ems: list[float] = []
        counts: dict[str, list[int]] = {"generations": [], "rejected": [], "copy": [], "em": []}
        # Rounds interleave the variants, so that noise from other work on the machine
        # falls on all of them alike; medians are reported.
        for r in range(1, args.repeats + 1):
            rnd = f"[round {r}/{args.repeats}]"
            reset(conninfo)
            progress(f"{rnd} variant 1: diffwatch collect logs (subprocess)")
            col = run_collector(url, path, args.batch_rows)
            cols.append(col)
            counts["generations"].append(count(conninfo, "generations"))
            counts["rejected"].append(count(conninfo, "rejected_records"))
            progress(
                f"{rnd} collector: {col['wall_s']:.2f} s wall, {col['cpu_s']:.2f} s CPU, "
                f"reported {col['summary'].get('rows_per_s')} rows/s, stored "
                f"{counts['generations'][-1]:,} of {good:,}, rejected {counts['rejected'][-1]}"
            )

            reset(conninfo)
            progress(f"{rnd} variant 2: raw binary COPY of {good:,} rows")
            copies.append(run_copy(conninfo, gen.rows))
            counts["copy"].append(count(conninfo, "generations"))
            progress(f"{rnd} COPY: {copies[-1][0]:.2f} s")

            reset(conninfo)
            progress(f"{rnd} variant 3: executemany INSERT of {n_em:,} rows")
            ems.append(run_executemany(conninfo, gen.rows[:n_em]))
            counts["em"].append(count(conninfo, "generations"))
            progress(f"{rnd} executemany: {ems[-1]:.2f} s")

        col = _median(cols, key=lambda c: c["wall_s"])
        s = col["summary"]
        copy_s, copy_cpu = _median(copies, key=lambda c: c[0])
        em_s = _median(ems, key=float)
        correct = {
            "generations_count": counts["generations"],
            "rejected_records_count": counts["rejected"],
            "expected_good": good,
            "expected_bad": gen.bad,
            "copy_count": counts["copy"],
            "executemany_count": counts["em"],
            "ok": all(n == good for n in counts["generations"])
            and all(n == gen.bad for n in counts["rejected"])
            and all(c["summary"].get("ingested") == good for c in cols)
            and all(c["summary"].get("rejected") == gen.bad for c in cols)
            and all(n == good for n in counts["copy"])
            and all(n == n_em for n in counts["em"]),
        }

        extra: dict[str, Any] = {}
        if args.profile:
            from bench.collector_profile import breakdown

            extra["breakdown"] = breakdown(
                path,
                good,
                lambda py_args: run_collector(url, path, args.batch_rows, py_args),
                lambda: reset(conninfo),
                conninfo,
                args.batch_rows or 5000,
                progress,
            )
        reset(conninfo)

    col_rps = good / col["wall_s"]
    copy_rps = good / copy_s
    em_rps = n_em / em_s
    reported_rps = s.get("rows_per_s") or 0.0
    ratio_copy = col_rps / copy_rps
    ratio_em = col_rps / em_rps
    return {
        "benchmark": "ingest",
        "records": args.records,
        "good_records": good,
        "bad_lines": gen.bad,
        "bad_kinds": gen.bad_kinds,
        "extra_ratio": args.extra_ratio,
        "file_mb": round(gen.nbytes / 1e6, 1),
        "collector": {
            "seconds": round(col["wall_s"], 3),
            "runs_s": [round(c["wall_s"], 3) for c in cols],
            "cpu_s": round(col["cpu_s"], 3),
            "rows_per_s": round(col_rps),
            "reported_elapsed_s": s.get("elapsed_s"),
            "reported_rows_per_s": reported_rps,
            "command": col["command"],
            "note": "seconds/rows_per_s: wall clock of the whole subprocess (interpreter "
            "start, imports, schema check included); cpu_s: its user+system CPU seconds; "
            "reported_*: the CLI's own summary, which times the ingest pass only",
        },
        "copy": {
            "seconds": round(copy_s, 3),
            "runs_s": [round(c[0], 3) for c in copies],
            "client_cpu_s": round(copy_cpu, 3),
            "rows": good,
            "rows_per_s": round(copy_rps),
            "note": "one binary COPY into generations (indexes in place), one transaction, "
            "rows built in memory before timing; same columns, types and JSON encoder as "
            "the collector",
        },
        "executemany": {
            "seconds": round(em_s, 3),
            "runs_s": [round(e, 3) for e in ems],
            "rows": n_em,
            "subset": n_em < good,
            "rows_per_s": round(em_rps),
            "note": f"cursor.executemany INSERT of the first {n_em} rows, one transaction "
            "(psycopg 3 pipelines executemany)",
        },
        "ratio_vs_copy": round(ratio_copy, 3),
        "ratio_vs_executemany": round(ratio_em, 3),
        "ratio_vs_copy_reported": round(reported_rps / copy_rps, 3),
        # The ceiling: a collector as fast as raw COPY reaches this ratio vs executemany.
        "copy_vs_executemany": round(copy_rps / em_rps, 3),
        "ratio_vs_executemany_reported": round(reported_rps / em_rps, 3),
        "goals": GOALS,
        "pass": {
            "vs_copy": ratio_copy >= GOALS["vs_copy"],
            "vs_executemany": ratio_em >= GOALS["vs_executemany"],
        },
        "pass_basis": "ratios and pass: median wall-clock rows/s of each variant over the rounds",
        "correct": correct,
        "truncated_between_variants": truncated_tables(conninfo),
        "smoke": args.smoke,
        "postgres_version": pg_version,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "code": code_version(),
        **extra,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: set up the database, run the benchmark, print the JSON object."""
    args = parse_args(argv)
    if args.records < 1 or args.repeats < 1:
        raise SystemExit("--records and --repeats must be at least 1")
    if args.database_url:
        url = normalise_url(args.database_url)
        migrate.upgrade(url)  # no-op when already at head
        conninfo = raw_conninfo(url)
        held = {t: n for t in truncated_tables(conninfo) if (n := count(conninfo, t))}
        if held and not args.force_truncate:
            raise SystemExit(
                f"{args.database_url}: the benchmark TRUNCATEs tables that hold rows "
                f"({', '.join(f'{t}: {n}' for t, n in held.items())}); fix: use a scratch "
                "database (leave --database-url unset) or pass --force-truncate"
            )
        result = bench(args, url)
        result["database"] = "given (--database-url / DIFFWATCH_DATABASE_URL)"
    else:
        with scratch_database(args.admin_url, args.db_name, args.keep_db) as url:
            progress(f"migrating scratch database {args.db_name}")
            migrate.upgrade(url)
            result = bench(args, url)
            result["database"] = f"scratch {args.db_name} on {args.admin_url.split('@')[-1]}"
    print(json.dumps(result, indent=2))
    return 0 if result["correct"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
