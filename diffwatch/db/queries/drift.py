"""SQL of the drift checks: read prompt windows and samples, store runs, items and baselines.

The jobs in ``diffwatch/drift/`` call these with a psycopg connection; the dashboard's
reads are in ``diffwatch/db/queries/drift_dashboard.py``. Runs are written in two steps
(``start_run``
then ``finish_run``) so that a crashed check leaves a visible ``running`` row with its
parameters instead of nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

PARAMS = ("prompt", "negative_prompt", "seed", "sampler", "steps", "cfg_scale", "width", "height")
_RUN_FIELDS = {
    "model", "reference_start", "reference_end", "current_start", "current_end", "baseline",
    "embedder", "pipeline", "demo", "drifted", "statistic", "p_value", "effect_size",
    "threshold", "n_reference", "n_current", "n_items", "n_flagged", "n_errors", "summary",
    "error", "worker", "status",
}  # fmt: skip
_ITEM_FIELDS = (
    "item_key", "generation_id", "model_version", *PARAMS, "status", "error_kind", "error",
    "image_cosine", "clip_reference", "clip_regen", "clip_delta", "tolerance", "flagged",
    "reference_uri", "regen_uri", "details",
)  # fmt: skip


def pg_seed(seed: int) -> float:
    """A run's integer seed as Postgres ``setseed`` takes it (in [-1, 1])."""
    return ((seed % 1000) / 1000.0) * 2 - 1


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - _RUN_FIELDS
    if unknown:
        raise ValueError(f"drift_runs has no column(s) {sorted(unknown)}")


def _adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


def start_run(conn: psycopg.Connection, kind: str, **fields: Any) -> int:
    """Insert a ``running`` drift run with its parameters; return its id (commits)."""
    _check_fields(fields)
    cols = ["kind", *fields]
    row = conn.execute(
        f"INSERT INTO drift_runs ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
        " RETURNING id",
        [kind, *(_adapt(v) for v in fields.values())],
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def finish_run(conn: psycopg.Connection, run_id: int, status: str, **fields: Any) -> None:
    """Set a run's outcome (``ok`` or ``failed``), figures and finish time (commits)."""
    _check_fields(fields)
    sets = ", ".join(f"{c} = %s" for c in fields)
    conn.execute(
        f"UPDATE drift_runs SET status = %s, finished_at = now(){', ' if sets else ''}{sets}"
        " WHERE id = %s",
        [status, *(_adapt(v) for v in fields.values()), run_id],
    )
    conn.commit()


def insert_items(conn: psycopg.Connection, run_id: int, items: Iterable[Mapping[str, Any]]) -> int:
    """Store per-prompt results of a run (keys of ``_ITEM_FIELDS``; missing ones are NULL).

    Idempotent per (run, item_key): a repeated key replaces the earlier row. Commits.
    """
    rows = [
        [run_id, *(_adapt(item.get(c, {} if c == "details" else None)) for c in _ITEM_FIELDS)]
        for item in items
    ]
    if not rows:
        return 0
    cols = ", ".join(("run_id", *_ITEM_FIELDS))
    marks = ", ".join(["%s"] * (len(_ITEM_FIELDS) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _ITEM_FIELDS if c != "item_key")
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO drift_items ({cols}) VALUES ({marks})"
            f" ON CONFLICT (run_id, item_key) DO UPDATE SET {updates}",
            rows,
        )
    conn.commit()
    return len(rows)


def newest_generation_ts(conn: psycopg.Connection, model: str | None = None) -> datetime | None:
    """The timestamp of the newest logged generation (of ``model``), or None when none."""
    row = conn.execute(
        "SELECT max(ts) FROM generations WHERE %(m)s::text IS NULL OR model = %(m)s",
        {"m": model},
    ).fetchone()
    return row[0] if row else None


def window_prompts(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    model: str | None,
    limit: int,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """A uniform random sample (at most ``limit``) of generations in [start, end): prompts
    and parameters. Every status counts: a failed request still says what users asked for.

    The same ``seed`` gives the same sample of the same rows (Postgres ``setseed``).
    """
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT setseed(%s)", [pg_seed(seed)])
        cur.execute(
            f"SELECT {', '.join(PARAMS)} FROM generations"
            " WHERE ts >= %(s)s AND ts < %(e)s AND (%(m)s::text IS NULL OR model = %(m)s)"
            " ORDER BY random() LIMIT %(n)s",
            {"s": start, "e": end, "m": model, "n": limit},
        )
        return list(cur.fetchall())


def save_prompt_baseline(
    conn: psycopg.Connection,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    model: str | None,
    window: tuple[datetime | None, datetime | None],
    run_id: int | None,
    replace: bool = False,
) -> None:
    """Pin ``rows`` (prompts and parameters) under ``name``; an existing name is an error
    unless ``replace``. Commits."""
    exists = conn.execute("SELECT 1 FROM drift_prompt_baselines WHERE name = %s", [name]).fetchone()
    if exists and not replace:
        raise ValueError(
            f"prompt baseline {name!r} already exists; fix: choose another name, or pass "
            "--replace-baseline to overwrite it"
        )
    conn.execute("DELETE FROM drift_prompt_baselines WHERE name = %s", [name])
    conn.execute(
        "INSERT INTO drift_prompt_baselines (name, model, window_start, window_end, n_prompts,"
        " run_id) VALUES (%s, %s, %s, %s, %s, %s)",
        [name, model, window[0], window[1], len(rows), run_id],
    )
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO drift_prompt_baseline_rows (name, seq, {', '.join(PARAMS)})"
            f" VALUES (%s, %s, {', '.join(['%s'] * len(PARAMS))})",
            [[name, i, *(r.get(c) for c in PARAMS)] for i, r in enumerate(rows)],
        )
    conn.commit()


def load_prompt_baseline(
    conn: psycopg.Connection, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(metadata, rows) of a pinned prompt baseline, or None when there is none by that name."""
    with conn.cursor(row_factory=dict_row) as cur:
        meta = cur.execute(
            "SELECT name, model, window_start, window_end, n_prompts, created_at"
            " FROM drift_prompt_baselines WHERE name = %s",
            [name],
        ).fetchone()
        if meta is None:
            return None
        rows = cur.execute(
            f"SELECT {', '.join(PARAMS)} FROM drift_prompt_baseline_rows WHERE name = %s"
            " ORDER BY seq",
            [name],
        ).fetchall()
    return dict(meta), [dict(r) for r in rows]


def prompt_baseline_names(conn: psycopg.Connection) -> list[str]:
    """Names of the pinned prompt baselines, newest first."""
    return [r[0] for r in conn.execute(
        "SELECT name FROM drift_prompt_baselines ORDER BY created_at DESC, name"
    )]  # fmt: skip


def regeneration_sample(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    model: str | None,
    n: int,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Up to ``n`` successful generations in [start, end) with a logged seed, stratified by
    model version: versions take turns (a random one of each, then a second of each…),
    so a version with little traffic is not crowded out by a busy one."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT setseed(%s)", [pg_seed(seed)])
        cur.execute(
            f"SELECT id, request_id, model, model_version, image_uri, {', '.join(PARAMS)}"
            " FROM (SELECT g.*, row_number() OVER (PARTITION BY g.model, g.model_version"
            "                                      ORDER BY random()) AS turn"
            "       FROM generations g"
            "       WHERE g.ts >= %(s)s AND g.ts < %(e)s AND g.status = 'ok'"
            "         AND g.seed IS NOT NULL AND (%(m)s::text IS NULL OR g.model = %(m)s)) s"
            " WHERE turn <= %(n)s ORDER BY turn, model, model_version LIMIT %(n)s",
            {"s": start, "e": end, "m": model, "n": n},
        )
        return [dict(r) for r in cur.fetchall()]


def golden_baselines(
    conn: psycopg.Connection, set_name: str, set_version: str
) -> dict[str, dict[str, Any]]:
    """The stored baselines of a golden set version, by item key."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM golden_baselines WHERE set_name = %s AND set_version = %s",
            [set_name, set_version],
        ).fetchall()
    return {r["item_key"]: dict(r) for r in rows}


_GOLDEN = (
    "set_name", "set_version", "item_key", "item_hash", *PARAMS, "image_uri", "clip_score",
    "repeat_cosine", "tolerance", "pipeline", "run_id",
)  # fmt: skip


def save_golden_baselines(conn: psycopg.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert or replace golden baselines (keys of ``_GOLDEN``). Commits."""
    if not rows:
        return 0
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _GOLDEN[3:])
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO golden_baselines ({', '.join(_GOLDEN)}, created_at)"
            f" VALUES ({', '.join(['%s'] * len(_GOLDEN))}, now())"
            f" ON CONFLICT (set_name, set_version, item_key) DO UPDATE SET {updates},"
            " created_at = now()",
            [[r.get(c) for c in _GOLDEN] for r in rows],
        )
    conn.commit()
    return len(rows)
