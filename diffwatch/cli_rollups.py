"""``diffwatch rollups`` (registered on the main app by diffwatch.cli): refresh, status, rebuild."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands
# defined inside register().
import contextlib
import logging
import threading
import time
from datetime import timedelta
from typing import Annotated

import typer

log = logging.getLogger("diffwatch.rollups")


def register(app: typer.Typer) -> None:
    """Add the ``rollups`` group to ``app``."""
    from diffwatch.cli import AsJson, DbUrl

    rollups_app = typer.Typer(
        help="Maintain the dashboard's rollups (minute and hour buckets).", no_args_is_help=True
    )
    app.add_typer(rollups_app, name="rollups")

    @rollups_app.command("refresh")
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
        ] = 48.0,
        as_json: AsJson = False,
        database_url: DbUrl = None,
    ) -> None:
        """Roll up rows committed since the last refresh, exactly once."""
        _refresh(follow, interval, timedelta(hours=minute_retention_hours), as_json, database_url)

    @rollups_app.command("status")
    def status_cmd(as_json: AsJson = False, database_url: DbUrl = None) -> None:
        """Rows rolled up and still waiting per raw table, and the last refresh."""
        import psycopg

        from db.queries import rollups
        from diffwatch.cli import _runtime, emit_summary

        rt = _runtime(database_url)
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

    @rollups_app.command("rebuild")
    def rebuild_cmd(
        yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
        database_url: DbUrl = None,
    ) -> None:
        """Empty the rollups and roll up every raw row again (after a histogram change)."""
        import psycopg

        from db.queries import rollups
        from diffwatch.cli import _runtime

        if not yes:
            typer.confirm("Empty every rollup and recompute it from raw rows?", abort=True)
        rt = _runtime(database_url)
        with psycopg.connect(rt.conninfo) as conn:
            rollups.rebuild(conn)
            res = rollups.refresh(conn, timedelta(hours=48))
        typer.echo(f"rebuilt from {sum(res.rows.values())} raw rows")


def _refresh(
    follow: bool,
    interval: float,
    retention: timedelta,
    as_json: bool,
    database_url: str | None,
) -> None:
    import psycopg

    from db.queries import rollups
    from diffwatch.cli import _runtime, _stop_on_signals, emit_summary, fail
    from diffwatch.errors import first_line
    from diffwatch.outage import DB_DOWN_ERRORS, OutageRetry

    rt = _runtime(database_url, wait=follow)
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
            conn.append(psycopg.connect(rt.conninfo))
        return rollups.refresh(conn[0], retention)

    stop = _stop_on_signals() if follow else threading.Event()
    retrying = OutageRetry(
        stop,
        log,
        on_down=drop,
        consequence="Rollups stop advancing; nothing is lost, the next refresh catches up.",
        resumed="refreshing rollups again",
    )
    try:
        while True:
            try:
                res = retrying(once) if follow else once()
            except DB_DOWN_ERRORS as exc:
                if stop.is_set():
                    break
                raise fail(f"database unavailable: {first_line(exc)}") from None
            passes += 1
            for k, n in res.rows.items():
                totals[k] += n
            if sum(res.rows.values()):
                log.info("rolled up %s", res.rows)
            if not follow or stop.wait(interval):
                break
    finally:
        drop()
    d = {"refreshes": passes, "rows": totals, "elapsed_s": round(time.perf_counter() - t0, 3)}
    emit_summary(
        d,
        as_json,
        f"rolled up {totals['generations']} generations, {totals['gpu_samples']} GPU "
        f"samples, {totals['scorer_results']} scorer results in {passes} refresh(es), "
        f"{d['elapsed_s']} s",
    )
