"""``diffwatch review``: fill the human review queue by policy, and show how far it has got."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from diffwatch.cli.common import aware, emit_summary, fail, runtime
from diffwatch.cli.options import AsJson, DbUrl, Until

app = typer.Typer(
    help="The human review queue: pick generations for raters by a sampling policy "
    "(docs/review-queue.md).",
    no_args_is_help=True,
)


@app.command("enqueue")
def enqueue(
    policy: Annotated[
        Path | None,
        typer.Option(help="A review policy TOML file (default: the built-in policy)."),
    ] = None,
    until: Until = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Queue scored generations for review: a random sample per model version, low
    CLIP scores, NSFW-flagged images and canary traffic, each with its reason."""
    from diffwatch.model.review_policy import PolicyError, ReviewPolicy
    from diffwatch.review.jobs import fill_queue

    try:
        rules = ReviewPolicy.from_toml(policy) if policy else ReviewPolicy()
    except PolicyError as exc:
        raise fail(str(exc), 2) from None
    rt = runtime(database_url)
    added, stats = fill_queue(rt.conninfo, rules, aware(until) or datetime.now(UTC))
    d = {"added_by_reason": added, "queue": asdict(stats)}
    text = ", ".join(f"{n} {r}" for r, n in added.items()) or "nothing new"
    emit_summary(
        d,
        as_json,
        f"queued for review: {text}; open items {stats.open_items}, ratings still "
        f"needed {stats.ratings_missing}, done {stats.done_items}",
    )


@app.command("stats")
def stats(as_json: AsJson = False, database_url: DbUrl = None) -> None:
    """How far the queue has got: open and done items, leases, ratings, per reason."""
    import psycopg

    from diffwatch.db.queries import review as q

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        s = q.queue_stats(conn)
    emit_summary(
        asdict(s),
        as_json,
        f"open {s.open_items} (leased now {s.leased_now}, ratings needed "
        f"{s.ratings_missing}), done {s.done_items}, ratings {s.ratings}, items with "
        f"K > 1: {s.multi_rated_items}",
    )


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
