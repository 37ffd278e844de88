"""``diffwatch worker``: the periodic jobs on one schedule (APScheduler).

Jobs: roll up new rows (``rollups refresh``), evaluate alert rules, deliver due alert emails,
and optionally fill the review queue. Each job opens its own connection per run, so a
PostgreSQL restart costs one missed run: the job logs one line when the database goes
away and one when it is back, and the next run catches up (nothing is lost: rollups,
alert states and the outbox all live in the database).
"""

# No ``from __future__ import annotations``: typer reads the annotations of the command.
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger("diffwatch.worker")


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


def jobs(
    conninfo: str,
    dashboard_url: str,
    *,
    rollups_s: float,
    alerts_s: float,
    deliver_s: float,
    review_s: float,
    review_policy: Path | None,
) -> list[Job]:
    """The worker's jobs (a period of 0 switches one off)."""
    import psycopg

    from db.queries import rollups

    def refresh() -> object:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            return {k: v for k, v in rollups.refresh(conn, timedelta(hours=48)).rows.items() if v}

    def evaluate() -> object:
        from diffwatch.cli_alerts import evaluate_and_deliver

        d = evaluate_and_deliver(conninfo, datetime.now(UTC), False, dashboard_url)
        return d if d["changes"] or d["errors"] else None

    def deliver() -> object:
        from alerts.deliver import deliver_due
        from alerts.smtp import SmtpSettings
        from diffwatch.cli_alerts import delivery_dict

        d = delivery_dict(deliver_due(conninfo, SmtpSettings(), datetime.now(UTC)))
        return d if d["claimed"] else None

    def review() -> object:
        from db.queries import review as q
        from scoring.review_policy import ReviewPolicy

        policy = ReviewPolicy.from_toml(review_policy) if review_policy else ReviewPolicy()
        with psycopg.connect(conninfo) as conn:
            added = q.enqueue(conn, policy, datetime.now(UTC))
            conn.commit()
        return added if any(added.values()) else None

    all_jobs = [
        Job("rollups", rollups_s, refresh),
        Job("alerts-evaluate", alerts_s, evaluate),
        Job("alerts-deliver", deliver_s, deliver),
        Job("review-enqueue", review_s, review),
    ]
    return [j for j in all_jobs if j.every_s > 0]


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command to ``app``."""
    from diffwatch.cli import DbUrl

    @app.command("worker")
    def worker(
        once: Annotated[
            bool, typer.Option("--once", help="Run every job once, in order, and exit.")
        ] = False,
        rollups_every: Annotated[
            float, typer.Option(min=0, help="Seconds between rollup refreshes (0: off).")
        ] = 10.0,
        alerts_every: Annotated[
            float, typer.Option(min=0, help="Seconds between alert evaluations (0: off).")
        ] = 60.0,
        deliver_every: Annotated[
            float,
            typer.Option(min=0, help="Seconds between alert email delivery passes (0: off)."),
        ] = 15.0,
        review_every: Annotated[
            float,
            typer.Option(
                min=0, help="Seconds between review-queue fills (0: off; 3600 is a good pace)."
            ),
        ] = 0.0,
        review_policy: Annotated[
            Path | None, typer.Option(help="Review policy TOML for the review job.")
        ] = None,
        database_url: DbUrl = None,
    ) -> None:
        """Run the periodic jobs: rollups, alert evaluation, alert email delivery and
        (optionally) the review queue, until Ctrl-C or SIGTERM."""
        from diffwatch.cli import _runtime

        rt = _runtime(database_url, wait=not once)
        todo = jobs(
            rt.conninfo,
            rt.settings.dashboard_url,
            rollups_s=rollups_every,
            alerts_s=alerts_every,
            deliver_s=deliver_every,
            review_s=review_every,
            review_policy=review_policy,
        )
        if once:
            for job in todo:
                job()
            return
        from apscheduler.schedulers.blocking import BlockingScheduler

        scheduler = BlockingScheduler(timezone=UTC)
        for job in todo:
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
        log.warning(
            "worker started: %s", ", ".join(f"{j.name} every {j.every_s:g} s" for j in todo)
        )
        scheduler.start()
        log.warning("worker stopped")
