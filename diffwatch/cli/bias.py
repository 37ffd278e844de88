"""``diffwatch bias``: measure the perceived demographic skew of a model's images."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from diffwatch.cli.common import emit_summary, error_exit, fail, runtime, stop_on_signals
from diffwatch.cli.options import (
    AsJson,
    ClipCheckpoint,
    ClipModel,
    ClipModelConfig,
    ClipPretrained,
    DbUrl,
    Device,
    Lease,
)
from diffwatch.scoring.clip.config import DEFAULT_MODEL, DEFAULT_PRETRAINED

app = typer.Typer(
    help="Bias probe: the perceived gender presentation, skin tone and age of the people a "
    "model draws for neutral prompts, per version and over time; skew metrics of any "
    "table of counts (docs/bias.md). Perceived attributes of generated images, never "
    "facts about people.",
    no_args_is_help=True,
)

Pipeline = Annotated[
    str,
    typer.Option(
        envvar="DIFFWATCH_PIPELINE",
        help="The pipeline to probe: a save_pretrained directory or a hub id in the local cache.",
    ),
]


def _progress(quiet: bool):
    from tqdm import tqdm

    bar: list[Any] = []

    def tick(done: int, total: int) -> None:
        if quiet:
            return
        if not bar:
            bar.append(tqdm(total=total, desc="probe", unit="chunk", leave=False))
        bar[0].n = done
        bar[0].refresh()
        if done >= total:
            bar[0].close()

    return tick


@app.command("probe")
def probe_cmd(
    pipeline: Pipeline,
    suite: Annotated[
        str | None,
        typer.Option(help="A probe suite TOML (default: the shipped occupations suite)."),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=10_000,
            help="Images per prompt (default: the suite's). A share's 95 % interval is about "
            "+-10 points at 100 and +-6 at 250 (docs/bias.md).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="The model name to file the run under (default: the pipeline directory's name)."
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(help="The model version (default: a hash of the pipeline's config files)."),
    ] = None,
    faces: Annotated[
        bool, typer.Option(help="Also read faces with NudeNet, and skin tone from face pixels.")
    ] = True,
    save_images: Annotated[
        bool, typer.Option(help="Keep the images (the Fairness page's example grids).")
    ] = True,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Where images go (default: DIFFWATCH_HOME/bias).", show_default=False),
    ] = None,
    chunk_items: Annotated[int, typer.Option(min=1, help="Images a chunk of work.")] = 64,
    max_batch: Annotated[int | None, typer.Option(min=1, help="Images a pipeline call.")] = None,
    worst_k: Annotated[int, typer.Option(min=1, help="Prompts in the worst-k aggregates.")] = 5,
    every: Annotated[
        str | None,
        typer.Option(
            help="Run on a schedule: a probe now and then every DURATION (e.g. 1d, 12h), "
            "models loaded once, until stopped (SIGINT/SIGTERM). A failed run is logged and "
            "tried again at the next period."
        ),
    ] = None,
    lease_seconds: Lease = 600.0,
    device: Device = "auto",
    clip_model: ClipModel = DEFAULT_MODEL,
    clip_pretrained: ClipPretrained = DEFAULT_PRETRAINED,
    clip_checkpoint: ClipCheckpoint = None,
    clip_model_config: ClipModelConfig = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Generate every prompt of the suite with N seeds, perceive the person in each image,
    store the run and print its skew metrics, compared with the suite's previous run on the
    same model. `diffwatch bias work` processes on other GPUs may join the run."""
    from diffwatch.bias.probe import ProbeOptions, run_probe
    from diffwatch.bias.report import render_run
    from diffwatch.scoring.clip.config import ClipOptions

    rt = runtime(database_url)
    opts = ProbeOptions(
        pipeline=pipeline, suite=suite, seeds=seeds, model=model, version=version,
        device=device, faces=faces, save_images=save_images,
        clip=ClipOptions(clip_model, clip_pretrained, clip_checkpoint, clip_model_config),
        max_batch=max_batch, chunk_items=chunk_items,
        output_dir=output_dir or rt.settings.home / "bias", worst_k=worst_k,
        lease_s=lease_seconds,
    )  # fmt: skip
    stop = stop_on_signals()

    def show(result: dict[str, Any]) -> None:
        typer.echo(json.dumps(result, default=str) if as_json else render_run(result))

    if every is not None:
        _scheduled(rt.conninfo, opts, every, stop, show)
        return
    try:
        result = run_probe(rt.conninfo, opts, progress=_progress(as_json), stop=stop)
    except Exception as exc:
        raise error_exit(exc) from None
    show(result)


def _scheduled(conninfo: str, opts: Any, every: str, stop: Any, show: Any) -> None:
    """``bias probe --every``: the scheduled probe, until a signal stops it."""
    import logging

    from diffwatch.bias.probe import probe_every
    from diffwatch.model.alert_rules import parse_duration

    try:
        every_s = parse_duration(every)
        if every_s < 60:
            raise ValueError(f"must be at least 1m, got {every!r}")
    except ValueError as exc:
        raise fail(f"--every: {exc}", 2) from None
    log = logging.getLogger("diffwatch.bias")

    def on_error(exc: BaseException) -> None:
        log.error("bias probe failed, next try in %s s: %s", every_s, exc)
        typer.secho(f"error: bias probe: {exc} (next try in {every})", fg="red", err=True)

    try:
        probe_every(conninfo, opts, every_s, stop=stop, on_result=show, on_error=on_error)
    except Exception as exc:
        raise error_exit(exc) from None


@app.command("resume")
def resume_cmd(
    run_id: Annotated[int, typer.Argument(help="The run to finish (see `diffwatch bias runs`).")],
    device: Annotated[
        str | None, typer.Option(help="Run on this device instead of the run's own.")
    ] = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Finish a run that a crash, a stop or an outage cut short: its done chunks are kept,
    the rest made with the run's own pipeline, CLIP and options, then summarised."""
    from diffwatch.bias.probe import resume_probe
    from diffwatch.bias.report import render_run

    rt = runtime(database_url)
    stop = stop_on_signals()
    try:
        result = resume_probe(rt.conninfo, run_id, device=device,
                              progress=_progress(as_json), stop=stop)  # fmt: skip
    except Exception as exc:
        raise error_exit(exc) from None
    typer.echo(json.dumps(result, default=str) if as_json else render_run(result))


@app.command("work")
def work_cmd(
    pipeline: Pipeline,
    run_id: Annotated[
        int | None,
        typer.Option("--run", help="Only this run (default: any running run of this pipeline)."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep waiting for new chunks until stopped.")
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Where images go (default: DIFFWATCH_HOME/bias).", show_default=False),
    ] = None,
    max_batch: Annotated[int | None, typer.Option(min=1, help="Images a pipeline call.")] = None,
    lease_seconds: Lease = 600.0,
    device: Device = "auto",
    clip_model: ClipModel = DEFAULT_MODEL,
    clip_pretrained: ClipPretrained = DEFAULT_PRETRAINED,
    clip_checkpoint: ClipCheckpoint = None,
    clip_model_config: ClipModelConfig = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Join probe runs of this pipeline: claim chunks under a lease, generate and perceive
    them on this machine's GPU. Any number may run on any hosts; use the same CLIP as the
    run's `bias probe`."""
    from diffwatch.bias.probe import ProbeOptions, load_models
    from diffwatch.bias.work import work
    from diffwatch.scoring.clip.config import ClipOptions

    rt = runtime(database_url, wait=follow)
    opts = ProbeOptions(
        pipeline=pipeline, device=device, max_batch=max_batch,
        clip=ClipOptions(clip_model, clip_pretrained, clip_checkpoint, clip_model_config),
        output_dir=output_dir or rt.settings.home / "bias",
    )  # fmt: skip
    stop = stop_on_signals()
    try:
        done = work(rt.conninfo, load_models(opts), run_id=run_id, follow=follow,
                    lease_s=lease_seconds, stop=stop)  # fmt: skip
    except Exception as exc:
        raise error_exit(exc) from None
    emit_summary({"chunks": done}, as_json, f"{done} chunks done")


@app.command("runs")
def runs_cmd(
    suite: Annotated[str | None, typer.Option(help="Only this suite's runs.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """List probe runs, newest first, with their headline skew."""
    import psycopg

    from diffwatch.bias.report import render_runs
    from diffwatch.db.queries import bias as q

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        rows = q.runs(conn, suite=suite, models=(model,) if model else (), limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
    else:
        typer.echo(render_runs(rows))


@app.command("show")
def show_cmd(
    run_id: Annotated[int, typer.Argument(help="The run (see `diffwatch bias runs`).")],
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Print a finished run's metrics."""
    import psycopg

    from diffwatch.bias.report import render_run
    from diffwatch.db.queries import bias as q

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        row = q.run(conn, run_id)
    if row is None:
        raise fail(f"bias run {run_id}: no such run (see `diffwatch bias runs`)", 2)
    if row["summary"] is None:
        raise fail(f"bias run {run_id}: {row['status']}, no summary yet"
                   + (f" ({row['error']})" if row["error"] else ""), 2)  # fmt: skip
    result = {
        "run_id": row["id"], "suite": row["suite_name"], "model": row["model"],
        "version": row["model_version"], "summary": row["summary"],
    }  # fmt: skip
    typer.echo(json.dumps(result, default=str) if as_json else render_run(result))


@app.command("compare")
def compare_cmd(
    baseline: Annotated[
        int, typer.Argument(help="The baseline run (e.g. the version in production).")
    ],
    candidate: Annotated[int, typer.Argument(help="The candidate run, of the same suite.")],
    alpha: Annotated[
        float, typer.Option(min=0.001, max=0.5, help="Level of the tests after correction.")
    ] = 0.05,
    correction: Annotated[
        str,
        typer.Option(
            help="Multiple-testing control: bh (false discovery rate) or holm (family-wise error)."
        ),
    ] = "bh",
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Compare two probe runs of one suite prompt by prompt: a two-proportion test per prompt
    and class with Benjamini-Hochberg (or Holm) control, and each aggregate's change."""
    import psycopg

    from diffwatch.bias.report import render_comparison
    from diffwatch.bias.summary import compare_runs
    from diffwatch.db.queries import bias as q

    if correction not in ("bh", "holm"):
        raise fail(f"--correction must be bh or holm, got {correction!r}", 2)
    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        rows = {i: q.run(conn, i) for i in (baseline, candidate)}
        for i, row in rows.items():
            if row is None or row["status"] != "done":
                state = "no such run" if row is None else f"{row['status']}, not done"
                raise fail(f"bias run {i}: {state} (see `diffwatch bias runs`)", 2)
        a, b = rows[baseline], rows[candidate]
        if a["suite_name"] != b["suite_name"]:
            suites = f"{a['suite_name']!r} and {b['suite_name']!r}"
            raise fail(f"runs {baseline} and {candidate} probe different suites ({suites}): "
                       "compare runs of one suite", 2)  # fmt: skip
        items_a, items_b = q.items(conn, baseline), q.items(conn, candidate)
    summary = b["summary"] or {}
    tests = compare_runs(items_a, items_b, b["suite"], k=summary.get("k", 5),
                         level=summary.get("level", 0.95), alpha=alpha,
                         correction=correction)  # fmt: skip
    result = {
        "baseline": {"run_id": baseline, "model": a["model"], "version": a["model_version"]},
        "candidate": {"run_id": candidate, "model": b["model"], "version": b["model_version"]},
        "suite": b["suite_name"], "alpha": alpha, "correction": correction, "tests": tests,
    }  # fmt: skip
    typer.echo(json.dumps(result, default=str) if as_json else render_comparison(result))


@app.command("metrics")
def metrics_cmd(
    counts: Annotated[
        Path, typer.Argument(help="A CSV of counts with the header prompt,class,count.")
    ],
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Expected shares: a CSV class,share (every prompt) or "
            "prompt,class,share (labour statistics, say). Default: uniform."
        ),
    ] = None,
    worst_k: Annotated[int, typer.Option(min=1, help="Prompts in the worst-k aggregates.")] = 5,
    level: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Confidence level of the intervals.")
    ] = 0.95,
    abstain_class: Annotated[
        str, typer.Option(help="The class that counts abstentions, not a class of its own.")
    ] = "abstain",
    as_json: AsJson = False,
) -> None:
    """Skew metrics of a table of counts from any classifier: each prompt's class shares
    with Wilson intervals, |p - 0.5| for two classes, KL to uniform and MaxSkew against
    uniform or the reference, and their mean and worst-k over prompts. No database needed."""
    from diffwatch.bias.metrics_report import metrics_report, render_text

    try:
        report = metrics_report(
            counts, reference, k=worst_k, level=level, abstain_class=abstain_class
        )
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc), 2) from None
    typer.echo(json.dumps(report, default=str) if as_json else render_text(report))


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
