"""SQL of the human review queue: enqueue by policy, lease to raters, store ratings and skips.

An item is leased to one rater at a time (``claim_next``, ``FOR UPDATE SKIP LOCKED``, with an
expiry) until it has its K ratings. A rating ends the rater's lease, so an item that needs
K = 2 goes to a second rater only after the first has rated it (or abandoned it and the
lease expired). One rating per (item, rater) is a unique constraint: a double submit is a
no-op. Raters are named by username (a snapshot that outlives the account); see
docs/review-queue.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from diffwatch.db.models_review import FLAGS
from diffwatch.db.queries.users import audit
from diffwatch.model.review_policy import REASONS, ReviewPolicy

COMMENT_MAX = 2000  # characters


class UnknownItem(LookupError):
    """No review item has this id (deleted with its generation, or never existed)."""


class RatingRefused(RuntimeError):
    """The item cannot take this rater's rating now: it is complete, or leased to another."""


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """An item leased to a rater, with what the rater needs to see.

    ``prompt`` and ``negative_prompt`` are untrusted text: render them as plain text only.
    """

    item_id: int
    generation_id: int
    reasons: tuple[str, ...]
    required_ratings: int
    n_ratings: int
    leased_at: datetime  # database clock, when the lease was granted
    lease_expires_at: datetime
    image_uri: str | None
    prompt: str
    negative_prompt: str | None
    model: str
    model_version: str
    parameters: dict[str, Any]  # sampler, steps, cfg_scale, seed, width, height
    nsfw_flagged: bool | None  # None: not scored for NSFW; True: blur until revealed


@dataclass(frozen=True, slots=True)
class QueueStats:
    """How far the queue has got: items, ratings, leases and items per reason."""

    open_items: int
    done_items: int
    leased_now: int  # open items under an unexpired lease
    ratings_missing: int  # sum of (K - ratings) over open items
    ratings: int
    multi_rated_items: int  # items with K > 1, for agreement
    open_by_reason: dict[str, int]
    done_by_reason: dict[str, int]


_CANDIDATES = """
WITH scored AS (
    SELECT g.id, g.ts, g.model_version, g.deployment,
           (SELECT c.value FROM scorer_results c
             WHERE c.generation_id = g.id AND c.scorer = 'clip' AND c.value IS NOT NULL
             ORDER BY c.scored_at DESC, c.id DESC LIMIT 1) AS clip,
           (SELECT bool_or(n.flagged) FROM scorer_results n
             WHERE n.generation_id = g.id AND n.scorer = 'nsfw') AS nsfw,
           coalesce(q.reasons, '{}'::text[]) AS queued
    FROM generations g LEFT JOIN review_items q ON q.generation_id = g.id
    WHERE g.ts >= %(start)s AND g.ts < %(end)s AND g.status = 'ok' AND g.image_uri IS NOT NULL
      AND EXISTS (SELECT 1 FROM scorer_results s WHERE s.generation_id = g.id)
),
cut AS (
    SELECT percentile_cont(%(q)s::float8) WITHIN GROUP (ORDER BY clip) AS v
    FROM scored WHERE clip IS NOT NULL
),
picks AS (
    -- Drawn from every scored generation, queued or not, so the sample stays unbiased;
    -- only items that already carry the reason are left out.
    (SELECT id, 'random' AS reason FROM (
        SELECT id, row_number() OVER (PARTITION BY model_version ORDER BY random()) AS rn
        FROM scored WHERE NOT 'random' = ANY(queued)) r
     WHERE rn <= %(random_n)s)
    UNION ALL
    (SELECT id, 'low_clip' FROM scored, cut
      WHERE clip < cut.v AND NOT 'low_clip' = ANY(queued)
      ORDER BY clip, id LIMIT %(low_max)s)
    UNION ALL
    (SELECT id, 'nsfw_flagged' FROM scored
      WHERE nsfw AND NOT 'nsfw_flagged' = ANY(queued)
      ORDER BY ts DESC, id DESC LIMIT %(nsfw_max)s)
    UNION ALL
    (SELECT id, 'canary' FROM scored
      WHERE deployment = 'canary' AND NOT 'canary' = ANY(queued)
      ORDER BY random() LIMIT %(canary_max)s)
)
SELECT id, array_agg(reason ORDER BY reason) FROM picks GROUP BY id ORDER BY id
"""

_INSERT = """
INSERT INTO review_items (generation_id, reasons, required_ratings)
SELECT gid, string_to_array(rs, ','), k
FROM unnest(%s::bigint[], %s::text[], %s::int[]) AS v(gid, rs, k)
ON CONFLICT (generation_id) DO UPDATE
SET reasons = ARRAY(SELECT DISTINCT x FROM unnest(review_items.reasons || EXCLUDED.reasons) x
                    ORDER BY 1)
"""


def enqueue(conn: psycopg.Connection, policy: ReviewPolicy, now: datetime) -> dict[str, int]:
    """Pick scored generations of the last ``policy.window_h`` hours before ``now`` for review.

    Returns, per reason, how many items newly carry it (new items, or reasons merged into
    items already queued). Running it again never queues a generation twice.
    """
    params = {
        "start": now - timedelta(hours=policy.window_h),
        "end": now,
        "q": policy.low_clip_quantile,
        "random_n": policy.random_per_version,
        "low_max": policy.low_clip_max if policy.low_clip_quantile > 0 else 0,
        "nsfw_max": policy.nsfw_flagged_max,
        "canary_max": policy.canary_max,
    }
    counts: Counter[str] = Counter({r: 0 for r in REASONS})
    with conn.transaction():
        picked = conn.execute(_CANDIDATES, params).fetchall()
        if picked:
            ids = [int(r[0]) for r in picked]
            conn.execute(
                _INSERT,
                (ids, [",".join(r[1]) for r in picked], [policy.required_ratings(i) for i in ids]),
            )
    for _, reasons in picked:
        counts.update(reasons)
    return dict(counts)


_CLAIM = """
WITH t AS (SELECT coalesce(%(now)s::timestamptz, now()) AS now),
pick AS (
    SELECT i.id FROM review_items i, t
    WHERE i.done_at IS NULL AND i.n_ratings < i.required_ratings
      AND (i.lease_username IS NULL OR i.lease_expires_at <= t.now
           OR i.lease_username = %(rater)s)
      AND NOT EXISTS (SELECT 1 FROM review_ratings r
                      WHERE r.item_id = i.id AND r.rater_username = %(rater)s)
      AND NOT EXISTS (SELECT 1 FROM review_skips s
                      WHERE s.item_id = i.id AND s.rater_username = %(rater)s)
    -- A rater who reloads the page gets back the item they already hold.
    ORDER BY (i.lease_username IS NOT DISTINCT FROM %(rater)s) DESC, i.created_at, i.id
    LIMIT 1
    FOR UPDATE OF i SKIP LOCKED
)
UPDATE review_items i
SET leased_to = %(rater_id)s, lease_username = %(rater)s,
    lease_expires_at = t.now + make_interval(secs => %(lease_s)s)
FROM pick, t, generations g
WHERE i.id = pick.id AND g.id = i.generation_id
RETURNING i.id, i.generation_id, i.reasons, i.required_ratings, i.n_ratings, clock_timestamp(),
          i.lease_expires_at, g.image_uri, g.prompt, g.negative_prompt, g.model,
          g.model_version, g.sampler, g.steps, g.cfg_scale, g.seed, g.width, g.height,
          (SELECT bool_or(n.flagged) FROM scorer_results n
            WHERE n.generation_id = g.id AND n.scorer = 'nsfw')
"""


def claim_next(
    conn: psycopg.Connection,
    rater_username: str,
    rater_id: int | None,
    lease_s: float,
    now: datetime | None = None,
) -> ClaimedItem | None:
    """Lease the oldest open item this rater may rate for ``lease_s`` seconds; None if none.

    ``now`` overrides the database clock (tests of lease expiry); leave it None in use.
    """
    rater = _rater(rater_username)
    if not lease_s > 0:
        raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
    with conn.transaction():
        row = conn.execute(
            _CLAIM,
            {"now": now, "rater": rater, "rater_id": rater_id, "lease_s": float(lease_s)},
        ).fetchone()
    if row is None:
        return None
    params = dict(
        zip(("sampler", "steps", "cfg_scale", "seed", "width", "height"), row[12:18], strict=True)
    )
    return ClaimedItem(
        item_id=row[0],
        generation_id=row[1],
        reasons=tuple(row[2]),
        required_ratings=row[3],
        n_ratings=row[4],
        leased_at=row[5],
        lease_expires_at=row[6],
        image_uri=row[7],
        prompt=row[8],
        negative_prompt=row[9],
        model=row[10],
        model_version=row[11],
        parameters=params,
        nsfw_flagged=row[18],
    )


def validate_rating(
    quality: int, adherence: int, flags: list[str] | tuple[str, ...], comment: str | None
) -> tuple[list[str], str | None]:
    """Check a rating before any SQL; return the sorted unique flags and the cleaned comment."""
    for name, value in (("quality", quality), ("adherence", adherence)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ValueError(f"{name} must be a whole number from 1 to 5, got {value!r}")
    if isinstance(flags, str):
        raise ValueError(f"flags must be a list of flag names, got the string {flags!r}")
    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise ValueError(
            f"unknown flag(s) {', '.join(map(repr, unknown))}; use any of {', '.join(FLAGS)}"
        )
    text = (comment or "").strip() or None
    if text is not None and len(text) > COMMENT_MAX:
        raise ValueError(
            f"comment is {len(text)} characters long; shorten it to at most {COMMENT_MAX}"
        )
    return sorted(set(flags)), text


def rate(
    conn: psycopg.Connection,
    item_id: int,
    rater_username: str,
    rater_id: int | None,
    quality: int,
    adherence: int,
    flags: list[str] | tuple[str, ...] = (),
    comment: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Store one rating; True if it is new, False if this rater had already rated the item.

    ``at`` is when the rating was made (timezone-aware, not in the future); None, the
    database clock, is what every real rater gets. The demo's simulated raters pass their
    own times, so their ratings spread over the day as people's would.

    Raises UnknownItem, or RatingRefused when the item already has its K ratings or is
    leased to another rater (this rater's lease expired and someone else took the item).
    """
    rater = _rater(rater_username)
    flag_list, text = validate_rating(quality, adherence, flags, comment)
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ValueError(f"at must be timezone-aware (rated_at is UTC), got {at!r}")
    with conn.transaction():
        item = conn.execute(
            "SELECT generation_id, done_at IS NOT NULL, lease_username,"
            " lease_expires_at > coalesce(%s::timestamptz, now()), n_ratings, required_ratings,"
            " %s::timestamptz > now()"
            " FROM review_items WHERE id = %s FOR UPDATE",
            (at, at, item_id),
        ).fetchone()
        if item is None:
            raise UnknownItem(f"review item {item_id} does not exist (its generation was deleted?)")
        generation_id, done, holder, unexpired, n, k, future = item
        if future:
            raise ValueError(f"at must not be in the future, got {at!r}")
        seen = conn.execute(
            "SELECT 1 FROM review_ratings WHERE item_id = %s AND rater_username = %s",
            (item_id, rater),
        ).fetchone()
        if seen:
            return False  # double submit: the first one counts
        if done:
            raise RatingRefused(
                f"review item {item_id} already has its {k} rating(s); "
                "your rating was not stored, take the next item"
            )
        if holder is not None and holder != rater and unexpired:
            raise RatingRefused(
                f"review item {item_id} is leased to another rater (your lease expired); "
                "your rating was not stored, take the next item"
            )
        conn.execute(
            "INSERT INTO review_ratings"
            " (item_id, rater_id, rater_username, quality, adherence, flags, comment, rated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s::timestamptz, now()))",
            (item_id, rater_id, rater, quality, adherence, flag_list, text, at),
        )
        conn.execute(
            "UPDATE review_items SET n_ratings = n_ratings + 1,"
            " done_at = CASE WHEN n_ratings + 1 >= required_ratings"
            " THEN coalesce(%s::timestamptz, now()) END,"
            " leased_to = NULL, lease_username = NULL, lease_expires_at = NULL"
            " WHERE id = %s",
            (at, item_id),
        )
        audit(
            conn,
            rater,
            "rating.add",
            f"item {item_id}",
            {
                "item_id": item_id,
                "generation_id": generation_id,
                "quality": quality,
                "adherence": adherence,
                "flags": flag_list,
                "n_ratings": n + 1,
                "required_ratings": k,
            },
        )
    return True


def skip(conn: psycopg.Connection, item_id: int, rater_username: str) -> bool:
    """Pass on an item: never serve it to this rater again, and end their lease on it.

    True if the skip is new. Other raters can still be served the item.
    """
    rater = _rater(rater_username)
    with conn.transaction():
        if (
            conn.execute(
                "SELECT 1 FROM review_items WHERE id = %s FOR UPDATE", (item_id,)
            ).fetchone()
            is None
        ):
            raise UnknownItem(f"review item {item_id} does not exist (its generation was deleted?)")
        new = conn.execute(
            "INSERT INTO review_skips (item_id, rater_username) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (item_id, rater),
        ).fetchone()
        _end_lease(conn, item_id, rater)
    return new is not None


def release(conn: psycopg.Connection, item_id: int, rater_username: str) -> bool:
    """Give an item back before the lease expires (rater logs out); True if they held it."""
    rater = _rater(rater_username)
    with conn.transaction():
        return _end_lease(conn, item_id, rater)


def queue_stats(conn: psycopg.Connection) -> QueueStats:
    """Counts of open and done items, leases, ratings, and items per reason."""
    with conn.transaction():
        head = conn.execute(
            "SELECT count(*) FILTER (WHERE done_at IS NULL),"
            " count(*) FILTER (WHERE done_at IS NOT NULL),"
            " count(*) FILTER (WHERE done_at IS NULL AND lease_expires_at > now()),"
            " coalesce(sum(required_ratings - n_ratings) FILTER (WHERE done_at IS NULL), 0),"
            " count(*) FILTER (WHERE required_ratings > 1)"
            " FROM review_items"
        ).fetchone()
        (ratings,) = conn.execute("SELECT count(*) FROM review_ratings").fetchone() or (0,)
        by_reason = conn.execute(
            "SELECT r, count(*) FILTER (WHERE done_at IS NULL),"
            " count(*) FILTER (WHERE done_at IS NOT NULL)"
            " FROM review_items, unnest(reasons) AS r GROUP BY r ORDER BY r"
        ).fetchall()
    assert head is not None
    return QueueStats(
        open_items=head[0],
        done_items=head[1],
        leased_now=head[2],
        ratings_missing=int(head[3]),
        ratings=ratings,
        multi_rated_items=head[4],
        open_by_reason={r: o for r, o, _ in by_reason},
        done_by_reason={r: d for r, _, d in by_reason},
    )


def _end_lease(conn: psycopg.Connection, item_id: int, rater: str) -> bool:
    row = conn.execute(
        "UPDATE review_items SET leased_to = NULL, lease_username = NULL,"
        " lease_expires_at = NULL WHERE id = %s AND lease_username = %s RETURNING 1",
        (item_id, rater),
    ).fetchone()
    return row is not None


def _rater(username: str) -> str:
    name = (username or "").strip().lower()  # usernames are stored lower-cased
    if not name:
        raise ValueError("rater_username must be a non-empty username, got an empty string")
    return name
