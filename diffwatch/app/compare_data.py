"""Reads and writes of the Side-by-side page: one short connection each, never cached.

The page only ever gets ``BlindPair``s (left and right, no side names); which model is on
the left is recomputed from (run, pair, rater) when a vote is stored, so the page cannot
send a side. The rater is the logged-in account's username (from ``diffwatch.app.session``).
"""

from __future__ import annotations

from collections.abc import Sequence

from diffwatch.app.data import _run
from diffwatch.gate.pairs import BlindPair


def next_pair(
    username: str, held: tuple[int, str] | None, skipped: Sequence[tuple[int, str]]
) -> BlindPair | None:
    """The pair to show this rater (``held`` again if not yet voted on), blinded; None if
    no pair waits for them."""
    from diffwatch.db.queries.gate_review import next_pair as q
    from diffwatch.gate.pairs import blind

    pair = _run(lambda c: q(c, username, held, skipped))
    return None if pair is None else blind(pair, username)


def vote(run_id: int, key: str, username: str, user_id: int, choice: str) -> None:
    """Store this rater's vote (left, same or right) on a pair as it was shown to them.

    Raises UnknownPair or VoteRefused as ``diffwatch.db.queries.gate_review.vote`` does."""
    from diffwatch.db.queries.gate_review import vote as q
    from diffwatch.gate.pairs import left_side

    side = left_side(run_id, key, username)
    _run(lambda c: q(c, run_id, key, username, user_id, side, choice))


def progress(username: str) -> tuple[int, int]:
    """(pairs this rater voted on today, pairs still waiting for them)."""
    from diffwatch.db.queries.gate_review import rater_progress

    return _run(lambda c: rater_progress(c, username))
