"""The single ``diffwatch`` command. Subcommands import their heavy modules lazily."""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Annotated

import typer

from diffwatch.context import Runtime, SchemaOutOfDate, ensure_schema, runtime
from diffwatch.errors import first_line

app = typer.Typer(
    help="Monitor text-to-image diffusion models in production: cost, speed, quality, "
    "safety, drift and human ratings.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Create and migrate the database schema.", no_args_is_help=True)
collect_app = typer.Typer(help="Ingest generation logs and GPU metrics.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(collect_app, name="collect")

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="DIFFWATCH_DATABASE_URL",
        help="PostgreSQL URL. Unset: an embedded server under DIFFWATCH_HOME.",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")]


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error for a person and return the Exit to raise."""
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def aware(t: datetime | None) -> datetime | None:
    """A datetime option as given, or read as UTC when it has no offset."""
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def emit_summary(d: dict[str, object], as_json: bool, text: str) -> None:
    """Print a batch command's summary: one JSON object with --json, else ``text``."""
    typer.echo(json.dumps(d) if as_json else text)


def _runtime(database_url: str | None, migrate: bool = True, wait: bool = False) -> Runtime:
    """Resolve the database and check its schema, with errors a person can act on.

    ``wait``: a long-running command (``--follow``) waits for an unreachable database
    instead of failing, logging one line about it.
    """
    from sqlalchemy.exc import OperationalError
    from tenacity import Retrying, retry_if_exception_type, wait_exponential

    def attempt() -> Runtime:
        rt = runtime(database_url)
        if migrate:
            ensure_schema(rt)
        return rt

    waited = []

    def waiting(rs: object) -> None:
        if getattr(rs, "attempt_number", 0) == 1:
            waited.append(True)
            logging.getLogger("diffwatch").warning(
                "database unavailable; waiting for it (retrying with backoff up to 30 s)"
            )

    try:
        if not wait:
            return attempt()
        retrying = Retrying(
            retry=retry_if_exception_type(OperationalError),
            wait=wait_exponential(multiplier=0.2, max=30),
            before_sleep=waiting,
            reraise=True,
        )
        rt = retrying(attempt)
        if waited:  # one line when it goes away, one when it is back
            logging.getLogger("diffwatch").warning("database reachable again; starting")
        return rt
    except SchemaOutOfDate as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    except OperationalError as exc:
        raise fail(f"database unavailable: {first_line(exc.orig or exc)}") from None


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


# -- db ------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: DbUrl = None,
) -> None:
    """Apply migrations (default: up to the newest)."""
    from db import migrate

    rt = _runtime(database_url, migrate=False)
    migrate.upgrade(rt.url, revision)
    typer.echo(f"database at revision {migrate.current_revision(rt.url)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' for empty.")],
    database_url: DbUrl = None,
) -> None:
    """Revert migrations down to REVISION (data in dropped tables is lost)."""
    from db import migrate

    rt = _runtime(database_url, migrate=False)
    migrate.downgrade(rt.url, revision)
    typer.echo(f"database at revision {migrate.current_revision(rt.url) or 'base'}")


@db_app.command("current")
def db_current(database_url: DbUrl = None) -> None:
    """Show the schema revision of the database and of this code."""
    from db import migrate

    rt = _runtime(database_url, migrate=False)
    typer.echo(f"database: {migrate.current_revision(rt.url) or 'none'}")
    typer.echo(f"code:     {migrate.head_revision()}")


@db_app.command("prompt-index")
def db_prompt_index(
    drop: Annotated[bool, typer.Option("--drop", help="Drop the index instead.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Only say where it stands.")] = False,
    database_url: DbUrl = None,
) -> None:
    """Build (or drop) the trigram index that makes the explorer's prompt search fast.

    Opt-in, because it slows every insert into generations about 6.6x (docs/dashboard.md);
    built CONCURRENTLY, so ingest goes on meanwhile. Needs PostgreSQL's pg_trgm extension.
    """
    import psycopg

    from db.queries import prompt_index

    rt = _runtime(database_url)
    with psycopg.connect(rt.conninfo, autocommit=True) as conn:
        try:
            if drop:
                prompt_index.drop(conn)
            elif not status:
                prompt_index.create(conn)
        except prompt_index.PromptIndexUnavailable as exc:
            raise fail(str(exc)) from None
        st = prompt_index.state(conn)
    size = f", {st.size_bytes / 2**20:,.1f} MiB" if st.size_bytes is not None else ""
    typer.echo(
        f"prompt index {prompt_index.INDEX}: {'present' if st.present else 'absent'}{size}"
        f" (pg_trgm {'available' if st.available else 'not available'} on this server)"
    )


# -- collect -------------------------------------------------------------------------------
@collect_app.command("logs")
def collect_logs(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Log files or globs (quote them), e.g. '/var/log/gen/*.jsonl*'. Include "
            "rotated names so lines written just before a rotation are not missed."
        ),
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep tailing, picking up new files.")
    ] = False,
    as_json: AsJson = False,
    batch_rows: Annotated[
        int, typer.Option(min=1, help="Rows per transaction (COPY batch).")
    ] = 5000,
    poll: Annotated[
        float, typer.Option(min=0.05, help="Seconds between polls with --follow.")
    ] = 0.5,
    name: Annotated[
        str | None, typer.Option(help="Collector name in collector_status (default logs@HOST).")
    ] = None,
    database_url: DbUrl = None,
) -> None:
    """Ingest JSON-lines generation logs exactly once; bad lines go to rejected_records."""
    from collectors.logs.collector import DB_DOWN_ERRORS, LogCollector, expand

    if not follow and not expand(paths):
        raise fail(f"no file matches {' '.join(paths)}; check the path or quote the glob", 2)
    rt = _runtime(database_url, wait=follow)
    collector = LogCollector(rt.conninfo, paths, batch_rows=batch_rows, name=name)
    try:
        if follow:
            summary = collector.follow(_stop_on_signals(), poll_s=poll)
        else:
            summary = _collect_with_progress(collector, show=not as_json and sys.stderr.isatty())
    except DB_DOWN_ERRORS as exc:
        raise fail(f"database unavailable: {first_line(exc)}") from None
    finally:
        collector.close()
    d = summary.as_dict()
    emit_summary(
        d,
        as_json,
        f"ingested {d['ingested']} rows, {d['duplicates']} duplicates, {d['rejected']} "
        f"rejected (see rejected_records), {d['blank']} blank lines, from {d['files']} "
        f"files in {d['elapsed_s']} s",
    )


def _collect_with_progress(collector: object, show: bool) -> object:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    if not show:
        return collector.run_once()  # type: ignore[attr-defined]
    total = collector.pending_bytes()  # type: ignore[attr-defined]
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("ingesting", total=total)
        collector.progress = lambda n: bar.advance(task, n)  # type: ignore[attr-defined]
        return collector.run_once()  # type: ignore[attr-defined]


@functools.cache
def build() -> typer.Typer:
    """The full command tree, with the commands that live in their own modules.

    The modules add their commands to module-level Typer objects, so this runs once per
    process: called again (every ``CliRunner`` test does), it would register every command
    again and make each invocation slower than the last.
    """
    from diffwatch import (
        cli_alerts,
        cli_app,
        cli_demo,
        cli_drift,
        cli_gpu,
        cli_review,
        cli_rollups,
        cli_score,
        cli_users,
        cli_worker,
    )

    cli_gpu.register(collect_app)
    cli_demo.register(app)
    cli_score.register(app)
    cli_drift.register(app)
    cli_rollups.register(app)
    cli_app.register(app)
    cli_users.register(app)
    cli_review.register(app)
    cli_alerts.register(app)
    cli_worker.register(app)
    return app


def main() -> None:
    """Entry point of the ``diffwatch`` console script."""
    build()()


if __name__ == "__main__":
    main()
