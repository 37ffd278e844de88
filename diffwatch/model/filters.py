"""The dashboard's question: a time range and filters, and the rollup widths they resolve to.

Pure. The SQL that answers it is in ``diffwatch.db.queries.dashboard_filters``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

MINUTE, HOUR = 60, 3600  # the two rollup bucket widths (s)
# Minute buckets older than this are pruned by every rollup refresh (the CLI's, the
# worker's, the demo's); ranges that reach further back are answered from hour buckets.
DEFAULT_MINUTE_RETENTION = timedelta(hours=48)
MINUTE_SPAN = timedelta(hours=6)  # longest range answered from minute buckets
MAX_POINTS = 400  # time series are coarsened to at most this many points
_STEPS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)


@dataclass(frozen=True)
class Filters:
    """A time range [start, end) and optional filters (empty tuple: no filter).

    Unknown deployments and GPU types are stored as ''. ``width_s`` forces the bucket
    width (60 or 3600); None picks it from the range.
    """

    start: datetime
    end: datetime
    models: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()
    gpu_types: tuple[str, ...] = ()
    width_s: int | None = field(default=None, compare=False)

    def previous(self) -> Filters:
        """The period of the same length just before this one, same filters."""
        span = self.end - self.start
        return replace(self, start=self.start - span, end=self.start)

    def width(self, now: datetime | None = None) -> int:
        """Bucket width (s) used for this range."""
        if self.width_s in (MINUTE, HOUR):
            return self.width_s
        now = now or datetime.now(UTC)
        recent = self.start >= now - DEFAULT_MINUTE_RETENTION + timedelta(minutes=5)
        return MINUTE if self.end - self.start <= MINUTE_SPAN and recent else HOUR

    def step(self, width: int) -> int:
        """Seconds between time-series points: a round step, at most MAX_POINTS points."""
        span = (self.end - self.start).total_seconds()
        for s in _STEPS_S:
            if s >= width and span / s <= MAX_POINTS:
                return s
        return _STEPS_S[-1]
