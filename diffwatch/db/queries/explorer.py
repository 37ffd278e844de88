"""Generation explorer: find generations by request_id or prompt text, and show one.

Reads raw rows (one generation and its scores), not rollups. Prompt text is untrusted user
input: it is returned as plain ``str`` and never turned into HTML here; the search text is
passed as a bound parameter, with LIKE's wildcards escaped so that ``%``, ``_`` and ``\\``
match themselves. See docs/dashboard-queries.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

import psycopg

from diffwatch.model.filters import Filters

Match = Literal["request_id", "prompt", "recent"]
MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class GenerationHit:
    """One search result: enough to list it; ``match`` says how it was found."""

    id: int
    request_id: str
    ts: datetime
    model: str
    model_version: str
    deployment: str | None
    status: str
    prompt: str
    image_uri: str | None
    total_ms: float | None
    match: Match


@dataclass(frozen=True, slots=True)
class Generation:
    """Every logged column of one generation (times in ms, as logged)."""

    id: int
    request_id: str
    ts: datetime
    model: str
    model_version: str
    prompt: str
    status: str
    negative_prompt: str | None
    sampler: str | None
    steps: int | None
    cfg_scale: float | None
    seed: int | None
    width: int | None
    height: int | None
    batch_size: int | None
    queue_ms: float | None
    inference_ms: float | None
    total_ms: float | None
    gpu_type: str | None
    host: str | None
    gpu_index: int | None
    image_uri: str | None
    error: str | None
    user_id: str | None
    deployment: str | None
    extra: dict[str, Any]
    source: str | None
    source_offset: int | None
    ingested_at: datetime


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One scorer's result for the generation, with its details JSON."""

    scorer: str
    scorer_version: str
    value: float | None
    flagged: bool | None
    details: dict[str, Any]
    worker: str | None
    scored_at: datetime


@dataclass(frozen=True, slots=True)
class ScoringErrorRow:
    """Why a scorer could not score the generation's image, and how often it tried."""

    scorer: str
    scorer_version: str
    kind: str
    reason: str
    transient: bool
    attempts: int
    last_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class RatingRow:
    """One rater's rating of a generation: quality and prompt adherence, 1-5 each."""

    rated_at: datetime
    rater: str
    quality: int
    adherence: int
    flags: list[str]
    comment: str | None


@dataclass(frozen=True, slots=True)
class ReviewState:
    """Why a generation is in the review queue, and its ratings so far against those due."""

    reasons: list[str]
    n_ratings: int
    required_ratings: int


@dataclass(frozen=True, slots=True)
class GenerationDetail:
    """One generation with its scores, scoring errors, review state and human ratings."""

    generation: Generation
    scores: tuple[ScoreRow, ...]
    scoring_errors: tuple[ScoringErrorRow, ...]
    review: ReviewState | None = None  # None: never queued for review
    ratings: tuple[RatingRow, ...] = ()


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards and backslashes escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filter_sql(f: Filters) -> tuple[str, dict[str, Any]]:
    conds = ["ts >= %(start)s", "ts < %(end)s"]
    params: dict[str, Any] = {"start": f.start, "end": f.end}
    for col, expr, values in (
        ("models", "model", f.models),
        ("versions", "model_version", f.versions),
        ("deployments", "coalesce(deployment, '')", f.deployments),
        ("gpu_types", "coalesce(gpu_type, '')", f.gpu_types),
    ):
        if values:
            conds.append(f"{expr} = ANY(%({col})s)")
            params[col] = list(values)
    return " AND ".join(conds), params


_HIT_COLS = (
    "id, request_id, ts, model, model_version, deployment, status, prompt, image_uri, total_ms"
)


def search(
    conn: psycopg.Connection, text: str, filters: Filters, limit: int = 50
) -> list[GenerationHit]:
    """Generations whose request_id is ``text`` (first, whatever the filters), then those
    whose prompt contains it (case-insensitive) within the filters, newest first.

    An empty ``text`` lists the newest generations within the filters. ``limit`` is capped
    at MAX_LIMIT rows.
    """
    q = text.replace("\x00", "").strip()  # PostgreSQL text cannot hold NUL
    n = max(0, min(int(limit), MAX_LIMIT))
    cond, params = _filter_sql(filters)
    params |= {"q": q, "pattern": like_pattern(q), "n": n}
    if not q:
        rows = conn.execute(
            f"SELECT {_HIT_COLS}, 'recent' FROM generations WHERE {cond}"
            " ORDER BY ts DESC, id DESC LIMIT %(n)s",
            params,
        )
    else:
        # Exact request_id first (the unique index), then prompt substrings: ILIKE with a
        # leading wildcard can use the GIN trigram index of migration 0004.
        rows = conn.execute(
            f"(SELECT {_HIT_COLS}, 'request_id' AS m, 0 AS r FROM generations"
            " WHERE request_id = %(q)s)"
            f" UNION ALL (SELECT {_HIT_COLS}, 'prompt', 1 FROM generations"
            f" WHERE prompt ILIKE %(pattern)s AND request_id <> %(q)s AND {cond}"
            " ORDER BY ts DESC, id DESC LIMIT %(n)s)"
            " ORDER BY r, ts DESC, id DESC LIMIT %(n)s",
            params,
        )
    return [GenerationHit(*row[:11]) for row in rows]


_GEN_COLS = ", ".join(f.name for f in fields(Generation))


def generation_detail(conn: psycopg.Connection, generation_id: int) -> GenerationDetail | None:
    """One generation's columns, scorer results, scoring errors and review; None if no id."""
    row = conn.execute(
        f"SELECT {_GEN_COLS} FROM generations WHERE id = %s", (generation_id,)
    ).fetchone()
    if row is None:
        return None
    scores = tuple(
        ScoreRow(*r)
        for r in conn.execute(
            "SELECT scorer, scorer_version, value, flagged, details, worker, scored_at"
            " FROM scorer_results WHERE generation_id = %s ORDER BY scorer, scorer_version",
            (generation_id,),
        )
    )
    errors = tuple(
        ScoringErrorRow(*r)
        for r in conn.execute(
            "SELECT scorer, scorer_version, kind, reason, transient, attempts, last_attempt_at"
            " FROM scoring_errors WHERE generation_id = %s ORDER BY scorer, scorer_version",
            (generation_id,),
        )
    )
    item = conn.execute(
        "SELECT id, reasons, n_ratings, required_ratings FROM review_items"
        " WHERE generation_id = %s ORDER BY id DESC LIMIT 1",
        (generation_id,),
    ).fetchone()
    review, ratings = None, ()
    if item is not None:
        review = ReviewState(*item[1:])
        ratings = tuple(
            RatingRow(*r)
            for r in conn.execute(
                "SELECT rated_at, rater_username, quality, adherence, flags, comment"
                " FROM review_ratings WHERE item_id = %s ORDER BY rated_at, id",
                (item[0],),
            )
        )
    return GenerationDetail(Generation(*row), scores, errors, review, ratings)
