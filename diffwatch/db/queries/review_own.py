"""SQL of what one rater may read about their own work: counts, means, their ratings.

Every function takes the rater's username and reads nothing of anyone else's ratings; the
My ratings page passes the logged-in username, never one from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from diffwatch.db.queries.review import _rater


@dataclass(frozen=True, slots=True)
class RaterSummary:
    """One rater's own counts (UTC days) and mean scores (1–5; None without ratings)."""

    today: int  # ratings since 00:00 UTC
    last_7d: int  # ratings in the last 7 × 24 hours
    total: int
    mean_quality: float | None
    mean_adherence: float | None


@dataclass(frozen=True, slots=True)
class OwnRating:
    """One of a rater's own ratings, with the prompt it was about (untrusted text)."""

    rated_at: datetime
    item_id: int
    prompt: str
    quality: int
    adherence: int
    flags: tuple[str, ...]
    comment: str | None


def rater_summary(conn: psycopg.Connection, rater_username: str) -> RaterSummary:
    """Counts and means of this rater's own ratings (nobody else's)."""
    rater = _rater(rater_username)
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE rated_at >= date_trunc('day', now() AT TIME ZONE 'UTC')"
        "        AT TIME ZONE 'UTC'),"
        " count(*) FILTER (WHERE rated_at >= now() - interval '7 days'),"
        " count(*), avg(quality)::float8, avg(adherence)::float8"
        " FROM review_ratings WHERE rater_username = %s",
        (rater,),
    ).fetchone()
    assert row is not None
    return RaterSummary(row[0], row[1], row[2], row[3], row[4])


def rater_ratings(
    conn: psycopg.Connection, rater_username: str, limit: int = 50
) -> list[OwnRating]:
    """This rater's own latest ``limit`` ratings, newest first, with each item's prompt."""
    rater = _rater(rater_username)
    rows = conn.execute(
        "SELECT r.rated_at, r.item_id, g.prompt, r.quality, r.adherence, r.flags, r.comment"
        " FROM review_ratings r JOIN review_items i ON i.id = r.item_id"
        " JOIN generations g ON g.id = i.generation_id"
        " WHERE r.rater_username = %s ORDER BY r.rated_at DESC, r.id DESC LIMIT %s",
        (rater, limit),
    ).fetchall()
    return [OwnRating(r[0], r[1], r[2], r[3], r[4], tuple(r[5] or ()), r[6]) for r in rows]


def open_items(conn: psycopg.Connection) -> int:
    """How many items still wait for ratings (open, leased or not)."""
    row = conn.execute("SELECT count(*) FROM review_items WHERE done_at IS NULL").fetchone()
    return int(row[0]) if row else 0
