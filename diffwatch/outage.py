"""Riding out database outages in long-running loops: one shared retry policy.

Every long-running diffwatch process (collectors, scoring workers) retries a database step
with exponential backoff while PostgreSQL is away, logs one line when it goes away and
one when it is back, and stops retrying as soon as it is asked to stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from diffwatch.errors import first_line

DB_DOWN_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
T = TypeVar("T")


class OutageRetry:
    """Calls a step, retrying it while the database is unreachable."""

    def __init__(
        self,
        stop: threading.Event,
        log: logging.Logger,
        *,
        on_down: Callable[[], None],
        consequence: str,
        resumed: str,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.down = False
        self._log, self._on_down = log, on_down
        self._consequence, self._resumed, self._max = consequence, resumed, max_backoff_s
        self._retrying = Retrying(
            retry=retry_if_exception_type(DB_DOWN_ERRORS),
            wait=wait_exponential(multiplier=0.2, max=max_backoff_s),
            stop=lambda _rs: stop.is_set(),
            before_sleep=self._went_down,
            sleep=stop.wait,
            reraise=True,
        )

    def _went_down(self, rs: RetryCallState) -> None:
        self._on_down()
        if not self.down:
            self.down = True
            exc = rs.outcome.exception() if rs.outcome else None
            self._log.warning(
                "database unavailable (%s); retrying with backoff up to %.0f s. %s",
                first_line(exc),
                self._max,
                self._consequence,
            )

    def __call__(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)``; re-raises the database error only once stop is set."""
        result = self._retrying(fn, *args)
        if self.down:
            self.down = False
            self._log.warning("database reachable again; %s", self._resumed)
        return result
