"""``diffwatch gate``: evaluate a candidate model against a baseline before it ships."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import getpass
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
    help="Release gate: evaluate a candidate pipeline against the baseline on paired prompts "
    "and seeds (alignment, distribution, safety, golden sets, serving cost), with a policy "
    "and an exit code for CI: 0 pass, 1 fail, 3 inconclusive, 2 error (docs/gate.md).",
    no_args_is_help=True,
)


def _runtime(database_url: str | None, wait: bool = False) -> Any:
    """The database, or exit 2: for CI, 1 means the candidate failed and nothing else."""
    try:
        return runtime(database_url, wait=wait)
    except typer.Exit as exc:
        raise typer.Exit(2 if exc.exit_code else 0) from None


def _progress(quiet: bool):
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def tick(stage: str, done: int, total: int) -> None:
        if quiet:
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="step", leave=False)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return tick


def _exit_for(summary: dict[str, Any], as_json: bool, report: Path | None) -> None:
    from diffwatch.gate.report import text_summary, write_reports

    if report is not None:
        written = write_reports(summary, report)
        summary = {**summary, "reports": [str(p) for p in written]}
    if as_json:
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "pairs"}, default=str))
    else:
        typer.echo(text_summary(summary))
    raise typer.Exit(int(summary["exit_code"]))


@app.command("run")
def run_cmd(
    candidate: Annotated[
        str | None,
        typer.Option(
            help="The candidate pipeline: a save_pretrained directory "
            "or a hub id in the local cache."
        ),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="The baseline (production) pipeline, likewise.")
    ] = None,
    candidate_images: Annotated[
        str | None,
        typer.Option(
            help="Instead of --candidate: a JSONL manifest of images made "
            "elsewhere (prompt, seed, parameters, image URI)."
        ),
    ] = None,
    baseline_images: Annotated[
        str | None, typer.Option(help="Instead of --baseline: its JSONL manifest.")
    ] = None,
    candidate_label: Annotated[
        str | None,
        typer.Option(help="Name shown for the candidate (default: its path's last part)."),
    ] = None,
    baseline_label: Annotated[str | None, typer.Option(help="Name shown for the baseline.")] = None,
    candidate_steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1000,
            help="Run the candidate with this many steps (a 'fewer steps' release).",
        ),
    ] = None,
    baseline_steps: Annotated[int | None, typer.Option(min=1, max=1000)] = None,
    candidate_sampler: Annotated[
        str | None,
        typer.Option(help="Run the candidate with this sampler (a 'new scheduler' release)."),
    ] = None,
    baseline_sampler: Annotated[str | None, typer.Option()] = None,
    candidate_compile: Annotated[
        bool,
        typer.Option(
            "--candidate-compile",
            help="torch.compile the candidate's denoiser (a 'compiled "
            "build' release; GPU; its first batch is slow, and the serving-cost warm-up "
            "absorbs it).",
        ),
    ] = False,
    baseline_compile: Annotated[
        bool, typer.Option("--baseline-compile", help="torch.compile the baseline's denoiser.")
    ] = False,
    suite: Annotated[
        list[str] | None, typer.Option(help="A prompt suite (TSV, CSV, JSONL or TOML); repeatable.")
    ] = None,
    golden: Annotated[list[str] | None, typer.Option(help="A golden set file; repeatable.")] = None,
    bias_suite: Annotated[
        str | None,
        typer.Option(
            help="Also probe both sides' perceived demographic skew with this bias suite "
            "('default': the shipped occupations suite) and gate on it (policy [bias], "
            "docs/bias.md). Pipelines only."
        ),
    ] = None,
    bias_seeds: Annotated[
        int | None, typer.Option(min=1, max=10_000, help="Images a bias prompt a side.")
    ] = None,
    production_sample: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also N prompts from logged traffic, stratified by model version and sampler.",
        ),
    ] = 0,
    production_window: Annotated[
        str, typer.Option(help="Traffic window for --production-sample.")
    ] = "7d",
    seeds: Annotated[int, typer.Option(min=1, max=64, help="Seeds a prompt without its own.")] = 1,
    base_seed: Annotated[
        int, typer.Option(min=0, help="Derives the seeds of prompts without their own.")
    ] = 0,
    policy: Annotated[
        str | None, typer.Option(help="Policy TOML (default: the documented defaults).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write gate.json, gate.md and gate.html here.")
    ] = None,
    batch_sizes: Annotated[
        str, typer.Option(help="Serving batch sizes to time, comma-separated.")
    ] = "1",
    latency_repeats: Annotated[
        int, typer.Option(min=1, max=1000, help="Timed calls a side and batch size.")
    ] = 10,
    chunk_items: Annotated[int, typer.Option(min=1, help="Items a chunk of work (per side).")] = 16,
    max_batch: Annotated[int | None, typer.Option(min=1, help="Images a pipeline call.")] = None,
    image_root: Annotated[
        list[str] | None,
        typer.Option(help="A directory manifests' images may be read from; repeatable."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where generated images go (default: DIFFWATCH_HOME/gate).", show_default=False
        ),
    ] = None,
    deployment: Annotated[
        str | None, typer.Option(help="The deploy marker's deployment (default: everywhere).")
    ] = None,
    enqueue_pairs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Then enqueue N of the run's pairs, a random sample seeded by "
            "--base-seed, for raters' blind side-by-side votes (Side-by-side page).",
        ),
    ] = 0,
    lease_seconds: Lease = 600.0,
    device: Device = "auto",
    clip_model: ClipModel = DEFAULT_MODEL,
    clip_pretrained: ClipPretrained = DEFAULT_PRETRAINED,
    clip_checkpoint: ClipCheckpoint = None,
    clip_model_config: ClipModelConfig = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Generate every (prompt, seed) of the suites with both pipelines (or read both
    manifests), score and compare them pair by pair, time both sides' serving cost, and
    decide pass / fail / inconclusive under the policy. Exit 0 pass, 1 fail,
    3 inconclusive, 2 error. `diffwatch gate work` processes may join the run."""
    from diffwatch.gate.run import GateOptions
    from diffwatch.gate.serving import ServingOptions
    from diffwatch.gate.work import SideSpec
    from diffwatch.scoring.clip.config import ClipOptions

    rt = _runtime(database_url)
    try:
        sizes = tuple(int(s) for s in batch_sizes.split(",") if s.strip())
        opts = GateOptions(
            candidate=SideSpec(
                _label(candidate_label, candidate, candidate_images, "candidate"), candidate,
                candidate_images, candidate_steps, candidate_sampler, candidate_compile,
            ),
            baseline=SideSpec(
                _label(baseline_label, baseline, baseline_images, "baseline"), baseline,
                baseline_images, baseline_steps, baseline_sampler, baseline_compile,
            ),
            output_dir=output_dir or rt.settings.home / "gate",
            suites=tuple(suite or ()), golden=tuple(golden or ()),
            production_sample=production_sample, production_window=production_window,
            seeds=seeds, base_seed=base_seed, policy=policy, chunk_items=chunk_items,
            serving=ServingOptions(sizes, latency_repeats), device=device,
            clip=ClipOptions(clip_model, clip_pretrained, clip_checkpoint, clip_model_config),
            max_batch=max_batch, image_roots=tuple(image_root or ()),
            created_by=getpass.getuser(), deployment=deployment, lease_s=lease_seconds,
            bias_suite=bias_suite, bias_seeds=bias_seeds,
        )  # fmt: skip
        opts.check()
    except ValueError as exc:
        raise fail(f"--batch-sizes/options: {exc}", 2) from None
    _run(rt.conninfo, opts, as_json, report, enqueue_pairs)


def _label(label: str | None, pipeline: str | None, manifest: str | None, side: str) -> str:
    if label:
        return label
    src = pipeline or manifest
    return Path(src.rstrip("/")).name or src if src else side


def _run(conninfo: str, opts: Any, as_json: bool, report: Path | None, pairs: int = 0) -> None:
    from diffwatch.gate.human import enqueue_pairs, fold_human
    from diffwatch.gate.run import run_gate

    try:
        summary = run_gate(conninfo, opts, progress=_progress(as_json))
    except Exception as exc:
        raise error_exit(exc) from None
    if pairs:  # the run is stored: a pair that cannot be enqueued must not hide its verdict
        try:
            enqueue_pairs(conninfo, summary["run_id"], pairs, opts.base_seed)
            summary = fold_human(conninfo, summary["run_id"])
        except ValueError as exc:
            typer.echo(f"--enqueue-pairs: {exc}", err=True)
    _exit_for(summary, as_json, report)


@app.command("resume")
def resume_cmd(
    run_id: Annotated[int, typer.Argument(help="The run to finish (see `diffwatch gate list`).")],
    report: Annotated[
        Path | None, typer.Option(help="Write gate.json, gate.md and gate.html here.")
    ] = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Finish a run that a crash or a stop cut short: done chunks are kept, the rest made."""
    from diffwatch.gate.run import resume_gate

    rt = _runtime(database_url)
    try:
        summary = resume_gate(rt.conninfo, run_id, progress=_progress(as_json))
    except Exception as exc:
        raise error_exit(exc) from None
    _exit_for(summary, as_json, report)


@app.command("work")
def work_cmd(
    run_id: Annotated[
        int | None, typer.Option("--run", help="Only this run (default: any running run).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep waiting for new chunks until stopped.")
    ] = False,
    lease_seconds: Lease = 600.0,
    device: Device = "auto",
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Join gate runs: claim chunks under a lease, generate and score them with the run's
    own pipelines and CLIP, on this machine's GPU. Any number may run on any hosts."""
    from diffwatch.gate.run import work_runs

    rt = _runtime(database_url, wait=follow)
    stop = stop_on_signals()
    try:
        done = work_runs(rt.conninfo, run_id=run_id, follow=follow, device=device,
                         lease_s=lease_seconds, stop=stop)  # fmt: skip
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise fail(str(exc), 2) from None
    emit_summary({"chunks": done}, as_json, f"{done} chunks done")


@app.command("report")
def report_cmd(
    run_id: Annotated[int, typer.Argument(help="The run (see `diffwatch gate list`).")],
    report: Annotated[
        Path | None, typer.Option(help="Write gate.json, gate.md and gate.html here.")
    ] = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Print a finished run's verdict, raters' side-by-side votes so far folded in and
    stored (and write its reports); exit with its code."""
    import psycopg

    from diffwatch.db.queries import gate as q
    from diffwatch.gate.human import fold_human

    rt = _runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        row = q.run(conn, run_id)
    if row is None:
        raise fail(f"gate run {run_id}: no such run (see `diffwatch gate list`)", 2)
    if row["status"] != "done":
        raise fail(f"gate run {run_id} is {row['status']}: {row['error'] or 'not finished'}; "
                   f"finish it with `diffwatch gate resume {run_id}`", 2)  # fmt: skip
    try:  # raters' votes since the run finished change the human metric and the verdict
        summary = fold_human(rt.conninfo, run_id)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    _exit_for(summary, as_json, report)


@app.command("enqueue")
def enqueue_cmd(
    run_id: Annotated[int, typer.Argument(help="A finished run (see `diffwatch gate list`).")],
    pairs: Annotated[int, typer.Option(min=1, help="How many more of its pairs to enqueue.")],
    seed: Annotated[int, typer.Option(min=0, help="Seeds the random sample of pairs.")] = 0,
    votes_per_pair: Annotated[
        int, typer.Option(min=1, max=50, help="Votes a pair wants before it stops being served.")
    ] = 1,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Enqueue a random sample of a finished run's pairs for raters' blind side-by-side
    votes (the Side-by-side page); `diffwatch gate report RUN` folds the votes in."""
    import psycopg

    from diffwatch.db.queries.gate_review import counts
    from diffwatch.gate.human import enqueue_pairs

    rt = _runtime(database_url)
    try:
        added = enqueue_pairs(rt.conninfo, run_id, pairs, seed, votes_per_pair)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    with psycopg.connect(rt.conninfo) as conn:
        c = counts(conn, run_id)
    emit_summary(
        {"run_id": run_id, "enqueued": added, "pairs": c.pairs, "rated_pairs": c.rated_pairs,
         "votes": c.votes},
        as_json,
        f"gate run {run_id}: {added} pairs enqueued ({c.pairs} in all, {c.rated_pairs} rated, "
        f"{c.votes} votes)",
    )  # fmt: skip


@app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest runs to show.")] = 20,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """The latest gate runs with their verdicts."""
    import psycopg

    from diffwatch.db.queries import gate as q

    rt = _runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        rows = q.runs(conn, limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    for r in rows:
        typer.echo(
            f"{r['id']:>6}  {r['created_at']:%Y-%m-%d %H:%M}  {r['status']:<8} "
            f"{r['verdict'] or '-':<12} {r['candidate_label']} vs {r['baseline_label']}"
        )


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
