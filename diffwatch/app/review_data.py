"""Reads and writes of the rater pages: one short connection each, never cached.

The review queue changes with every click (leases, ratings), so nothing here is cached.
Every function names the rater by the logged-in account's username, which the pages take
from ``diffwatch.app.session`` (never from the URL or a widget).
"""

from __future__ import annotations

from diffwatch.app.data import _run
from diffwatch.db.queries.review import ClaimedItem
from diffwatch.db.queries.review_own import OwnRating, RaterSummary

LEASE_S = 600.0  # how long a claimed item is held for the rater, s


def claim(username: str, user_id: int) -> ClaimedItem | None:
    """The item this rater holds, or the next one leased to them for ``LEASE_S``; None if
    nothing waits. Renews the lease."""
    from diffwatch.db.queries.review import claim_next

    return _run(lambda c: claim_next(c, username, user_id, LEASE_S))


def rate(
    item_id: int,
    username: str,
    user_id: int,
    quality: int,
    adherence: int,
    flags: list[str],
    comment: str | None,
) -> bool:
    """Store a rating; True if new, False if this rater had rated the item already.

    Raises RatingRefused or UnknownItem as ``diffwatch.db.queries.review.rate`` does.
    """
    from diffwatch.db.queries.review import rate as q

    return _run(lambda c: q(c, item_id, username, user_id, quality, adherence, flags, comment))


def skip(item_id: int, username: str) -> bool:
    """Pass on an item (never served to this rater again); True if the skip is new."""
    from diffwatch.db.queries.review import skip as q

    return _run(lambda c: q(c, item_id, username))


def progress(username: str) -> tuple[RaterSummary, int]:
    """This rater's own counts and means, and how many items are open in the queue."""
    from diffwatch.db.queries.review_own import open_items, rater_summary

    return _run(lambda c: (rater_summary(c, username), open_items(c)))


def my_ratings(username: str, limit: int = 50) -> list[OwnRating]:
    """This rater's own latest ratings, newest first."""
    from diffwatch.db.queries.review_own import rater_ratings

    return _run(lambda c: rater_ratings(c, username, limit))
