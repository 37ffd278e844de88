"""``diffwatch rollups``: refresh, status, rebuild (the loop is ``diffwatch.rollups``)."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import threading
from datetime import timedelta
from typing import Annotated

import typer

from diffwatch.cli.common import emit_summary, fail, runtime, stop_on_signals
from diffwatch.cli.options import AsJson, DbUrl
from diffwatch.model.filters import DEFAULT_MINUTE_RETENTION

app = typer.Typer(
    help="Maintain the dashboard's rollups (minute and hour buckets).", no_args_is_help=True
)


@app.command("refresh")
def refresh_cmd(
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--once",
            "-f",
            help="Keep refreshing every --interval seconds (until Ctrl-C/SIGTERM), "
            "or refresh once and exit.",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between refreshes with --follow.")
    ] = 10.0,
    minute_retention_hours: Annotated[
        float, typer.Option(min=1, help="Hours of minute buckets kept (older are pruned).")
    ] = DEFAULT_MINUTE_RETENTION / timedelta(hours=1),
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Roll up rows committed since the last refresh, exactly once."""
    from diffwatch import rollups
    from diffwatch.errors import first_line
    from diffwatch.outage import DB_DOWN_ERRORS

    rt = runtime(database_url, wait=follow)
    stop = stop_on_signals() if follow else threading.Event()
    try:
        d = rollups.refresh(
            rt.conninfo,
            timedelta(hours=minute_retention_hours),
            follow=follow,
            interval_s=interval,
            stop=stop,
        )
    except DB_DOWN_ERRORS as exc:
        raise fail(f"database unavailable: {first_line(exc)}") from None
    rows = d["rows"]
    emit_summary(
        d,
        as_json,
        f"rolled up {rows['generations']} generations, {rows['gpu_samples']} GPU "
        f"samples, {rows['scorer_results']} scorer results in {d['refreshes']} refresh(es), "
        f"{d['elapsed_s']} s",
    )


@app.command("status")
def status_cmd(as_json: AsJson = False, database_url: DbUrl = None) -> None:
    """Rows rolled up and still waiting per raw table, and the last refresh."""
    import psycopg

    from diffwatch.db.queries import rollups

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        states = rollups.state(conn)
    d = {
        s.source: {
            "rows_total": s.rows_total,
            "pending": s.pending,
            "refreshed_at": s.refreshed_at.isoformat() if s.refreshed_at else None,
        }
        for s in states
    }
    text = "\n".join(
        f"{s.source:<15} {s.rows_total:>12} rolled up, {s.pending:>10} waiting, "
        f"last refresh {s.refreshed_at or 'never'}"
        for s in states
    )
    emit_summary(d, as_json, text)


@app.command("rebuild")
def rebuild_cmd(
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
    database_url: DbUrl = None,
) -> None:
    """Empty the rollups and roll up every raw row again (after a histogram change)."""
    import psycopg

    from diffwatch.db.queries import rollups

    if not yes:
        typer.confirm("Empty every rollup and recompute it from raw rows?", abort=True)
    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        rollups.rebuild(conn)
        res = rollups.refresh(conn)
    typer.echo(f"rebuilt from {sum(res.rows.values())} raw rows")


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
