"""Read-only SQL behind the rating analytics (``diffwatch.analytics.ratings``,
``diffwatch.analytics.agreement``).

Every query takes a time range ``[start, end)`` on ``review_ratings.rated_at`` and an
optional list of model versions (``generations.model_version``); per-item queries aggregate
only the ratings inside the range. Automatic scores are the *latest* result per generation
and scorer (``scored_at``, then ``id``), as the review queue itself reads them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg

from diffwatch.model.filters import Filters

FIELDS = ("quality", "adherence")


class RatingRow(NamedTuple):
    """One rating with its item's generation (``ts``: generation time)."""

    item_id: int
    generation_id: int
    rater_username: str
    quality: int  # 1..5
    adherence: int  # 1..5
    flags: list[str]
    rated_at: datetime
    model_version: str
    ts: datetime


class ClipItemRow(NamedTuple):
    """Per rated item: its CLIP score (0..100, None if unscored) and mean human adherence."""

    item_id: int
    generation_id: int
    model_version: str
    clip: float | None
    mean_adherence: float  # 1..5
    n_ratings: int


class NsfwItemRow(NamedTuple):
    """Per rated item: its NSFW score (0..1) and flag, and whether any rater flagged nsfw."""

    item_id: int
    generation_id: int
    model_version: str
    nsfw_score: float | None
    nsfw_flagged: bool | None  # None: not scored for NSFW
    nsfw_scorer_version: str | None
    human_nsfw: bool
    n_ratings: int


def _where(versions: Sequence[str] | None) -> str:
    """The shared WHERE clause over ``rr`` (ratings) and ``g`` (generations)."""
    clause = "rr.rated_at >= %(start)s AND rr.rated_at < %(end)s"
    if versions is not None:
        clause += " AND g.model_version = ANY(%(versions)s)"
    return clause


def _params(start: datetime, end: datetime, versions: Sequence[str] | None) -> dict:
    """Query parameters; naive datetimes are refused (rated_at is timestamptz)."""
    for name, ts in (("start", start), ("end", end)):
        if ts.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (rated_at is UTC), got {ts!r}")
    if end <= start:
        raise ValueError(f"empty time range: end {end} is not after start {start}")
    return {"start": start, "end": end, "versions": list(versions or [])}


_JOIN = """
    FROM review_ratings rr
    JOIN review_items i ON i.id = rr.item_id
    JOIN generations g ON g.id = i.generation_id
"""


def ratings(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    versions: Sequence[str] | None = None,
    reason: str | None = None,
) -> list[RatingRow]:
    """All ratings in ``[start, end)``, oldest first, with the generation's model version.

    ``reason`` keeps only items queued for that reason (``"random"``: the unbiased sample),
    whatever other reasons they also carry.
    """
    where = _where(versions)
    if reason is not None:
        where += " AND %(reason)s = ANY(i.reasons)"
    rows = conn.execute(
        "SELECT rr.item_id, i.generation_id, rr.rater_username, rr.quality, rr.adherence,"
        " rr.flags, rr.rated_at, g.model_version, g.ts"
        f" {_JOIN} WHERE {where} ORDER BY rr.rated_at, rr.id",
        _params(start, end, versions) | {"reason": reason},
    ).fetchall()
    return [RatingRow(*r) for r in rows]


class ReasonCount(NamedTuple):
    """Rated items and ratings in the range that carry one queueing reason."""

    reason: str  # random, low_clip, nsfw_flagged, canary
    n_items: int
    n_ratings: int


def reason_counts(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    versions: Sequence[str] | None = None,
) -> list[ReasonCount]:
    """Per queueing reason, the items rated in the range and their ratings (an item with
    two reasons counts under both), most ratings first."""
    rows = conn.execute(
        "SELECT r.reason, count(DISTINCT rr.item_id)::int, count(*)::int"
        f" {_JOIN} CROSS JOIN LATERAL unnest(i.reasons) AS r(reason)"
        f" WHERE {_where(versions)} GROUP BY r.reason ORDER BY 3 DESC, 1",
        _params(start, end, versions),
    ).fetchall()
    return [ReasonCount(*r) for r in rows]


class HumanItemRow(NamedTuple):
    """One rated item of a generation in the page's filters, with its group's label."""

    group: str  # model version, or deployment ('' when the generation has none)
    item_id: int
    n_ratings: int
    mean_quality: float  # mean of its raters, 1..5
    mean_adherence: float  # 1..5
    human_nsfw: bool  # any rater flagged nsfw


def human_items(conn: psycopg.Connection, f: Filters, by: str = "version") -> list[HumanItemRow]:
    """Rated items of generations made in ``[f.start, f.end)`` that match ``f``'s model,
    version, deployment and GPU filters, grouped by ``by`` ("version" or "deployment").

    Unlike the other queries here the range is on the *generation* time (``g.ts``), so a
    version is judged on the images it made in the range, whenever they were rated.
    """
    if by not in ("version", "deployment"):
        raise ValueError(f"by: {by!r} is not one of version, deployment")
    group = "g.model_version" if by == "version" else "coalesce(g.deployment, '')"
    conds = ["g.ts >= %(start)s", "g.ts < %(end)s"]
    params: dict = {"start": f.start, "end": f.end}
    for col, values in (
        ("g.model", f.models),
        ("g.model_version", f.versions),
        ("coalesce(g.deployment, '')", f.deployments),
        ("coalesce(g.gpu_type, '')", f.gpu_types),
    ):
        if values:
            key = f"p{len(params)}"
            conds.append(f"{col} = ANY(%({key})s)")
            params[key] = list(values)
    rows = conn.execute(
        f"SELECT {group}, i.id, count(*)::int, avg(rr.quality)::float8,"
        " avg(rr.adherence)::float8, bool_or('nsfw' = ANY(rr.flags))"
        f" {_JOIN} WHERE {' AND '.join(conds)} GROUP BY 1, i.id ORDER BY 1, i.id",
        params,
    ).fetchall()
    return [HumanItemRow(*r) for r in rows]


def clip_adherence(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    versions: Sequence[str] | None = None,
) -> list[ClipItemRow]:
    """Per item rated in the range: latest CLIP score and the mean adherence of its ratings."""
    rows = conn.execute(
        "SELECT i.id, i.generation_id, g.model_version,"
        " (SELECT c.value FROM scorer_results c WHERE c.generation_id = g.id"
        "   AND c.scorer = 'clip' AND c.value IS NOT NULL"
        "   ORDER BY c.scored_at DESC, c.id DESC LIMIT 1),"
        " avg(rr.adherence)::float8, count(*)::int"
        f" {_JOIN} WHERE {_where(versions)}"
        " GROUP BY i.id, i.generation_id, g.id, g.model_version ORDER BY i.id",
        _params(start, end, versions),
    ).fetchall()
    return [ClipItemRow(*r) for r in rows]


def nsfw_human(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    versions: Sequence[str] | None = None,
) -> list[NsfwItemRow]:
    """Per item rated in the range: latest NSFW result, and whether any rater flagged nsfw."""
    rows = conn.execute(
        "SELECT i.id, i.generation_id, g.model_version, n.value, n.flagged, n.scorer_version,"
        " bool_or('nsfw' = ANY(rr.flags)), count(*)::int"
        f" {_JOIN}"
        " LEFT JOIN LATERAL (SELECT s.value, s.flagged, s.scorer_version FROM scorer_results s"
        "   WHERE s.generation_id = g.id AND s.scorer = 'nsfw'"
        "   ORDER BY s.scored_at DESC, s.id DESC LIMIT 1) n ON true"
        f" WHERE {_where(versions)}"
        " GROUP BY i.id, i.generation_id, g.model_version, n.value, n.flagged,"
        " n.scorer_version ORDER BY i.id",
        _params(start, end, versions),
    ).fetchall()
    return [NsfwItemRow(*r) for r in rows]


def agreement_triples(
    conn: psycopg.Connection,
    field: str,
    start: datetime,
    end: datetime,
    versions: Sequence[str] | None = None,
) -> list[tuple[int, str, int]]:
    """``(item_id, rater_username, value)`` of ``field`` ("quality" or "adherence").

    Every rating in the range is returned; ``krippendorff_alpha`` drops items rated once.
    """
    if field not in FIELDS:
        raise ValueError(f"field: {field!r} is not one of {', '.join(FIELDS)}")
    # field is checked against FIELDS above, so formatting it into the SQL is safe.
    rows = conn.execute(
        f"SELECT rr.item_id, rr.rater_username, rr.{field}"
        f" {_JOIN} WHERE {_where(versions)} ORDER BY rr.item_id, rr.rater_username",
        _params(start, end, versions),
    ).fetchall()
    return [tuple(r) for r in rows]


_THRESHOLD = re.compile(r"/t([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?:/|$)")


def threshold_from_version(scorer_version: str | None) -> float | None:
    """The NSFW threshold encoded in a scorer version (``nudenet-320n-…/t0.5/labels-…``).

    None when the version is None or carries no ``/t<number>`` part.
    """
    if scorer_version is None:
        return None
    m = _THRESHOLD.search(scorer_version)
    return float(m.group(1)) if m else None
