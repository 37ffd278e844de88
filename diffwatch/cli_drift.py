"""``diffwatch drift prompts`` and ``diffwatch drift regenerate`` (registered by diffwatch.cli)."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from scoring.clip_config import DEFAULT_MODEL, DEFAULT_PRETRAINED

drift_app = typer.Typer(
    help="Drift checks: prompt-distribution drift, and output drift by re-generating logged "
    "prompts (and a golden set) with the production diffusers pipeline.",
    no_args_is_help=True,
)

Device = Annotated[str, typer.Option(help="auto (a GPU when one is visible), cuda, cuda:N or cpu.")]
ClipModel = Annotated[str, typer.Option(help="open_clip architecture.")]
ClipPretrained = Annotated[
    str, typer.Option(help="open_clip pretrained tag (from its cache when offline).")
]
ClipCheckpoint = Annotated[
    str | None,
    typer.Option(help="A local open_clip weights file; wins over --clip-pretrained."),
]
ClipModelConfig = Annotated[
    str | None,
    typer.Option(
        help="An open_clip model config JSON for a custom architecture "
        "(its file name, without .json, is the --clip-model)."
    ),
]
TinyClip = Annotated[
    bool,
    typer.Option(
        "--tiny-clip",
        help="Use a tiny random-weight CLIP (demo and tests only: results are labelled "
        "as demo runs and mean nothing).",
    ),
]
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


def register(app: typer.Typer) -> None:
    """Add the ``drift`` command group to ``app``."""
    from diffwatch.cli import AsJson, DbUrl

    app.add_typer(drift_app, name="drift")

    @drift_app.command("prompts")
    def prompts(
        current: Annotated[
            str,
            typer.Option(
                help="The current window: a duration ending at --until (90m, 24h, 7d) or "
                "START..END (ISO 8601)."
            ),
        ] = "24h",
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
        alpha: Annotated[
            float, typer.Option(min=0.0001, max=0.5, help="Significance level of the tests.")
        ] = 0.05,
        clusters: Annotated[
            int | None,
            typer.Option(min=2, max=50, help="Prompt clusters for 'what moved' (default: auto)."),
        ] = None,
        seed: Seed = 0,
        device: Device = "auto",
        clip_model: ClipModel = DEFAULT_MODEL,
        clip_pretrained: ClipPretrained = DEFAULT_PRETRAINED,
        clip_checkpoint: ClipCheckpoint = None,
        clip_model_config: ClipModelConfig = None,
        tiny_clip: TinyClip = False,
        as_json: AsJson = False,
        database_url: DbUrl = None,
    ) -> None:
        """Test whether what users ask for has drifted: CLIP text embeddings of the current
        window's prompts against a reference window (or pinned baseline), with a kernel MMD
        permutation test, an effect size, the prompt clusters and terms that moved, and
        χ²/KS tests of sampler, steps, CFG and resolution. Stores one run."""
        _prompts(locals())

    @drift_app.command("regenerate")
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
        tiny_pipeline: Annotated[
            bool,
            typer.Option(
                "--tiny-pipeline",
                help="Use a tiny random-weight pipeline and CLIP (demo and tests only; "
                "runs are labelled as demo runs).",
            ),
        ] = False,
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
        _regenerate(locals())


def _clip(a: dict[str, Any], device: str, home: Path, tiny: bool) -> tuple[Any, str]:
    """(ClipScorer, label) from the --clip-* options, or the tiny demo CLIP."""
    from scoring.clip import ClipScorer, load_clip
    from scoring.scorers import clip_config, clip_label

    if tiny:
        from scoring.tiny_clip import TINY_CLIP_LABEL, tiny_clip_scorer

        return tiny_clip_scorer(home, device), TINY_CLIP_LABEL
    cfg = clip_config(
        a["clip_model"], a["clip_pretrained"], a["clip_checkpoint"], a["clip_model_config"], device
    )
    return ClipScorer(load_clip(cfg)), clip_label(cfg)


def _prompts(a: dict[str, Any]) -> None:
    from diffwatch.cli import _runtime, aware, emit_summary, fail
    from diffwatch.errors import first_line
    from scoring.clip_config import ClipWeightsError
    from scoring.drift_prompts import (
        ClipTextEmbedder,
        NotEnoughData,
        PromptDriftOptions,
        run_prompt_drift,
    )
    from scoring.scorers import resolve_device

    try:
        opts = PromptDriftOptions(
            current=a["current"], reference=a["reference"], baseline=a["baseline"],
            save_baseline=a["save_baseline"], replace_baseline=a["replace_baseline"],
            model=a["model"], until=aware(a["until"]), max_prompts=a["max_prompts"],
            permutations=a["permutations"], alpha=a["alpha"], clusters=a["clusters"],
            seed=a["seed"],
        )  # fmt: skip
        device = resolve_device(a["device"])
    except (ValueError, RuntimeError) as exc:
        raise fail(first_line(exc), 2) from None
    rt = _runtime(a["database_url"])
    try:
        scorer, label = _clip(a, device, rt.settings.home, a["tiny_clip"])
    except ClipWeightsError as exc:
        raise fail(str(exc)) from None
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise fail(first_line(exc), 2) from None
    say = _say(a["as_json"])
    try:
        result = run_prompt_drift(
            rt.conninfo, ClipTextEmbedder(scorer, label), opts, demo=a["tiny_clip"], progress=say
        )
    except (NotEnoughData, ValueError) as exc:
        raise fail(str(exc)) from None
    emit_summary(result, a["as_json"], prompt_report(result))


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


def _regenerate(a: dict[str, Any]) -> None:
    from diffwatch.cli import _runtime, _stop_on_signals, aware, emit_summary, fail
    from diffwatch.errors import first_line
    from scoring.clip_config import ClipWeightsError
    from scoring.drift_regen import Context, RegenOptions
    from scoring.scorers import resolve_device

    if not a["pipeline"] and not a["tiny_pipeline"]:
        raise fail(
            "no pipeline: pass --pipeline DIR_OR_HUB_ID (or set DIFFWATCH_PIPELINE), or "
            "--tiny-pipeline for a demo run with random weights",
            2,
        )
    try:
        device = resolve_device(a["device"])
        golden = None
        if a["golden"]:
            from scoring.golden import load_golden_set

            golden = load_golden_set(a["golden"])
    except (ValueError, RuntimeError) as exc:
        raise fail(str(exc), 2) from None
    rt = _runtime(a["database_url"])
    home = rt.settings.home
    try:
        opts = RegenOptions(
            output_dir=a["output_dir"] or home / "drift", sample=a["sample"] or 32,
            window=a["since"], until=aware(a["until"]), model=a["model"],
            min_tolerance=a["min_tolerance"], tolerance_factor=a["tolerance_factor"],
            calibration=a["calibration"], seed=a["seed"], rebaseline=a["rebaseline"],
        )  # fmt: skip
        loaded = _pipeline(a, device, home)
        scorer, label = _clip(a, device, home, a["tiny_pipeline"])
    except ClipWeightsError as exc:
        raise fail(str(exc)) from None
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise fail(first_line(exc), 2) from None
    stop = _stop_on_signals()
    results = []
    with _progress(a["as_json"]) as progress:
        ctx = Context(
            pipeline=loaded, clip=scorer, clip_label=label, demo=a["tiny_pipeline"],
            progress=progress, stop=stop, pipeline_note=_tiny_note(a["tiny_pipeline"]),
        )  # fmt: skip
        try:
            if golden is not None:
                from scoring.drift_golden import run_golden

                results.append(run_golden(rt.conninfo, ctx, golden, opts))
            if golden is None or a["sample"]:
                from scoring.drift_regen import run_sample

                results.append(run_sample(rt.conninfo, ctx, opts))
        except ValueError as exc:
            raise fail(str(exc)) from None
    for r in results:
        r.pop("items", None)
    d = results[0] if len(results) == 1 else {"runs": results}
    emit_summary(d, a["as_json"], "\n".join(regen_report(r, a["tiny_pipeline"]) for r in results))


def _tiny_note(tiny: bool) -> str | None:
    from scoring.tiny_pipeline import TINY_PIPELINE_LABEL

    return TINY_PIPELINE_LABEL if tiny else None


def _pipeline(a: dict[str, Any], device: str, home: Path) -> Any:
    from scoring.diffusion_config import DiffusionConfig
    from scoring.diffusion_load import load_pipeline

    source = a["pipeline"]
    if a["tiny_pipeline"]:
        from scoring.tiny_pipeline import tiny_pipeline_dir

        source = str(tiny_pipeline_dir(home))
    max_batch = a["max_batch"] or (16 if device.startswith("cuda") else 4)
    return load_pipeline(
        DiffusionConfig(
            source=source,
            device=device,
            compile=a["compile_unet"],
            max_batch=max_batch,
            cache_dir=a["hf_cache"],
        )
    )


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
