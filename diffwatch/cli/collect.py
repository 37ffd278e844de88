"""``diffwatch collect logs`` (``collect gpu`` is in ``diffwatch.cli.gpu``, added here)."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import sys
from typing import Annotated, Any

import typer

from diffwatch.cli.common import emit_summary, fail, runtime, stop_on_signals
from diffwatch.cli.gpu import collect_gpu
from diffwatch.cli.options import AsJson, DbUrl

app = typer.Typer(help="Ingest generation logs and GPU metrics.", no_args_is_help=True)


@app.command("logs")
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
    from diffwatch.collectors.logs.collector import LogCollector, expand
    from diffwatch.errors import first_line
    from diffwatch.outage import DB_DOWN_ERRORS

    if not follow and not expand(paths):
        raise fail(f"no file matches {' '.join(paths)}; check the path or quote the glob", 2)
    rt = runtime(database_url, wait=follow)
    collector = LogCollector(rt.conninfo, paths, batch_rows=batch_rows, name=name)
    try:
        if follow:
            summary = collector.follow(stop_on_signals(), poll_s=poll)
        else:
            summary = _with_progress(collector, show=not as_json and sys.stderr.isatty())
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


def _with_progress(collector: Any, show: bool) -> Any:
    if not show:
        return collector.run_once()
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    total = collector.pending_bytes()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("ingesting", total=total)
        collector.progress = lambda n: bar.advance(task, n)
        return collector.run_once()


app.command("gpu")(collect_gpu)


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
