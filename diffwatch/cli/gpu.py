"""``diffwatch collect gpu`` (added to the collect group by ``diffwatch.cli.collect``)."""

# No ``from __future__ import annotations``: typer reads the annotations of the command.
from typing import TYPE_CHECKING, Annotated

import typer

from diffwatch.cli.common import emit_summary, fail, runtime, stop_on_signals
from diffwatch.cli.options import AsJson, DbUrl

if TYPE_CHECKING:
    from diffwatch.collectors.gpu.collector import Source


def collect_gpu(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="'nvml' to read this host's GPUs, or a dcgm-exporter URL such as "
            "http://gpu-node-1:9400/metrics ('/metrics' is added when the URL has no path).",
            show_default=False,
        ),
    ],
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between samples (until Ctrl-C/SIGTERM).")
    ] = 10.0,
    once: Annotated[bool, typer.Option("--once", help="Take one sample, store it, exit.")] = (
        False
    ),
    as_json: AsJson = False,
    timeout: Annotated[
        float, typer.Option(min=0.05, help="Seconds to wait for a dcgm-exporter response.")
    ] = 5.0,
    buffer_rows: Annotated[
        int,
        typer.Option(
            min=1, help="Readings kept in memory while the database is away (oldest dropped)."
        ),
    ] = 50_000,
    name: Annotated[
        str | None, typer.Option(help="Collector name in collector_status (default gpu@HOST).")
    ] = None,
    database_url: DbUrl = None,
) -> None:
    """Sample GPU utilisation, memory, power, temperature and SM clock into gpu_samples."""
    _collect_gpu(source, interval, once, as_json, timeout, buffer_rows, name, database_url)


def _open_source(source: str, timeout: float) -> "Source":

    if source.strip().lower() == "nvml":
        from diffwatch.collectors.gpu.nvml import NvmlSource, NvmlUnavailable

        try:
            return NvmlSource()
        except NvmlUnavailable as exc:
            raise fail(str(exc)) from None
    from diffwatch.collectors.gpu.scrape import DcgmSource

    try:
        return DcgmSource(source, timeout_s=timeout)
    except ValueError as exc:
        raise fail(str(exc), 2) from None


def _collect_gpu(
    source: str,
    interval: float,
    once: bool,
    as_json: bool,
    timeout: float,
    buffer_rows: int,
    name: str | None,
    database_url: str | None,
) -> None:
    import psycopg

    from diffwatch.collectors.gpu.collector import GpuCollector
    from diffwatch.errors import first_line

    src = _open_source(source, timeout)  # before the database: NVML errors come first
    try:
        rt = runtime(database_url)
        collector = GpuCollector(rt.conninfo, src, name=name, buffer_rows=buffer_rows)
        try:
            if once:
                summary = collector.run_once()
            else:
                summary = collector.run(stop_on_signals(), interval_s=interval)
        except psycopg.Error as exc:
            raise fail(f"database error while storing GPU samples: {first_line(exc)}") from None
    finally:
        src.close()
    d = summary.as_dict()
    emit_summary(
        d,
        as_json,
        f"stored {d['samples_stored']} GPU readings from {d['source']}: "
        f"{d['scrapes']} samples, {d['failed_scrapes']} failed, "
        f"{d['samples_dropped']} dropped, {d['samples_unsaved']} not written, "
        f"in {d['elapsed_s']} s",
    )
    if once and (summary.failed or summary.unsaved):
        raise typer.Exit(1)
