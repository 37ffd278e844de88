"""``diffwatch export``: figures for other monitoring systems (``prometheus``)."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
from typing import Annotated

import typer

from diffwatch.cli.common import fail, runtime
from diffwatch.cli.options import DbUrl

HELP = "Export metrics to other monitoring systems: a Prometheus endpoint (docs/prometheus.md)."

app = typer.Typer(help=HELP, no_args_is_help=True)


@app.command("prometheus")
def prometheus_cmd(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port of /metrics (0: any free one).")
    ] = 9464,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
    ] = "0.0.0.0",
    window: Annotated[
        str,
        typer.Option(help="Rollup window each value covers, e.g. 5m, 1h (whole minutes)."),
    ] = "5m",
    cache_seconds: Annotated[
        float, typer.Option(min=0, help="Seconds a database read serves scrapes.")
    ] = 30.0,
    max_series: Annotated[
        int,
        typer.Option(
            min=1, help="Most (model, version, deployment) keys exported; the rest are 'other'."
        ),
    ] = 50,
    database_url: DbUrl = None,
) -> None:
    """Serve Prometheus metrics from the rollups at http://HOST:PORT/metrics until Ctrl-C
    or SIGTERM."""
    from diffwatch.exporters.prometheus import (
        DiffwatchCollector,
        ExporterConfig,
        parse_window,
        serve,
    )
    from diffwatch.periodic import stop_on_signals

    try:
        cfg = ExporterConfig(
            window_s=parse_window(window), cache_s=cache_seconds, max_series=max_series
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    rt = runtime(database_url, wait=True)
    stop = stop_on_signals()
    try:
        server = serve(DiffwatchCollector(rt.conninfo, cfg), host, port)
    except OSError as exc:
        raise fail(
            f"cannot listen on {host}:{port}: {exc}; pick another --port or --host"
        ) from None
    typer.echo(f"serving Prometheus metrics at http://{host}:{server.port}/metrics", err=True)
    stop.wait()
    server.stop()


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
