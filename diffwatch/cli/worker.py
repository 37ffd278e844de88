"""``diffwatch worker``: the periodic jobs on one schedule (APScheduler).

Jobs: roll up new rows (``rollups refresh``), move newly stored image embeddings into the
search index, evaluate alert rules, deliver due alerts (email, webhooks, Alertmanager), and
optionally fill the review queue. Each job opens its own connection per run, so a
PostgreSQL restart costs one missed run: the job logs one line when the database goes
away and one when it is back, and the next run catches up (nothing is lost: rollups,
alert states and the outbox all live in the database). The jobs' steps belong to their
stages; the schedule is ``diffwatch.periodic``.
"""

# No ``from __future__ import annotations``: typer reads the annotations of the command.
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from diffwatch.cli.common import runtime
from diffwatch.cli.options import DbUrl

if TYPE_CHECKING:
    from diffwatch.periodic import Job


@dataclass(frozen=True)
class WorkerArgs:
    """The worker's periods (s; 0 switches a job off) and its review policy file."""

    rollups_s: float
    alerts_s: float
    deliver_s: float
    review_s: float
    review_policy: Path | None
    embeddings_s: float = 5.0
    index_connections: int = 2


def jobs(conninfo: str, dashboard_url: str, a: WorkerArgs) -> "list[Job]":
    """The worker's jobs, each a stage's step, on the periods of ``a``."""
    from diffwatch import rollups
    from diffwatch.alerts import run
    from diffwatch.periodic import Job

    def evaluate() -> object:
        d = run.evaluate_and_deliver(conninfo, datetime.now(UTC), False, dashboard_url)
        return d if d["changes"] or d["errors"] else None

    def deliver() -> object:
        d = run.deliver(conninfo, datetime.now(UTC))
        return d if d["claimed"] else None

    def review() -> object:
        from diffwatch.model.review_policy import ReviewPolicy
        from diffwatch.review.jobs import fill_queue

        policy = ReviewPolicy.from_toml(a.review_policy) if a.review_policy else ReviewPolicy()
        added, _ = fill_queue(conninfo, policy, datetime.now(UTC))
        return added if any(added.values()) else None

    def index_embeddings() -> object:
        from diffwatch.embeddings.index import index_pending

        moved = index_pending(
            conninfo, connections=a.index_connections, max_s=max(a.embeddings_s, 1.0) * 5
        )
        return {"indexed": moved} if moved else None

    all_jobs = [
        Job("rollups", a.rollups_s, lambda: rollups.refresh_once(conninfo)),
        Job("embeddings-index", a.embeddings_s, index_embeddings),
        Job("alerts-evaluate", a.alerts_s, evaluate),
        Job("alerts-deliver", a.deliver_s, deliver),
        Job("review-enqueue", a.review_s, review),
    ]
    return [j for j in all_jobs if j.every_s > 0]


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
        typer.Option(
            min=0,
            help="Seconds between alert delivery passes: email, webhooks, Alertmanager (0: off).",
        ),
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
    embeddings_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between moves of newly stored image embeddings into the search "
            "index (0: off; needs pgvector, a no-op without it).",
        ),
    ] = 5.0,
    index_connections: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Connections that move image embeddings into the index in parallel (each "
            "keeps one database core busy; about 150 rows/s each for 512-wide rows).",
        ),
    ] = 2,
    prometheus_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Also serve Prometheus metrics on this port, on every interface, as "
            "`diffwatch export prometheus` does (docs/prometheus.md).",
        ),
    ] = None,
    database_url: DbUrl = None,
) -> None:
    """Run the periodic jobs: rollups, indexing of new image embeddings, alert evaluation,
    alert delivery (email, webhooks, Alertmanager) and (optionally) the review queue, until
    Ctrl-C or SIGTERM."""
    from diffwatch.periodic import run_jobs

    a = WorkerArgs(
        rollups_every, alerts_every, deliver_every, review_every, review_policy,
        embeddings_every, index_connections,
    )  # fmt: skip
    rt = runtime(database_url, wait=not once)
    todo = jobs(rt.conninfo, rt.settings.dashboard_url, a)
    if once:
        for job in todo:
            job()
        return
    if prometheus_port is not None:
        from diffwatch.exporters.prometheus import DiffwatchCollector, serve

        serve(DiffwatchCollector(rt.conninfo), "0.0.0.0", prometheus_port)
    run_jobs(todo)


def register(root: typer.Typer, name: str) -> None:
    """Add this command to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.command(name)(worker)
