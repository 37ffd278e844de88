"""The demo's drift step: prompt drift and image drift on the simulated history, then
re-generation of a few logged prompts and the shipped golden set (``golden.toml``) through the
real drift jobs.

With no production pipeline configured (``--pipeline`` / DIFFWATCH_PIPELINE) the demo uses
the tiny random-weight pipeline; with no CLIP at all (scoring skipped) the tiny random-weight
CLIP. The CLIP of the scoring step (real weights, or the demo CLIP trained on the demo's
scenes) is used when there is one. Every run made with a tiny random-weight model is stored
with ``demo = true`` and labelled as meaningless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

GOLDEN_FILE = Path(__file__).with_name("golden.toml")
REGEN_SAMPLE = 4  # logged prompts re-generated: ~1 s each at 512 px on 2 CPU cores (tiny)
CALIBRATION = 2  # of them generated twice
DEMO_GOLDEN_MAX_SIDE = 256  # px: the tiny pipeline's golden images stay cheap on a CPU


@dataclass(frozen=True)
class DriftDemoOptions:
    """``pipeline``: a diffusers directory or cached hub id (None: the tiny pipeline)."""

    pipeline: str | None = None
    sample: int = REGEN_SAMPLE


def _clip(home: Path, clip_scorer: Any | None, clip_label: str | None) -> tuple[Any, str, bool]:
    """(ClipScorer, label, tiny?): the demo's own CLIP when it loaded, else the tiny one."""

    if clip_scorer is not None:
        return clip_scorer, clip_label or "CLIP", False
    from diffwatch.demo.tiny_clip import TINY_CLIP_LABEL, tiny_clip_scorer

    return tiny_clip_scorer(home, "cpu"), TINY_CLIP_LABEL, True


def _pipeline(home: Path, source: str | None) -> tuple[Any, bool]:
    """(LoadedPipeline on the CPU, tiny?): ``source``, else the tiny demo pipeline."""
    from diffwatch.drift.jobs import load_regen_pipeline

    tiny = source is None
    if tiny:
        from diffwatch.demo.tiny_pipeline import tiny_pipeline_dir

        source = str(tiny_pipeline_dir(home))
    return load_regen_pipeline(str(source), "cpu"), tiny


def run_demo_drift(
    conninfo: str,
    home: Path,
    window: tuple[datetime, datetime],
    opts: DriftDemoOptions,
    *,
    clip_scorer: Any | None = None,
    clip_label: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the three drift checks on the demo's window; return their summaries (JSON-ready)."""
    from diffwatch.demo.tiny_pipeline import TINY_PIPELINE_LABEL
    from diffwatch.drift.golden import run_golden
    from diffwatch.drift.golden_set import load_golden_set
    from diffwatch.drift.prompts import (
        ClipTextEmbedder,
        PromptDriftOptions,
        run_prompt_drift,
    )
    from diffwatch.drift.regen import Context, RegenOptions, run_sample

    start, end = window
    span = end - start
    current = span / 4
    scorer, label, tiny_clip = _clip(home, clip_scorer, clip_label)
    try:
        prompts: dict[str, Any] = run_prompt_drift(
            conninfo,
            ClipTextEmbedder(scorer, label, general=False),  # a demo CLIP, never a real one
            PromptDriftOptions(
                current=f"{current.total_seconds() / 60:g}m",
                reference=f"{(span - current).total_seconds() / 60:g}m",
                until=end,
                max_prompts=1000,
                permutations=200,
            ),
            demo=tiny_clip,
            worker="demo",
        )
    except ValueError as exc:  # a short window has too few prompts: say so, go on
        prompts = {"error": str(exc), "demo": tiny_clip}
    images = _image_drift(conninfo, current, span, end)
    pipeline, tiny_pipe = _pipeline(home, opts.pipeline)
    ctx = Context(
        pipeline=pipeline, clip=scorer, clip_label=label, demo=tiny_pipe or tiny_clip,
        worker="demo", progress=progress, pipeline_note=TINY_PIPELINE_LABEL if tiny_pipe else None,
    )  # fmt: skip
    regen = RegenOptions(
        output_dir=home / "drift", sample=opts.sample, calibration=CALIBRATION,
        window=f"{span.total_seconds() / 60:.0f}m", until=end,
        image_roots=(str(home / "images"),),
    )  # fmt: skip
    outputs: list[dict[str, Any]] = []
    for check in (
        lambda: run_sample(conninfo, ctx, regen),
        lambda: run_golden(conninfo, ctx, load_golden_set(GOLDEN_FILE), regen),
    ):
        try:
            outputs.append(check())
        except ValueError as exc:  # e.g. no generation with a logged seed in the window
            outputs.append({"error": str(exc)})
    sample, golden = outputs
    for r in outputs:
        r.pop("items", None)
    return {
        "prompts": {
            k: prompts[k]
            for k in (
                "run_id",
                "drifted",
                "demo",
                "test",
                "lexical",
                "combined",
                "windows",
                "error",
            )
            if k in prompts
        }
        | ({"grew": prompts["terms"]["grew"][:5]} if "terms" in prompts else {}),
        "images": images,
        "regenerate": sample,
        "golden": golden,
        "tiny_pipeline": tiny_pipe,
        "tiny_clip": tiny_clip,
    }


def _image_drift(
    conninfo: str, current: timedelta, span: timedelta, end: datetime
) -> dict[str, Any]:
    """Image drift over the demo's window (its scored images' stored CLIP embeddings, the
    last quarter against the rest); an error entry where it cannot run (no pgvector, too
    few scored images)."""
    import psycopg

    from diffwatch.db.queries.embeddings import support
    from diffwatch.drift.images import ImageDriftOptions, run_image_drift

    with psycopg.connect(conninfo) as conn:
        st = support(conn)
    if not st.enabled:  # not a failed run: this database cannot hold embeddings at all
        return {"error": st.describe()}
    try:
        r = run_image_drift(
            conninfo,
            ImageDriftOptions(
                current=f"{current.total_seconds() / 60:g}m",
                reference=f"{(span - current).total_seconds() / 60:g}m",
                until=end,
                max_images=2000,
                permutations=200,
            ),
            worker="demo",
        )
    except ValueError as exc:
        return {"error": str(exc)}
    return {k: r[k] for k in ("run_id", "drifted", "attribution", "overall", "windows")}


def demo_window(end: datetime | None, hours: float) -> tuple[datetime, datetime]:
    """The simulated window [end − hours, end] (whole minutes, UTC)."""
    stop = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
    return stop - timedelta(minutes=round(hours * 60)), stop
