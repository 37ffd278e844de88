"""``diffwatch collect gpu`` (registered on the collect group by diffwatch.cli)."""

# No ``from __future__ import annotations``: typer reads the option annotations of the
# command defined inside register(), which name types imported there, not module globals.
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from collectors.gpu.collector import Source


def register(collect_app: typer.Typer) -> None:
    """Add the ``gpu`` command to ``collect_app``."""
    # diffwatch.cli is fully imported by the time build() calls this: no import cycle.
    from diffwatch.cli import AsJson, DbUrl

    @collect_app.command("gpu")
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
    from diffwatch.cli import fail

    if source.strip().lower() == "nvml":
        from collectors.gpu.nvml import NvmlSource, NvmlUnavailable

        try:
            return NvmlSource()
        except NvmlUnavailable as exc:
            raise fail(str(exc)) from None
    from collectors.gpu.scrape import DcgmSource

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

    from collectors.gpu.collector import GpuCollector
    from diffwatch.cli import _runtime, _stop_on_signals, emit_summary, fail
    from diffwatch.errors import first_line

    src = _open_source(source, timeout)  # before the database: NVML errors come first
    try:
        rt = _runtime(database_url)
        collector = GpuCollector(rt.conninfo, src, name=name, buffer_rows=buffer_rows)
        try:
            if once:
                summary = collector.run_once()
            else:
                summary = collector.run(_stop_on_signals(), interval_s=interval)
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
