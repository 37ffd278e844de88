"""A bounded in-memory queue of readings waiting for the database."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from itertools import islice

from diffwatch.model.gpu import GpuReading

log = logging.getLogger(__name__)


class ReadingBuffer:
    """FIFO of readings holding at most ``max_rows``; past that the oldest are dropped.

    The first drop of an outage is logged as a warning; the count of all drops is kept in
    ``dropped`` so the summary (and the "database is back" line) can report it.
    """

    def __init__(self, max_rows: int) -> None:
        if max_rows < 1:
            raise ValueError(f"the buffer must hold at least 1 reading, got {max_rows}")
        self.max_rows = max_rows
        self._rows: deque[GpuReading] = deque()
        self.dropped = 0
        self._warned = False

    def __len__(self) -> int:
        return len(self._rows)

    def extend(self, readings: Iterable[GpuReading]) -> int:
        """Queue readings; returns how many old ones were dropped to make room."""
        self._rows.extend(readings)
        over = len(self._rows) - self.max_rows
        if over <= 0:
            return 0
        for _ in range(over):
            self._rows.popleft()
        self.dropped += over
        if not self._warned:
            self._warned = True
            log.warning(
                "GPU reading buffer is full (%d readings): dropping the oldest until the "
                "database takes writes again (raise --buffer-rows to keep more)",
                self.max_rows,
            )
        return over

    def head(self, n: int) -> list[GpuReading]:
        """The oldest ``n`` readings (or fewer), still queued."""
        return list(islice(self._rows, n))

    def pop_head(self, n: int) -> None:
        """Forget the oldest ``n`` readings (they were stored)."""
        for _ in range(min(n, len(self._rows))):
            self._rows.popleft()
        if not self._rows:
            self._warned = False  # the next overflow is a new outage: warn again
