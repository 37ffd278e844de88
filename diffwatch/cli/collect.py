"""``diffwatch collect logs`` and ``collect http`` (``collect gpu`` is in ``diffwatch.cli.gpu``,
added here)."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import logging
import sys
from typing import Annotated, Any

import typer

from diffwatch.cli.common import emit_summary, fail, runtime, stop_on_signals
from diffwatch.cli.gpu import collect_gpu
from diffwatch.cli.options import AsJson, DbUrl

app = typer.Typer(
    help="Ingest generation logs (files, or HTTP for services) and GPU metrics.",
    no_args_is_help=True,
)


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


@app.command("http")
def collect_http(
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")],
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 or :: for every interface).")
    ] = "127.0.0.1",
    token_file: Annotated[
        str | None,
        typer.Option(
            envvar="DIFFWATCH_INGEST_TOKEN_FILE",
            help="File holding the bearer token clients must send (surrounding whitespace "
            "ignored).",
            show_default=False,
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Accept requests without a token; refused unless --host is a loopback address.",
        ),
    ] = False,
    max_body_mib: Annotated[
        float, typer.Option(min=0.001, help="Largest request body as sent, MiB (413 above).")
    ] = 10.0,
    max_decoded_mib: Annotated[
        float, typer.Option(min=0.001, help="Largest body after gzip, MiB (413 above).")
    ] = 64.0,
    max_records: Annotated[
        int, typer.Option(min=1, help="Most records in one request (413 above).")
    ] = 10_000,
    pool_size: Annotated[
        int, typer.Option(min=1, help="Database connections, hence batches written at once.")
    ] = 4,
    queue_wait: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds a batch waits for a connection before a 429."),
    ] = 2.0,
    statement_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a batch may take in the database (429 after).")
    ] = 10.0,
    retry_after: Annotated[
        int, typer.Option(min=1, help="Retry-After seconds sent with a 429.")
    ] = 2,
    trusted_proxies: Annotated[
        str,
        typer.Option(
            envvar="DIFFWATCH_TRUSTED_PROXIES",
            help="Proxies whose X-Forwarded-For names the client (addresses or networks, "
            "comma-separated).",
        ),
    ] = "",
    max_connections: Annotated[
        int,
        typer.Option(min=1, help="Requests in flight at once (503 beyond); bounds memory."),
    ] = 64,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Collector name in collector_status (default http@HOST).")
    ] = None,
    database_url: DbUrl = None,
) -> None:
    """Serve POST /v1/generations: batches of log records over HTTP, stored exactly once."""
    from pathlib import Path

    from diffwatch.collectors.http.app import IngestOptions, MiB, describe
    from diffwatch.collectors.http.serve import is_loopback, serve
    from diffwatch.model.client_address import parse_trusted

    token: str | None = None
    if token_file:
        try:
            token = Path(token_file).read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read the token file {token_file}: {exc}", 2) from None
        if not token:
            raise fail(f"the token file {token_file} is empty; write a long random token", 2)
    elif not no_auth:
        raise fail(
            "no bearer token: pass --token-file FILE (or DIFFWATCH_INGEST_TOKEN_FILE); "
            "--no-auth is allowed only on a loopback --host",
            2,
        )
    elif not is_loopback(host):
        raise fail(
            f"--no-auth on {host} would let anyone who reaches this port write records; "
            "use --token-file, or listen on 127.0.0.1 behind an authenticating proxy",
            2,
        )
    try:
        proxies = parse_trusted(trusted_proxies)
    except ValueError as exc:
        raise fail(f"--trusted-proxies: {exc}", 2) from None
    rt, expect = _runtime_or_later(database_url)
    options = IngestOptions(
        conninfo=rt.conninfo,
        expect_revision=expect,
        token=token,
        max_body_bytes=int(max_body_mib * MiB),
        max_decoded_bytes=int(max_decoded_mib * MiB),
        max_records=max_records,
        pool_size=pool_size,
        queue_wait_s=queue_wait,
        statement_timeout_ms=int(statement_timeout * 1000),
        retry_after_s=retry_after,
        trusted_proxies=proxies,
        name=name,
    )
    typer.echo(
        f"serving POST /v1/generations on http://{host}:{port} {describe(options)}", err=True
    )
    serve(options, host, port, access_log=access_log, max_connections=max_connections)


def _runtime_or_later(database_url: str | None) -> tuple[Any, str | None]:
    """The runtime, its schema checked now if the database answers; else the revision to
    insist on once it does (the server listens meanwhile: 429s, /readyz 503)."""
    from sqlalchemy.exc import OperationalError

    from diffwatch.context import SchemaOutOfDate, ensure_schema
    from diffwatch.db import migrate
    from diffwatch.errors import first_line

    rt = runtime(database_url, migrate=False)
    try:
        ensure_schema(rt)
    except OperationalError as exc:
        logging.getLogger("diffwatch").warning(
            "database unavailable (%s); listening anyway: POST answers 429 and /readyz 503 "
            "until it is back, and the schema is checked then",
            first_line(exc.orig or exc),
        )
        return rt, migrate.head_revision()
    except SchemaOutOfDate as exc:
        raise fail(str(exc)) from None
    return rt, None


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
