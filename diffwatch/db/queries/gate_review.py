"""SQL of the gate's human side-by-side: pairs enqueued for raters, served, and voted on.

Pairs carry no lease: a rater is served the held pair again (a reload), else a pair of a
finished run that they have not voted on and that still wants votes, oldest run first,
fewest votes first. Among equals the order is a hash of the pair and the rater, so raters
working at the same time mostly get different pairs; two raters who do get the same pair
both count (a vote past ``required_votes`` is kept, it only stops the pair being served).

One vote per (pair, rater): a second vote by the same rater is refused (``VoteRefused``)
and the first one stands. A rater who has seen a pair once has seen both images; changing
their mind later is not a fresh, blind judgement. Raters are named by username (lower-cased,
a snapshot that outlives the account), as in the review queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from diffwatch.db.models_gate import PAIR_SIDES, VOTES
from diffwatch.db.queries.users import audit


class UnknownPair(LookupError):
    """No enqueued pair has this (run, key): the run was deleted, or it never existed."""


class VoteRefused(RuntimeError):
    """This rater has voted on this pair already; the first vote stands."""


@dataclass(frozen=True, slots=True)
class PairToRate:
    """A pair served to a rater. It names the sides: blind it (``diffwatch.gate.pairs``)
    before anything reaches the page. ``prompt`` is untrusted text."""

    run_id: int
    key: str
    prompt: str
    candidate_uri: str
    baseline_uri: str
    candidate_nsfw: bool | None
    baseline_nsfw: bool | None
    votes: int  # votes the pair has so far, every rater
    required_votes: int


@dataclass(frozen=True, slots=True)
class PairCounts:
    """How far one run's human side-by-side has got."""

    pairs: int  # enqueued
    rated_pairs: int  # with at least one vote
    open_pairs: int  # with fewer votes than they want
    votes: int
    raters: int


def enqueue(
    conn: psycopg.Connection,
    run_id: int,
    pairs: Iterable[Mapping[str, Any]],
    required_votes: int = 1,
) -> int:
    """Enqueue pairs (dicts with key, prompt, candidate_uri, baseline_uri and optionally
    nsfw_candidate/nsfw_baseline) of run ``run_id``; the number newly enqueued. A pair
    already enqueued is left as it is."""
    if isinstance(required_votes, bool) or not isinstance(required_votes, int):
        raise ValueError(f"required_votes must be a whole number, got {required_votes!r}")
    if required_votes < 1:
        raise ValueError(f"required_votes must be at least 1, got {required_votes}")
    rows = [
        (run_id, str(p["key"]), str(p["prompt"]), str(p["candidate_uri"]),
         str(p["baseline_uri"]), p.get("nsfw_candidate"), p.get("nsfw_baseline"), required_votes)
        for p in pairs
    ]  # fmt: skip
    if not rows:
        return 0
    with conn.transaction():
        got = conn.execute(
            "INSERT INTO gate_pairs (run_id, key, prompt, candidate_uri, baseline_uri,"
            " candidate_nsfw, baseline_nsfw, required_votes)"
            " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],"
            " %s::boolean[], %s::boolean[], %s::int[])"
            " ON CONFLICT (run_id, key) DO NOTHING RETURNING 1",
            [list(col) for col in zip(*rows, strict=True)],
        ).fetchall()
    return len(got)


def enqueued_keys(conn: psycopg.Connection, run_id: int) -> set[str]:
    """The keys of a run's enqueued pairs."""
    rows = conn.execute("SELECT key FROM gate_pairs WHERE run_id = %s", (run_id,)).fetchall()
    return {r[0] for r in rows}


_NEXT = """
WITH n AS (
    SELECT p.*, (SELECT count(*) FROM gate_votes v
                  WHERE v.run_id = p.run_id AND v.key = p.key) AS votes,
           (p.run_id = %(held_run)s AND p.key = %(held_key)s) IS TRUE AS held
    FROM gate_pairs p JOIN gate_runs r ON r.id = p.run_id AND r.status = 'done'
    WHERE NOT EXISTS (SELECT 1 FROM gate_votes v WHERE v.run_id = p.run_id
                        AND v.key = p.key AND v.rater_username = %(rater)s)
      AND NOT EXISTS (SELECT 1 FROM unnest(%(skip_runs)s::bigint[], %(skip_keys)s::text[])
                        AS s(run_id, key) WHERE s.run_id = p.run_id AND s.key = p.key)
)
SELECT run_id, key, prompt, candidate_uri, baseline_uri, candidate_nsfw, baseline_nsfw,
       votes, required_votes
FROM n WHERE held OR votes < required_votes
-- A reload gets the held pair back; then the oldest run, the least-voted pair, and an
-- order of its own for each rater among equals.
ORDER BY held DESC, run_id, votes, md5(run_id || ':' || key || ':' || %(rater)s), key
LIMIT 1
"""


def next_pair(
    conn: psycopg.Connection,
    rater_username: str,
    held: tuple[int, str] | None = None,
    skipped: Sequence[tuple[int, str]] = (),
) -> PairToRate | None:
    """The pair to show this rater: ``held`` (run id, key) again if they have not voted on
    it, else the next open pair they have not voted on and not ``skipped``; None if none."""
    rater = _rater(rater_username)
    row = conn.execute(
        _NEXT,
        {
            "rater": rater,
            "held_run": held[0] if held else None,
            "held_key": held[1] if held else None,
            "skip_runs": [int(r) for r, _ in skipped],
            "skip_keys": [str(k) for _, k in skipped],
        },
    ).fetchone()
    return None if row is None else PairToRate(*row)


def validate_vote(left_side: str, vote: str) -> None:
    """Refuse a side or a vote outside the allowed values, before any SQL."""
    if left_side not in PAIR_SIDES:
        raise ValueError(f"left_side must be one of {', '.join(PAIR_SIDES)}, got {left_side!r}")
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {', '.join(VOTES)}, got {vote!r}")


def vote(
    conn: psycopg.Connection,
    run_id: int,
    key: str,
    rater_username: str,
    rater_id: int | None,
    left_side: str,
    choice: str,
    at: datetime | None = None,
) -> None:
    """Store one rater's vote on a pair (``choice``: left, same or right, as shown with
    ``left_side`` on the left), with an audit row. ``at`` (timezone-aware) overrides the
    database clock, for tests and simulated raters.

    Raises ValueError for a bad value, UnknownPair, or VoteRefused when this rater has
    voted on the pair already (the first vote stands).
    """
    rater = _rater(rater_username)
    validate_vote(left_side, choice)
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ValueError(f"at must be timezone-aware (voted_at is UTC), got {at!r}")
    with conn.transaction():
        pair = conn.execute(
            "SELECT 1 FROM gate_pairs WHERE run_id = %s AND key = %s FOR SHARE", (run_id, key)
        ).fetchone()
        if pair is None:
            raise UnknownPair(
                f"gate run {run_id} has no pair {key!r} enqueued for rating "
                "(the run was deleted?); take the next pair"
            )
        new = conn.execute(
            "INSERT INTO gate_votes (run_id, key, rater_username, rater_id, left_side, vote,"
            " voted_at) VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s::timestamptz, now()))"
            " ON CONFLICT DO NOTHING RETURNING 1",
            (run_id, key, rater, rater_id, left_side, choice, at),
        ).fetchone()
        if new is None:
            raise VoteRefused(
                f"{rater} has already voted on pair {key!r} of gate run {run_id}; "
                "the first vote stands (a second look is not a blind judgement)"
            )
        audit(conn, rater, "gate.vote", f"gate run {run_id} pair {key}",
              {"run_id": run_id, "key": key, "left_side": left_side, "vote": choice})  # fmt: skip


def votes(conn: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    """Every vote on a run's pairs: key, rater_username, left_side, vote, voted_at; in key
    then rater order."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT key, rater_username, left_side, vote, voted_at FROM gate_votes"
            " WHERE run_id = %s ORDER BY key, rater_username",
            (run_id,),
        ).fetchall()


def counts(conn: psycopg.Connection, run_id: int) -> PairCounts:
    """Pairs enqueued, rated and open, votes and raters of one run."""
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE n > 0), count(*) FILTER (WHERE n < k),"
        " coalesce(sum(n), 0),"
        " (SELECT count(DISTINCT rater_username) FROM gate_votes WHERE run_id = %(r)s)"
        " FROM (SELECT p.required_votes AS k, (SELECT count(*) FROM gate_votes v"
        "        WHERE v.run_id = p.run_id AND v.key = p.key) AS n"
        "       FROM gate_pairs p WHERE p.run_id = %(r)s) x",
        {"r": run_id},
    ).fetchone()
    assert row is not None
    return PairCounts(*(int(x) for x in row))


def rater_progress(conn: psycopg.Connection, rater_username: str) -> tuple[int, int]:
    """(votes this rater gave today (UTC), open pairs of finished runs still waiting for
    them)."""
    rater = _rater(rater_username)
    row = conn.execute(
        "SELECT (SELECT count(*) FROM gate_votes WHERE rater_username = %(r)s"
        "         AND voted_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),"
        " (SELECT count(*) FROM gate_pairs p JOIN gate_runs g ON g.id = p.run_id"
        "   AND g.status = 'done'"
        "  WHERE (SELECT count(*) FROM gate_votes v WHERE v.run_id = p.run_id"
        "          AND v.key = p.key) < p.required_votes"
        "    AND NOT EXISTS (SELECT 1 FROM gate_votes v WHERE v.run_id = p.run_id"
        "          AND v.key = p.key AND v.rater_username = %(r)s))",
        {"r": rater},
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def update_summary(
    conn: psycopg.Connection, run_id: int, verdict: str, summary: dict[str, Any]
) -> None:
    """Replace a finished run's summary and verdict (the human metric folded in); the run
    stays done and keeps its finish time."""
    with conn.transaction():
        got = conn.execute(
            "UPDATE gate_runs SET verdict = %s, summary = %s WHERE id = %s AND status = 'done'"
            " RETURNING 1",
            (verdict, Jsonb(summary), run_id),
        ).fetchone()
    if got is None:
        raise ValueError(f"gate run {run_id} is not a finished run; nothing was updated")


def _rater(username: str) -> str:
    name = (username or "").strip().lower()  # usernames are stored lower-cased
    if not name:
        raise ValueError("rater_username must be a non-empty username, got an empty string")
    return name
