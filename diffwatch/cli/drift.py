"""``diffwatch drift prompts``, ``drift images`` and ``drift regenerate``: typed options to
the drift stage (``diffwatch.drift``)."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import sys
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from diffwatch.cli.common import aware, emit_summary, fail, runtime, stop_on_signals
from diffwatch.cli.options import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    AsJson,
    ClipCheckpoint,
    ClipModel,
    ClipModelConfig,
    ClipOptions,
    ClipPretrained,
    DbUrl,
    Device,
)

if TYPE_CHECKING:
    from diffwatch.drift.jobs import DriftModels
    from diffwatch.drift.prompts import PromptDriftOptions

app = typer.Typer(
    help="Drift checks: prompt-distribution drift, and output drift by re-generating logged "
    "prompts (and a golden set) with the production diffusers pipeline.",
    no_args_is_help=True,
)

Until = Annotated[
    datetime | None,
    typer.Option(
        help="End of duration windows (ISO 8601; default: the newest logged generation).",
        show_default=False,
    ),
]
Model = Annotated[
    str | None, typer.Option(help="Only generations of this model (the logged `model`).")
]
Seed = Annotated[int, typer.Option(help="Seed of the random samples and the test.")]
Current = Annotated[
    str,
    typer.Option(
        help="The current window: a duration ending at --until (90m, 24h, 7d) or "
        "START..END (ISO 8601)."
    ),
]
Alpha = Annotated[float, typer.Option(min=0.0001, max=0.5, help="Significance level of the tests.")]


@dataclass(frozen=True)
class RegenArgs:
    """``diffwatch drift regenerate``'s options as given (see its --help), but its models."""

    sample: int | None
    golden: Path | None
    rebaseline: bool
    since: str
    until: datetime | None
    model: str | None
    min_tolerance: float
    tolerance_factor: float
    calibration: int
    output_dir: Path | None
    seed: int
    as_json: bool


class Combine(StrEnum):
    """--combine's choices (``diffwatch.drift.prompts.COMBINE_CHOICES``)."""

    auto = "auto"
    min_p = "min-p"
    lexical_first = "lexical-first"


@app.command("prompts")
def prompts(
    current: Current = "24h",
    reference: Annotated[
        str | None,
        typer.Option(
            help="The reference window: a duration just before the current window, or "
            "START..END. Default: 7d.",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="Compare with a pinned prompt baseline instead of a window."),
    ] = None,
    save_baseline: Annotated[
        str | None,
        typer.Option(help="Pin this run's reference sample under NAME for later runs."),
    ] = None,
    replace_baseline: Annotated[
        bool, typer.Option("--replace-baseline", help="Let --save-baseline overwrite NAME.")
    ] = False,
    model: Model = None,
    until: Until = None,
    max_prompts: Annotated[
        int, typer.Option(min=20, help="Random sample cap per side (prompts).")
    ] = 2000,
    permutations: Annotated[
        int, typer.Option(min=50, help="Permutations of the MMD test (p-value resolution).")
    ] = 500,
    alpha: Alpha = 0.05,
    clusters: Annotated[
        int | None,
        typer.Option(min=2, max=50, help="Prompt clusters for 'what moved' (default: auto)."),
    ] = None,
    seed: Seed = 0,
    combine: Annotated[
        Combine,
        typer.Option(
            help="How the embedding and the lexical test make one verdict at α: 'min-p' "
            "(Westfall–Young; either test can flag a run), 'lexical-first' (the words at the "
            "full α, the embeddings only after them: for an embedder that knows no real "
            "prompt language) or 'auto' (min-p for the CLIP given here).",
        ),
    ] = Combine.auto,
    device: Device = "auto",
    clip_model: ClipModel = DEFAULT_MODEL,
    clip_pretrained: ClipPretrained = DEFAULT_PRETRAINED,
    clip_checkpoint: ClipCheckpoint = None,
    clip_model_config: ClipModelConfig = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Test whether what users ask for has drifted: CLIP text embeddings of the current
    window's prompts against a reference window (or pinned baseline), with a kernel MMD
    permutation test, an effect size, the prompt clusters and terms that moved, and
    χ²/KS tests of sampler, steps, CFG and resolution. Stores one run."""
    from diffwatch.drift.jobs import DriftModels
    from diffwatch.drift.prompts import PromptDriftOptions
    from diffwatch.errors import first_line

    try:
        opts = PromptDriftOptions(
            current=current, reference=reference, baseline=baseline,
            save_baseline=save_baseline, replace_baseline=replace_baseline, model=model,
            until=aware(until), max_prompts=max_prompts, permutations=permutations,
            alpha=alpha, clusters=clusters, seed=seed, combine=combine.value,
        )  # fmt: skip
    except (ValueError, RuntimeError) as exc:
        raise fail(first_line(exc), 2) from None
    clip = ClipOptions(clip_model, clip_pretrained, clip_checkpoint, clip_model_config)
    _prompts(opts, DriftModels(device=device, clip=clip), as_json, database_url)


@app.command("regenerate")
def regenerate(
    pipeline: Annotated[
        str | None,
        typer.Option(
            envvar="DIFFWATCH_PIPELINE",
            help="The production diffusers pipeline: a local directory saved with "
            "save_pretrained, or a hub id already in the local Hugging Face cache.",
            show_default=False,
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Recent prompts to re-generate, stratified by model version (default: "
            "32; with --golden only the golden set runs unless --sample is given).",
            show_default=False,
        ),
    ] = None,
    golden: Annotated[
        Path | None,
        typer.Option(help="A golden set file (TOML or JSON; see docs/drift.md)."),
    ] = None,
    rebaseline: Annotated[
        bool,
        typer.Option("--rebaseline", help="Store new golden baselines for this version."),
    ] = False,
    since: Annotated[
        str, typer.Option(help="Sample from this window (duration or START..END).")
    ] = "24h",
    until: Until = None,
    model: Model = None,
    min_tolerance: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Smallest flagged 1 − CLIP image cosine."),
    ] = 0.03,
    tolerance_factor: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Tolerance = max(--min-tolerance, factor × the largest same-seed distance).",
        ),
    ] = 3.0,
    calibration: Annotated[
        int, typer.Option(min=0, help="Sampled prompts generated twice to calibrate.")
    ] = 8,
    max_batch: Annotated[
        int | None,
        typer.Option(min=1, help="Images a pipeline call (default: 16 on a GPU, 4 on CPU)."),
    ] = None,
    hf_cache: Annotated[
        str | None,
        typer.Option(
            help="The Hugging Face hub cache that holds a --pipeline hub id "
            "(default: $HF_HUB_CACHE or ~/.cache/huggingface/hub).",
            show_default=False,
        ),
    ] = None,
    compile_unet: Annotated[
        bool, typer.Option("--compile", help="torch.compile the UNet (GPU; slow first batch).")
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where re-generated and baseline images go (default: DIFFWATCH_HOME/drift).",
            show_default=False,
        ),
    ] = None,
    seed: Seed = 0,
    device: Device = "auto",
    clip_model: ClipModel = DEFAULT_MODEL,
    clip_pretrained: ClipPretrained = DEFAULT_PRETRAINED,
    clip_checkpoint: ClipCheckpoint = None,
    clip_model_config: ClipModelConfig = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Re-generate logged prompts with their seed, sampler, steps, CFG and size on the
    production pipeline and compare each image with the original (CLIP image cosine and
    CLIP scores); flag those beyond a tolerance calibrated by generating seeds twice.
    With --golden, also run a golden set against its stored baselines."""
    from diffwatch.drift.jobs import DriftModels

    clip = ClipOptions(clip_model, clip_pretrained, clip_checkpoint, clip_model_config)
    models = DriftModels(
        device=device, clip=clip, pipeline=pipeline, max_batch=max_batch,
        compile=compile_unet, hf_cache=hf_cache,
    )  # fmt: skip
    a = RegenArgs(
        sample=sample, golden=golden, rebaseline=rebaseline, since=since, until=until,
        model=model, min_tolerance=min_tolerance, tolerance_factor=tolerance_factor,
        calibration=calibration, output_dir=output_dir, seed=seed, as_json=as_json,
    )  # fmt: skip
    _regenerate(models, a, database_url)


@app.command("images")
def images(
    current: Current = "24h",
    reference: Annotated[
        str,
        typer.Option(
            help="The reference window: a duration just before the current one, or START..END."
        ),
    ] = "7d",
    model: Model = None,
    version: Annotated[
        list[str] | None,
        typer.Option(
            "--version",
            help="Only these model versions (repeatable): e.g. one version against itself "
            "over time, for a silent update under an unchanged label.",
        ),
    ] = None,
    until: Until = None,
    clip_version: Annotated[
        str | None,
        typer.Option(
            help="Which stored CLIP embeddings (scorer version, e.g. "
            "ViT-B-32/laion2b_s34b_b79k). Default: the one with the most images."
        ),
    ] = None,
    max_images: Annotated[
        int, typer.Option(min=20, help="Even sample cap per window (images).")
    ] = 5000,
    permutations: Annotated[
        int, typer.Option(min=50, help="Permutations of each test (p-value resolution).")
    ] = 200,
    alpha: Alpha = 0.05,
    clusters: Annotated[
        int | None,
        typer.Option(min=2, max=50, help="Image clusters for 'what moved' (default: auto)."),
    ] = None,
    min_pairs: Annotated[
        int,
        typer.Option(min=2, help="Same-prompt image pairs needed to compare two versions."),
    ] = 20,
    seed: Seed = 0,
    device: Annotated[
        str,
        typer.Option(help="Where the kernel sums run: cpu, cuda, cuda:N or auto."),
    ] = "cpu",
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Test whether the images production makes have changed: the stored CLIP image
    embeddings of the current window against the reference window (CMMD with a permutation
    test and an effect size), overall, per model version, and between versions on the same
    prompts, so a traffic change and a model change are told apart; with the image clusters
    that moved. Needs pgvector (image embeddings are stored by `diffwatch score`). Stores
    one run; exit 0 whether or not it drifted, 1 when it cannot run."""
    from diffwatch.drift.images import (
        ImageDriftOptions,
        NotEnoughImages,
        backend_for,
        run_image_drift,
    )
    from diffwatch.errors import first_line

    try:
        opts = ImageDriftOptions(
            current=current, reference=reference, model=model, versions=tuple(version or ()),
            until=aware(until), scorer_version=clip_version, max_images=max_images,
            permutations=permutations, alpha=alpha, clusters=clusters, min_pairs=min_pairs,
            seed=seed,
        )  # fmt: skip
        backend = backend_for(device)
    except (ValueError, RuntimeError) as exc:
        raise fail(first_line(exc), 2) from None
    rt = runtime(database_url)
    try:
        result = run_image_drift(rt.conninfo, opts, backend=backend, progress=_say(as_json))
    except (NotEnoughImages, ValueError) as exc:
        raise fail(str(exc)) from None
    emit_summary(result, as_json, image_report(result))


def image_report(r: dict[str, Any]) -> str:
    """A person's summary of an image-drift run: verdict, attribution, tests, what moved."""

    def line(t: dict[str, Any]) -> str:
        return (
            f"CMMD {t['cmmd']:.3f}, p = {t['p_value']:.4f}, effect {t['effect_size']:.3f}"
            f" ({t['n_reference']} vs {t['n_current']})" + (" DRIFT" if t["drifted"] else "")
        )

    lines = [
        f"image drift run {r['run_id']}: {'DRIFT' if r['drifted'] else 'no drift'}"
        f" ({r['attribution']})",
        f"  embeddings: {r['embedder']}",
        f"  reference: {r['windows']['reference']}",
        f"  current:   {r['windows']['current']}",
        f"  all versions: {line(r['overall'])}",
    ]
    lines += [f"  {t['scope']}: {line(t)}" for t in r["per_version"]]
    lines += [f"  {t['scope']} ({t['pairs']} pairs): {line(t)}" for t in r["same_prompts"]]
    for m in r["moved"][:3]:
        ex = m["examples"][0]["prompt"] if m["examples"] else ""
        lines.append(
            f"  cluster {m['cluster']} {'grew' if m['delta'] > 0 else 'shrank'} "
            f"{100 * m['share_reference']:.1f}% → {100 * m['share_current']:.1f}%"
            + (f", e.g. {ex[:80]!r}" if ex else "")
        )
    return "\n".join(lines)


def _prompts(
    opts: "PromptDriftOptions", m: "DriftModels", as_json: bool, database_url: str | None
) -> None:
    from diffwatch.drift.jobs import load_text_embedder
    from diffwatch.drift.prompts import NotEnoughData, run_prompt_drift
    from diffwatch.errors import first_line
    from diffwatch.scoring.clip.config import ClipWeightsError

    rt = runtime(database_url)
    try:
        embedder = load_text_embedder(m)
    except ClipWeightsError as exc:
        raise fail(str(exc)) from None
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise fail(first_line(exc), 2) from None
    say = _say(as_json)
    try:
        result = run_prompt_drift(rt.conninfo, embedder, opts, progress=say)
    except (NotEnoughData, ValueError) as exc:
        raise fail(str(exc)) from None
    emit_summary(result, as_json, prompt_report(result))


def _say(quiet: bool):
    def say(message: str) -> None:
        if not quiet:
            typer.secho(message, err=True, fg="bright_black")

    return say


def prompt_report(r: dict[str, Any]) -> str:
    """A person's summary of a prompt-drift run: verdict, effect, what moved."""
    t = r["test"]
    verdict = "DRIFT" if r["drifted"] else "no drift"
    lines = [
        f"prompt drift run {r['run_id']}: {verdict}"
        + (" (demo: tiny random-weight CLIP, figures mean nothing)" if r.get("demo") else ""),
        f"  reference: {r['windows']['reference']} ({t['n_reference']} prompts)",
        f"  current:   {r['windows']['current']} ({t['n_current']} prompts)",
        f"  MMD test: p = {t['p_value']:.4f} (alpha {t['alpha']}), effect size "
        f"{t['effect_size_name']} = {t['effect_size']:.3f} (0.5: no difference, 1: separable)",
    ]
    for c in r["clusters"][:3]:
        lines.append(
            f"  cluster {c['cluster']} {'grew' if c['delta'] > 0 else 'shrank'} "
            f"{100 * c['share_reference']:.1f}% → {100 * c['share_current']:.1f}% "
            f"[{', '.join(c['terms'][:5])}] e.g. {c['examples'][0] if c['examples'] else ''!r}"
        )
    grew = ", ".join(x["term"] for x in r["terms"]["grew"][:8])
    shrank = ", ".join(x["term"] for x in r["terms"]["shrank"][:8])
    lines.append(f"  terms grew: {grew or '-'}; shrank: {shrank or '-'}")
    for p in r["parameters"]:
        lines.append(
            f"  {p['parameter']}: {p['test']} p = {p['p_value']:.4g}, "
            f"{p['effect_size_name']} {p['effect_size']:.3f}" + (" DRIFT" if p["drifted"] else "")
        )
    return "\n".join(lines)


def _regenerate(m: "DriftModels", a: RegenArgs, database_url: str | None) -> None:
    from diffwatch.drift.jobs import NO_PIPELINE, load_regen_models, run_regenerate
    from diffwatch.drift.regen import RegenOptions
    from diffwatch.errors import first_line
    from diffwatch.scoring.clip.config import ClipWeightsError

    if not m.pipeline:
        raise fail(NO_PIPELINE, 2)
    golden = None
    if a.golden:
        from diffwatch.drift.golden_set import load_golden_set

        try:
            golden = load_golden_set(a.golden)
        except (ValueError, RuntimeError) as exc:
            raise fail(str(exc), 2) from None
    rt = runtime(database_url)
    try:
        opts = RegenOptions(
            output_dir=a.output_dir or rt.settings.home / "drift", sample=a.sample or 32,
            window=a.since, until=aware(a.until), model=a.model,
            min_tolerance=a.min_tolerance, tolerance_factor=a.tolerance_factor,
            calibration=a.calibration, seed=a.seed, rebaseline=a.rebaseline,
        )  # fmt: skip
        models = load_regen_models(m)
    except ClipWeightsError as exc:
        raise fail(str(exc)) from None
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise fail(first_line(exc), 2) from None
    stop = stop_on_signals()
    with _progress(a.as_json) as progress:
        try:
            results = run_regenerate(
                rt.conninfo, models, opts, golden=golden, sample_too=a.sample is not None,
                progress=progress, stop=stop,
            )  # fmt: skip
        except ValueError as exc:
            raise fail(str(exc)) from None
    d = results[0] if len(results) == 1 else {"runs": results}
    emit_summary(d, a.as_json, "\n".join(regen_report(r, False) for r in results))


class _progress:
    """A rich progress bar per stage on a terminal; nothing with --json or when piped."""

    def __init__(self, quiet: bool) -> None:
        self.show = not quiet and sys.stderr.isatty()
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self):
        if not self.show:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self.bar.__enter__()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def regen_report(r: dict[str, Any], demo: bool) -> str:
    """A person's summary of a re-generation or golden-set run."""
    kind = f"golden set {r['golden_set']}" if r.get("golden_set") else "re-generation"
    tol = r.get("tolerance")
    lines = [
        f"{kind} run {r['run_id']}: {r['n_items']} prompts, {r['n_flagged']} flagged, "
        f"{r['n_errors']} errors"
        + (f", tolerance 1 − cosine ≤ {tol:.4f}" if tol is not None else "")
        + (" (demo: tiny random-weight pipeline, images mean nothing)" if demo else ""),
        f"  pipeline: {r['pipeline']}; CLIP: {r['clip']}",
    ]
    if r.get("new_baselines"):
        lines.append(f"  stored {r['new_baselines']} new baselines (first run of this version)")
    cal = r.get("calibration") or {}
    if cal.get("pairs"):
        lines.append(
            f"  calibration: {cal['pairs']} seeds generated twice, largest distance "
            f"{cal['max_distance']:.5f}"
        )
    for version, v in (r.get("by_version") or {}).items():
        mean = v.get("mean_cosine")
        lines.append(
            f"  {version}: {v['items']} prompts, {v['flagged']} flagged"
            + (f", mean image cosine {mean:.4f}" if mean is not None else "")
        )
    for kind_, n in (r.get("errors_by_kind") or {}).items():
        lines.append(f"  errors: {n} × {kind_} (see drift_items)")
    return "\n".join(lines)


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)
