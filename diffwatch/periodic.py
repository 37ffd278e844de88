"""Periodic work in long-running commands: one loop helper and one job scheduler.

``every`` is the loop of the ``--follow`` forms (``alerts evaluate``, ``rollups refresh``): a
step now and then every interval, riding out database outages with the shared
``OutageRetry``, until a stop event is set. ``Job`` and ``run_jobs`` are the worker's: several
steps, each on its own period, on one APScheduler ``BlockingScheduler`` that stops on SIGINT
or SIGTERM. Nothing here knows what a step does; the stages own their steps.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from diffwatch.outage import OutageRetry

T = TypeVar("T")
log = logging.getLogger("diffwatch.worker")


def stop_on_signals() -> threading.Event:
    """An event that SIGINT and SIGTERM set: the stop of a long-running loop."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def every(
    step: Callable[[], T],
    interval_s: float,
    stop: threading.Event,
    retrying: OutageRetry | None = None,
) -> Iterator[T]:
    """Yield ``step()`` now and then every ``interval_s`` seconds until ``stop`` is set.

    With ``retrying`` (the ``--follow`` forms) an unreachable database is waited out and the
    loop ends quietly if ``stop`` is set meanwhile. Without it the step runs once and a
    database error reaches the caller.
    """
    from diffwatch.outage import DB_DOWN_ERRORS

    while True:
        try:
            result = retrying(step) if retrying is not None else step()
        except DB_DOWN_ERRORS:
            if retrying is not None and stop.is_set():
                return
            raise
        yield result
        if retrying is None or stop.wait(interval_s):
            return


@dataclass
class Job:
    """One periodic job: its name, period (s) and what one run does."""

    name: str
    every_s: float
    run: Callable[[], object]
    down: bool = False

    def __call__(self) -> None:
        """Run once; a database outage is one warning, not a traceback per run."""
        from diffwatch.errors import first_line
        from diffwatch.outage import DB_DOWN_ERRORS

        try:
            result = self.run()
        except DB_DOWN_ERRORS as exc:
            if not self.down:
                log.warning(
                    "%s: database unavailable (%s); retrying every %.0f s, nothing is lost",
                    self.name,
                    first_line(exc),
                    self.every_s,
                )
            self.down = True
            return
        except Exception:
            log.exception("%s failed; it runs again in %.0f s", self.name, self.every_s)
            return
        if self.down:
            log.warning("%s: database reachable again", self.name)
            self.down = False
        if result:
            log.info("%s: %s", self.name, result)


def run_jobs(jobs: Sequence[Job]) -> None:
    """Run every job now and then on its period (APScheduler) until SIGINT or SIGTERM."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone=UTC)
    for job in jobs:
        scheduler.add_job(
            job,
            "interval",
            seconds=job.every_s,
            id=job.name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: scheduler.shutdown(wait=False))
    log.warning("worker started: %s", ", ".join(f"{j.name} every {j.every_s:g} s" for j in jobs))
    scheduler.start()
    log.warning("worker stopped")
