"""The drift checks as jobs: their models loaded from typed options, and a re-generation run.

``diffwatch drift prompts`` loads a text embedder with ``load_text_embedder`` and runs
``prompts.run_prompt_drift``; ``diffwatch drift regenerate`` loads the production pipeline
and CLIP with ``load_regen_models`` and runs ``run_regenerate`` (a golden set, a sample of
logged prompts, or both). Models load in these functions, never at import.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diffwatch.scoring.clip.config import ClipOptions

if TYPE_CHECKING:
    from diffwatch.drift.diffusion_load import LoadedPipeline
    from diffwatch.drift.golden_set import GoldenSet
    from diffwatch.drift.prompts import ClipTextEmbedder
    from diffwatch.drift.regen import Progress, RegenOptions

GPU_MAX_BATCH = 16  # images a pipeline call on a GPU, unless given
CPU_MAX_BATCH = 4  # and on the CPU
NO_PIPELINE = "no pipeline: pass --pipeline DIR_OR_HUB_ID (or set DIFFWATCH_PIPELINE)"


@dataclass(frozen=True)
class DriftModels:
    """The models a drift check runs, as its options give them: the device ('auto': a GPU
    when one is visible), the ``--clip-*`` options and, to re-generate, the production
    diffusers pipeline (a ``save_pretrained`` directory or a hub id in the local cache).

    ``max_batch`` None: ``GPU_MAX_BATCH`` on a GPU, ``CPU_MAX_BATCH`` on the CPU.
    ``hf_cache``: the hub cache that holds a hub id (None: the default one).
    """

    device: str = "auto"
    clip: ClipOptions = field(default_factory=ClipOptions)
    pipeline: str | None = None
    max_batch: int | None = None
    compile: bool = False
    hf_cache: str | None = None


@dataclass(frozen=True)
class RegenModels:
    """A loaded pipeline and CLIP (a ClipScorer and its label) to re-generate with."""

    pipeline: LoadedPipeline
    clip: Any
    clip_label: str


def load_text_embedder(m: DriftModels) -> ClipTextEmbedder:
    """The CLIP text tower of ``m.clip`` on ``m.device``, as prompt drift's embedder.

    Raises ClipWeightsError, or ValueError, RuntimeError or FileNotFoundError for options
    that cannot work.
    """
    from diffwatch.drift.prompts import ClipTextEmbedder
    from diffwatch.scoring.scorers import load_clip_scorer, resolve_device

    scorer, label = load_clip_scorer(m.clip, resolve_device(m.device))
    return ClipTextEmbedder(scorer, label)


def load_regen_pipeline(
    source: str,
    device: str,
    *,
    max_batch: int | None = None,
    compile: bool = False,
    cache_dir: str | None = None,
) -> LoadedPipeline:
    """The diffusers pipeline at ``source`` on a resolved ``device`` (``max_batch`` None:
    ``GPU_MAX_BATCH`` on a GPU, ``CPU_MAX_BATCH`` on the CPU)."""
    from diffwatch.drift.diffusion_config import DiffusionConfig
    from diffwatch.drift.diffusion_load import load_pipeline

    default = GPU_MAX_BATCH if device.startswith("cuda") else CPU_MAX_BATCH
    return load_pipeline(
        DiffusionConfig(
            source=source,
            device=device,
            compile=compile,
            max_batch=max_batch or default,
            cache_dir=cache_dir,
        )
    )


def load_regen_models(m: DriftModels) -> RegenModels:
    """The production pipeline and the CLIP of ``m``, loaded on its device.

    Raises ValueError without a pipeline, ClipWeightsError or DiffusionWeightsError for
    weights that do not load, and ValueError, RuntimeError or FileNotFoundError for options
    that cannot work.
    """
    from diffwatch.scoring.scorers import load_clip_scorer, resolve_device

    if not m.pipeline:
        raise ValueError(NO_PIPELINE)
    device = resolve_device(m.device)
    pipeline = load_regen_pipeline(
        m.pipeline, device, max_batch=m.max_batch, compile=m.compile, cache_dir=m.hf_cache
    )
    scorer, label = load_clip_scorer(m.clip, device)
    return RegenModels(pipeline, scorer, label)


def run_regenerate(
    conninfo: str,
    models: RegenModels,
    opts: RegenOptions,
    *,
    golden: GoldenSet | None = None,
    sample_too: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Run the golden set when one is given, and the sample of logged prompts when none is
    (or ``sample_too``); return each stored run's summary, without its items.

    Raises ValueError for a run that cannot start (e.g. no logged seeds in the window).
    """
    from diffwatch.drift.golden import run_golden
    from diffwatch.drift.regen import Context, run_sample

    ctx = Context(
        pipeline=models.pipeline, clip=models.clip, clip_label=models.clip_label,
        progress=progress, stop=stop or threading.Event(),
    )  # fmt: skip
    results = []
    if golden is not None:
        results.append(run_golden(conninfo, ctx, golden, opts))
    if golden is None or sample_too:
        results.append(run_sample(conninfo, ctx, opts))
    for r in results:
        r.pop("items", None)
    return results
