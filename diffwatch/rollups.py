"""Rolling up new rows for the dashboard, once or on a period (``diffwatch rollups refresh``).

One connection is kept across passes and dropped when the database goes away; every pass
rolls up exactly the rows committed since the last one, so an outage loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta
from typing import Any

log = logging.getLogger("diffwatch.rollups")


def refresh_once(conninfo: str) -> dict[str, int]:
    """One refresh on a new connection with the default retention; rows rolled up by source."""
    import psycopg

    from diffwatch.db.queries import rollups

    with psycopg.connect(conninfo, autocommit=True) as conn:
        res = rollups.refresh(conn)
    return {k: v for k, v in res.rows.items() if v}


def refresh(
    conninfo: str,
    retention: timedelta,
    *,
    follow: bool,
    interval_s: float,
    stop: threading.Event,
) -> dict[str, Any]:
    """Refresh once, or with ``follow`` every ``interval_s`` s until ``stop`` (waiting out
    outages); returns the refreshes, rows per source and elapsed seconds.

    Once, an unreachable database raises ``diffwatch.outage.DB_DOWN_ERRORS``.
    """
    import psycopg

    from diffwatch.db.queries import rollups
    from diffwatch.outage import OutageRetry
    from diffwatch.periodic import every

    totals = dict.fromkeys(rollups.SOURCES, 0)
    passes = 0
    t0 = time.perf_counter()
    conn: list[psycopg.Connection] = []

    def drop() -> None:
        while conn:
            with contextlib.suppress(psycopg.Error):
                conn.pop().close()

    def once() -> rollups.RefreshResult:
        if not conn or conn[0].closed or conn[0].broken:
            drop()
            conn.append(psycopg.connect(conninfo))
        return rollups.refresh(conn[0], retention)

    retrying = None
    if follow:
        retrying = OutageRetry(
            stop,
            log,
            on_down=drop,
            consequence="Rollups stop advancing; nothing is lost, the next refresh catches up.",
            resumed="refreshing rollups again",
        )
    try:
        for res in every(once, interval_s, stop, retrying):
            passes += 1
            for k, n in res.rows.items():
                totals[k] += n
            if sum(res.rows.values()):
                log.info("rolled up %s", res.rows)
    finally:
        drop()
    return {"refreshes": passes, "rows": totals, "elapsed_s": round(time.perf_counter() - t0, 3)}
