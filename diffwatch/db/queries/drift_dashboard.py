"""The Drift page's reads: drift runs over a time range, one run whole, a run's items.

Read-only. The drift checks write these tables through ``diffwatch/db/queries/drift.py``. Runs are
few (one a day or an hour per check), so the range listing reads ``drift_runs`` through its
(kind, started_at) index and aggregates each run's items with one lateral subquery; a run's
items are read by ``run_id``. Prompts, errors and URIs are untrusted text: they come back as
plain ``str`` and are never turned into HTML here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import psycopg

from diffwatch.model.filters import Filters

KINDS = ("prompts", "regenerate", "golden", "images")
OUTPUT_KINDS = ("regenerate", "golden")
MAX_RUNS = 1000
MAX_ITEMS = 5000


@dataclass(frozen=True, slots=True)
class DriftRunRow:
    """One drift run's headline figures (``summary`` only when read by ``drift_run``).

    ``alpha`` is the prompt or image test's significance level (from the summary, else the
    run's ``threshold``) and ``effect_size_name`` its effect measure; an image-drift run's
    ``statistic`` is its overall CMMD (× 1000); ``n_compared`` counts
    items compared with a reference (status ``ok``), ``mean_cosine`` is their mean CLIP
    image–image cosine (−1..1) and ``flagged_share`` the flagged share of them (0..1); each
    None when not known.
    """

    id: int
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    model: str | None
    reference_start: datetime | None
    reference_end: datetime | None
    current_start: datetime | None
    current_end: datetime | None
    baseline: str | None
    embedder: str | None
    pipeline: str | None
    demo: bool
    drifted: bool | None
    statistic: float | None
    p_value: float | None
    effect_size: float | None
    threshold: float | None
    n_reference: int | None
    n_current: int | None
    n_items: int
    n_flagged: int
    n_errors: int
    error: str | None
    worker: str | None
    alpha: float | None
    effect_size_name: str | None
    tolerance: float | None
    n_compared: int | None
    mean_cosine: float | None
    flagged_share: float | None
    summary: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DriftItemRow:
    """One re-generated prompt of a run: its parameters, scores and images.

    ``image_cosine`` is the CLIP image–image cosine (−1..1), ``clip_*`` CLIPScores (0..100),
    ``tolerance`` the allowed 1 − cosine. ``nsfw_flagged`` is the NSFW scorer's flag of the
    logged generation (None when it has none), so the page can blur its images.
    """

    id: int
    run_id: int
    item_key: str
    generation_id: int | None
    model_version: str | None
    prompt: str
    negative_prompt: str | None
    seed: int | None
    sampler: str | None
    steps: int | None
    cfg_scale: float | None
    width: int | None
    height: int | None
    status: str
    error_kind: str | None
    error: str | None
    image_cosine: float | None
    clip_reference: float | None
    clip_regen: float | None
    clip_delta: float | None
    tolerance: float | None
    flagged: bool | None
    reference_uri: str | None
    regen_uri: str | None
    details: dict[str, Any]
    nsfw_flagged: bool | None


def _num(path: str) -> str:
    """A number at a JSON path of ``r.summary``, NULL when absent or not a number."""
    return (
        f"CASE WHEN jsonb_typeof(r.summary #> '{path}') = 'number'"
        f" THEN (r.summary #>> '{path}')::float8 END"
    )


_RUN_COLS = ", ".join(f"r.{f.name}" for f in fields(DriftRunRow)[:26])


def _run_select(with_summary: bool) -> str:
    """The run columns, summary figures and item aggregates (and the summary itself)."""
    summary = ", r.summary" if with_summary else ""
    return f"""
    SELECT {_RUN_COLS},
           coalesce({_num("{test,alpha}")},
                    CASE WHEN r.kind = 'images' THEN {_num("{overall,alpha}")} END,
                    CASE WHEN r.kind IN ('prompts', 'images') THEN r.threshold END),
           CASE WHEN jsonb_typeof(r.summary #> '{{test,effect_size_name}}') = 'string'
                THEN r.summary #>> '{{test,effect_size_name}}'
                WHEN r.kind = 'images'
                 AND jsonb_typeof(r.summary #> '{{overall,effect_size_name}}') = 'string'
                THEN r.summary #>> '{{overall,effect_size_name}}' END,
           {_num("{tolerance}")},
           i.n_compared, i.mean_cosine,
           CASE WHEN i.n_compared > 0 THEN i.n_flagged::float8 / i.n_compared END{summary}
    FROM drift_runs r
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE d.status = 'ok') AS n_compared,
               avg(d.image_cosine) FILTER (WHERE d.status = 'ok') AS mean_cosine,
               count(*) FILTER (WHERE d.status = 'ok' AND d.flagged) AS n_flagged
        FROM drift_items d WHERE d.run_id = r.id AND r.kind <> 'prompts'
    ) i ON true
"""


def drift_runs(
    conn: psycopg.Connection, f: Filters, kinds: tuple[str, ...] = KINDS, limit: int = MAX_RUNS
) -> list[DriftRunRow]:
    """Runs of ``kinds`` started in [f.start, f.end), oldest first (at most ``limit``, the
    newest kept). A model filter keeps runs of those models and runs over every model."""
    params: dict[str, Any] = {
        "start": f.start,
        "end": f.end,
        "kinds": list(kinds),
        "n": max(0, min(int(limit), MAX_RUNS)),
    }
    cond = "r.kind = ANY(%(kinds)s) AND r.started_at >= %(start)s AND r.started_at < %(end)s"
    if f.models:
        cond += " AND (r.model IS NULL OR r.model = ANY(%(models)s))"
        params["models"] = list(f.models)
    rows = conn.execute(
        f"SELECT * FROM ({_run_select(False)} WHERE {cond} ORDER BY r.started_at DESC, r.id DESC"
        " LIMIT %(n)s) s ORDER BY started_at, id",
        params,
    ).fetchall()
    return [DriftRunRow(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class RunsOverview:
    """How many drift runs exist at all (any time), and when the newest started."""

    n_runs: int
    newest: datetime | None


def runs_overview(conn: psycopg.Connection) -> RunsOverview:
    """The number of drift runs ever stored and the newest start, to tell "none yet" from
    "none in this range"."""
    row = conn.execute("SELECT count(*), max(started_at) FROM drift_runs").fetchone()
    assert row is not None
    return RunsOverview(int(row[0]), row[1])


def drift_run(conn: psycopg.Connection, run_id: int) -> DriftRunRow | None:
    """One run with its full ``summary`` (a dict, {} when not a JSON object); None if gone."""
    row = conn.execute(f"{_run_select(True)} WHERE r.id = %s", (run_id,)).fetchone()
    if row is None:
        return None
    return DriftRunRow(*row[:-1], summary=row[-1] if isinstance(row[-1], dict) else {})


def drift_items(
    conn: psycopg.Connection, run_id: int, limit: int = MAX_ITEMS
) -> list[DriftItemRow]:
    """A run's items, flagged first, then errors, then by image cosine (lowest first)."""
    cols = ", ".join(f"d.{f.name}" for f in fields(DriftItemRow)[:-1])
    rows = conn.execute(
        f"""
        SELECT {cols},
               (SELECT bool_or(n.flagged) FROM scorer_results n
                 WHERE n.generation_id = d.generation_id AND n.scorer = 'nsfw')
        FROM drift_items d WHERE d.run_id = %(run)s
        ORDER BY d.flagged IS TRUE DESC, d.status = 'error' DESC,
                 d.image_cosine ASC NULLS LAST, d.item_key
        LIMIT %(n)s
        """,
        {"run": run_id, "n": max(0, min(int(limit), MAX_ITEMS))},
    ).fetchall()
    return [DriftItemRow(*r[:-2], r[-2] if isinstance(r[-2], dict) else {}, r[-1]) for r in rows]
