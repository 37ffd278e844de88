"""A small set of reusable database connections (psycopg_pool is not a dependency).

Concurrency is bounded by the app (a semaphore of the same size), so this only keeps idle
connections for reuse and drops the dead ones: after a database restart every idle
connection is dead, and the first failure on one empties the set, so that recovery costs
one failed statement, not one per idle connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg

from diffwatch.outage import DB_DOWN_ERRORS

log = logging.getLogger(__name__)
T = TypeVar("T")


class Connections:
    """Up to ``size`` idle connections to ``conninfo``, each set up by ``prepare``."""

    def __init__(
        self,
        conninfo: str,
        size: int,
        prepare: Callable[[psycopg.Connection], None],
        connect_timeout_s: float = 3.0,
    ) -> None:
        self.conninfo, self.size = conninfo, size
        self._prepare, self._timeout = prepare, max(1, round(connect_timeout_s))
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=self._timeout)
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _take(self) -> psycopg.Connection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give(self, conn: psycopg.Connection) -> None:
        ok = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if ok and len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """``fn(conn)`` on an idle or new connection; raises ``DB_DOWN_ERRORS`` when the
        database is away or too slow (statement timeout).

        A reused connection that fails is tried once more on a new one (``fn`` must be
        idempotent): it may have died with a database restart since it was last used.
        """
        conn = self._take()
        if conn is not None:
            try:
                return self._use(conn, fn)
            except DB_DOWN_ERRORS as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled):
                    raise  # the database is up but slow: retrying now would add to it
                self.clear()
        return self._use(self._connect(), fn)

    def _use(self, conn: psycopg.Connection, fn: Callable[[psycopg.Connection], T]) -> T:
        try:
            result = fn(conn)
        except BaseException:
            if conn.broken:
                conn.close()
            else:
                self._give(conn)
            raise
        self._give(conn)
        return result
