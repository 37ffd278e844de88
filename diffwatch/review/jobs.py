"""Filling the review queue: what ``diffwatch review enqueue`` and the worker's job run."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffwatch.model.review_policy import ReviewPolicy


def fill_queue(conninfo: str, policy: ReviewPolicy, now: datetime) -> tuple[dict[str, int], Any]:
    """Queue the generations ``policy`` picks up to ``now``; (items added by reason, stats)."""
    import psycopg

    from diffwatch.db.queries import review as q

    with psycopg.connect(conninfo) as conn:
        added = q.enqueue(conn, policy, now)
        conn.commit()
        stats = q.queue_stats(conn)
    return added, stats
