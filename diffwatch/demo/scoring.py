"""The demo's scoring step: the real scoring worker on CPU over a sample spread over the window.

NSFW (NudeNet, whose model ships in its wheel) always runs. CLIP runs with real weights when
they are on this machine: a ``--clip-checkpoint`` file, or the pretrained tag's file already
in the Hugging Face cache (looked up with the hub forced offline, so nothing waits on the
network). Otherwise the demo CLIP runs: a tiny CLIP trained on the demo's own scenes
(``diffwatch.demo.demo_clip``, about a minute on first use, then cached), labelled as such
everywhere, so the quality pages show scores that tell garbled images from matching ones.
No score is ever made up.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from diffwatch.errors import first_line
from diffwatch.scoring.clip.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, ClipOptions

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from diffwatch.scoring.base import ScoreOutcome, Scorer

# Generations a run scores, an even sample over the window with the model versions taking
# turns (claim order 'balanced'): about 600 of the canary's and 600 of stable's, over the 200
# a side the Model versions page needs for an NSFW-rate interval (a plain even sample gave the
# canary, on 10 % of the traffic, 115). Scoring all 28,000 of a default demo would take
# minutes on 2 CPU cores (NudeNet: ~60 images/s).
DEFAULT_SCORE_LIMIT = 1200
BATCH_SIZE = 32  # generations a claim
# Images a model runs at once: on 2 CPU cores NudeNet is as fast at 8 as at 32, and
# onnxruntime's memory grows with the batch (measured: 260 MB peak RSS at 8, 590 MB at 32).
MODEL_BATCH = 8
LOAD_THREADS = 4  # PNG decoding threads
HF_WEIGHTS_FILE = "open_clip_pytorch_model.bin"  # open_clip's default file in a hub repo
HF_SAFE_WEIGHTS_FILE = "open_clip_model.safetensors"  # looked for first by open_clip
# Where open_clip fetches the default tag (its pretrained.py; a unit test keeps this in
# sync): known here so the demo's cache check imports neither open_clip nor torch (4 s and
# 700 MB on a 2-core box) when the weights are not there anyway.
DEFAULT_HUB_LOCATION = ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", HF_WEIGHTS_FILE)


@dataclass(frozen=True)
class ScoreOptions:
    """How the demo scores: ``limit`` generations at most (0: all pending), CLIP weights."""

    limit: int = DEFAULT_SCORE_LIMIT
    batch_size: int = MODEL_BATCH  # images per model batch
    clip: ClipOptions = field(default_factory=ClipOptions)
    demo_clip: bool = True  # without real CLIP weights, train (or reuse) the demo CLIP
    order: str = "balanced"  # an even sample over the window, the versions taking turns


class CountingScorer:
    """A scorer that passes outcomes through and counts them (for the demo's summary)."""

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner
        self.key = inner.key
        self.embedding_dims = getattr(inner, "embedding_dims", None)
        self.scored = 0
        self.flagged = 0
        self.value_sum = 0.0

    @property
    def prompt_tokenizer(self) -> Any:
        """The inner scorer's tokenizer, if it has one (the loader tokenizes with it)."""
        return getattr(self.inner, "prompt_tokenizer", None)

    def score(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], tokens: Any = None
    ) -> list[ScoreOutcome]:
        """The inner scorer's outcomes, unchanged."""
        out = self.inner.score(images, prompts, tokens)
        self.scored += len(out)
        self.flagged += sum(o.flagged is True for o in out)
        self.value_sum += sum(o.value for o in out if o.value is not None)
        return out


@dataclass
class ScorerReport:
    """One scorer's part of a run: images scored, how many flagged, the mean score."""

    name: str
    version: str
    scored: int = 0
    flagged: int | None = None  # NSFW only
    mean: float | None = None  # CLIP only: mean CLIPScore, 0..100


@dataclass
class ScoringReport:
    """What the demo's scoring step did (counts of generations, images and rows; seconds)."""

    limit: int  # 0: all pending
    scorers: list[ScorerReport] = field(default_factory=list)
    clip: str = ""  # the CLIP scorer's version, or "not configured (why; how to enable)"
    claimed: int = 0  # generations claimed and scored (or failed)
    results: int = 0  # rows written to scorer_results
    errors: int = 0  # rows written to scoring_errors (images that could not be read)
    stale: int = 0  # generations refused after a lost lease
    pending: int = 0  # generations still unscored by some scorer after this run
    elapsed_s: float = 0.0
    images_per_s: float | None = None
    demo_clip: dict[str, Any] | None = None  # the demo CLIP's label, training and quality


class ScorerLoadError(Exception):
    """A scorer the user asked for could not be loaded; ``code`` is the exit status to use."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class LoadedScorers:
    """The scorers the demo runs, and why CLIP is not among them when it is not."""

    scorers: list[CountingScorer]
    clip_skipped: str | None = None  # "why; how to enable", or None when CLIP loaded
    demo_clip: Any = None  # the DemoClip in use when no real CLIP weights were here
    real_clip_missing: str | None = None  # why no real CLIP ran (with the demo CLIP instead)


def _hub_location(model: str, tag: str) -> tuple[str, str] | None:
    """(repo id, file) of a pretrained tag's weights on the Hugging Face Hub, or None."""
    cleaned = tag.lower().replace("-", "_")  # open_clip's own tag matching
    if (model, cleaned) == (DEFAULT_MODEL, DEFAULT_PRETRAINED):
        return DEFAULT_HUB_LOCATION
    import open_clip

    if cleaned not in open_clip.list_pretrained_tags_by_model(model):
        return None
    hub = open_clip.get_pretrained_cfg(model, cleaned).get("hf_hub", "")
    if not hub:
        return None
    repo, filename = os.path.split(hub)  # 'org/name/' means the default file
    return repo, filename or HF_WEIGHTS_FILE


def _cached_file(repo: str, filename: str) -> str | None:
    """The cached path of a hub file (either file open_clip would load), or None."""
    from huggingface_hub import try_to_load_from_cache

    names = [filename]
    if filename == HF_WEIGHTS_FILE:
        names.insert(0, HF_SAFE_WEIGHTS_FILE)
    elif filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    for name in names:
        path = try_to_load_from_cache(repo, name)
        if isinstance(path, str):
            return path
    return None


@contextmanager
def hub_offline() -> Iterator[None]:
    """Force the Hugging Face hub offline (cache only) for the block, then restore it."""
    import huggingface_hub.constants as hf

    old_env, old_flag = os.environ.get("HF_HUB_OFFLINE"), hf.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf.HF_HUB_OFFLINE = True  # read at import; the library checks this flag per request
    try:
        yield
    finally:
        hf.HF_HUB_OFFLINE = old_flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def how_to_enable_clip(model: str, tag: str | None) -> str:
    """One short sentence: where to get CLIP weights and which option to pass."""
    where = _hub_location(model, tag) if tag else None
    url = f"https://huggingface.co/{where[0]}/resolve/main/{where[1]} " if where else ""
    return (
        f"to enable it, download {url or 'an open_clip weights file '}"
        "and pass --clip-checkpoint PATH (docs/clip.md)"
    )


def _scorer_options(opts: ScoreOptions, name: str) -> Any:
    from diffwatch.scoring.scorers import scorer_options

    return scorer_options((name,), opts.clip, device="cpu", batch_size=opts.batch_size)


def load_scorers(
    opts: ScoreOptions, on_train: Callable[[int, int, float], None] | None = None
) -> LoadedScorers:
    """NSFW, plus CLIP: real weights when they are here, else the demo CLIP.

    With ``clip.checkpoint`` set, a file that cannot be loaded raises ScorerLoadError
    (code 1 for weights, 2 for a bad model name or config): the user asked for it.
    Without one, the pretrained tag is loaded only if it is in the Hugging Face cache,
    with the hub offline; else the demo CLIP is trained (``on_train(step, steps, loss)``)
    or reused, unless ``demo_clip`` is off: then CLIP is skipped and ``clip_skipped`` says
    why and how to enable it.
    """
    from diffwatch.scoring.clip.config import ClipWeightsError
    from diffwatch.scoring.scorers import build_scorers

    scorers = [CountingScorer(s) for s in build_scorers(_scorer_options(opts, "nsfw"))]
    if opts.clip.checkpoint:
        try:
            clip = build_scorers(_scorer_options(opts, "clip"))
        except ClipWeightsError as exc:
            raise ScorerLoadError(str(exc), 1) from exc
        except (ValueError, RuntimeError, FileNotFoundError) as exc:
            raise ScorerLoadError(first_line(exc), 2) from exc
        return LoadedScorers(scorers + [CountingScorer(s) for s in clip])
    model, tag = opts.clip.model, opts.clip.pretrained or ""
    where = _hub_location(model, tag) if tag else None
    if where is None:
        why = f"no --clip-checkpoint, and {tag!r} is not a Hugging Face Hub tag of {model}"
    elif _cached_file(*where) is None:
        why = f"{model} {tag} weights are not in the Hugging Face cache"
    else:
        try:
            with hub_offline():
                clip = build_scorers(_scorer_options(opts, "clip"))
            return LoadedScorers(scorers + [CountingScorer(s) for s in clip])
        except ClipWeightsError as exc:
            why = f"{model} {tag} weights in the Hugging Face cache did not load"
            why += f" ({_short(exc.reason)})"
    missing = f"{why}; {how_to_enable_clip(model, tag)}"
    if not opts.demo_clip:
        return LoadedScorers(scorers, missing)
    from diffwatch.demo.demo_clip import DEMO_CLIP_NAME, demo_models_dir, ensure_demo_clip

    trained = ensure_demo_clip(demo_models_dir(), progress=on_train)
    demo = replace(
        opts,
        clip=ClipOptions(
            model=DEMO_CLIP_NAME,
            pretrained=None,
            checkpoint=str(trained.checkpoint),
            model_config=str(trained.checkpoint.parent / f"{DEMO_CLIP_NAME}.json"),
        ),
    )
    clip = build_scorers(_scorer_options(demo, "clip"))
    return LoadedScorers(
        scorers + [CountingScorer(s) for s in clip], demo_clip=trained, real_clip_missing=missing
    )


def _short(text: str, n: int = 100) -> str:
    """The first sentence of ``text``, at most ``n`` characters."""
    first = text.split(". ")[0].rstrip(".")
    return first if len(first) <= n else first[: n - 3] + "..."


def score_demo(
    conninfo: str,
    loaded: LoadedScorers,
    limit: int,
    on_start: Callable[[int], None] = lambda total: None,
    on_scored: Callable[[int], None] = lambda n: None,
    images_dir: Path | None = None,
    order: str = "balanced",
) -> ScoringReport:
    """Score up to ``limit`` pending generations (0: all) in id order with the real worker;
    ``images_dir`` (the demo's own images) is read besides DIFFWATCH_IMAGE_ROOTS."""
    from diffwatch.scoring.images.load import ImageAccess
    from diffwatch.scoring.loader import LoaderOptions
    from diffwatch.scoring.worker import ScoringWorker

    access = ImageAccess.from_settings()
    if images_dir is not None:
        access = access.with_roots(images_dir)

    t0 = time.perf_counter()
    worker = ScoringWorker(
        conninfo,
        loaded.scorers,
        batch_size=BATCH_SIZE,
        loader=LoaderOptions(threads=LOAD_THREADS, access=access),
        name=f"demo@{socket.gethostname()}",
        progress=on_scored,
        order=order,
    )
    try:
        todo = worker.pending()
        on_start(min(todo, limit) if limit else todo)
        summary = worker.run(threading.Event(), limit=limit or None)
        left = worker.pending()
    finally:
        worker.close()
    from diffwatch.embeddings.index import index_pending

    index_pending(conninfo)  # the image embeddings into the search index (diffwatch worker's job)
    report = ScoringReport(
        limit=limit,
        claimed=summary.claimed,
        results=summary.results,
        errors=summary.failures,
        stale=summary.stale,
        pending=left,
        elapsed_s=time.perf_counter() - t0,
        images_per_s=summary.as_dict()["images_per_s"],
    )
    for s in loaded.scorers:
        r = ScorerReport(s.key.scorer, s.key.version, s.scored)
        if s.key.scorer == "nsfw":
            r.flagged = s.flagged
        elif s.scored:
            r.mean = round(s.value_sum / s.scored, 2)
        report.scorers.append(r)
    clip = [s.key.version for s in loaded.scorers if s.key.scorer == "clip"]
    report.clip = clip[0] if clip else f"not configured ({loaded.clip_skipped})"
    if loaded.demo_clip is not None:
        from dataclasses import asdict

        d = loaded.demo_clip
        report.demo_clip = {
            "label": d.label,
            "trained_now": d.trained_now,
            "train_s": d.train_s,
            "checkpoint": str(d.checkpoint),
            "quality": asdict(d.quality),
            "real_clip_missing": loaded.real_clip_missing,
        }
    return report
