"""The demo CLIP: a tiny open_clip model trained on the demo's own scenes (a demo model).

No CLIP weights can be downloaded here, and a random-weight CLIP scores nothing. The demo's
images come from a small closed world (coloured shapes, counts, relations, backgrounds,
``diffwatch.demo.scenes``), so a tiny CLIP learns it contrastively on the CPU in about a
minute: images drawn by the demo's own renderer, each paired with its prompt, against the
other prompts of the batch and against a garbled prompt of the same scene (one colour, shape,
count or background changed), so that it learns the details a garbled image gets wrong.

The weights are trained once per recipe and cached under ``DIFFWATCH_DEMO_MODELS`` (default
``DIFFWATCH_HOME/demo-models``); the scorer then loads them through the real CLIP loader
(``load_clip``), like any checkpoint.
Everything it scores is labelled ``DEMO_CLIP_LABEL``: it is not a real CLIP, and its scores
mean something only on the demo's images.

    clip = ensure_demo_clip(demo_models_dir())     # trains on first use, then reuses
    scorer = ClipScorer(load_clip(demo_clip_settings(clip.checkpoint)))
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffwatch.demo.draw import image_size, render
from diffwatch.demo.scenes import MUTATIONS, Scene, mutate, prompt_of, sample_scene
from diffwatch.demo.tiny_clip import register_clip_config
from diffwatch.model.clip_labels import DEMO_CLIP_LABEL, DEMO_CLIP_NAME

if TYPE_CHECKING:
    import torch

# Bump when the architecture, the data or the loss changes: cached weights are keyed by it.
RECIPE_VERSION = 2
IMAGE_SIZE = 48  # px
CONTEXT_LENGTH = 32  # tokens: the demo's longest prompt with a style is 27
# The logged sizes the demo's service draws (traffic.SIZES, with their shares): the model
# sees each aspect ratio it will be asked to score.
_SIZES = ((512, 512), (768, 768), (512, 768), (768, 512), (1024, 1024))
_SIZE_P = (0.55, 0.2, 0.12, 0.08, 0.05)

Progress = Callable[[int, int, float], None]  # (step, steps, loss)
# How often each garbling kind (scenes.MUTATIONS: colour, shape, count, background) is the
# hard negative: shapes and counts are the fine details a small model learns last.
HARD_NEGATIVE_P = (0.15, 0.4, 0.3, 0.15)


def demo_clip_config() -> dict[str, Any]:
    """The open_clip config: a 2-layer ViT (48 px, patch 8) and a 2-layer text tower.

    The text tower keeps CLIP's vocabulary, so the BPE tokenizer inside the open_clip package
    works offline; its token table stays at its seeded random values during training (the
    demo's prompts use about 60 words, and updating 49408 rows a step would triple the time).
    """
    return {
        "embed_dim": 64,
        "vision_cfg": {
            "image_size": IMAGE_SIZE,
            "layers": 2,
            "width": 64,
            "head_width": 32,
            "patch_size": 8,
        },
        "text_cfg": {
            "context_length": CONTEXT_LENGTH,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    }


@dataclass(frozen=True)
class TrainOptions:
    """How the demo CLIP is trained: optimiser steps, pairs a step, distinct training images."""

    steps: int = 400
    batch: int = 128
    images: int = 4000
    lr: float = 2e-3
    seed: int = 0
    # torch CPU threads while training; 0: ``default_train_threads()``.
    threads: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "images"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainOptions.{name}: must be >= 1, got {getattr(self, name)}")
        if self.batch > self.images:
            raise ValueError(
                f"TrainOptions.batch ({self.batch}) must not exceed images ({self.images})"
            )

    def key(self) -> str:
        """A short hash of the recipe: the cache directory's name."""
        recipe = {
            "version": RECIPE_VERSION,
            "config": demo_clip_config(),
            "hard_negatives": HARD_NEGATIVE_P,
            **{k: v for k, v in asdict(self).items() if k != "threads"},
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class KindGap:
    """How a garbling kind scores: mean CLIPScore of matching minus garbled pairs, win share."""

    kind: str
    pairs: int
    gap: float  # CLIPScore points (0-100 scale)
    win_rate: float  # share of pairs where the matching prompt scores higher


@dataclass(frozen=True)
class DemoClipQuality:
    """Held-out quality of the demo CLIP, measured through the real scorer."""

    heldout: int  # scenes never seen in training
    retrieval_top1: float  # image -> prompt among ``retrieval_pool`` candidates
    retrieval_pool: int
    matching_mean: float  # mean CLIPScore of matching pairs
    gaps: tuple[KindGap, ...] = ()

    def gap(self, kind: str) -> KindGap:
        """The gap of one garbling kind."""
        return next(g for g in self.gaps if g.kind == kind)


@dataclass(frozen=True)
class DemoClip:
    """Trained (or cached) demo CLIP weights, how long training took, and their quality."""

    checkpoint: Path
    trained_now: bool
    train_s: float  # seconds the training took (when it ran, now or earlier)
    final_loss: float
    quality: DemoClipQuality
    label: str = DEMO_CLIP_LABEL
    options: TrainOptions = field(default_factory=TrainOptions)


def register_demo_clip(directory: Path) -> str:
    """Write the config to ``<directory>/<name>.json`` and register it with open_clip."""
    return register_clip_config(directory, DEMO_CLIP_NAME, demo_clip_config())


def demo_clip_settings(checkpoint: Path, device: str = "cpu", precision: str = "auto") -> Any:
    """ClipConfig that loads the demo CLIP's checkpoint (a file: no hub is involved)."""
    from diffwatch.scoring.clip.config import ClipConfig

    register_demo_clip(checkpoint.parent)
    return ClipConfig(
        model_name=DEMO_CLIP_NAME,
        pretrained=None,
        checkpoint=str(checkpoint),
        device=device,
        precision=precision,  # type: ignore[arg-type]
    )


def draw_scenes(scenes: Sequence[Scene], rng: np.random.Generator) -> list[np.ndarray]:
    """Each scene drawn at one of the service's logged sizes (HxWx3 uint8 RGB)."""
    out = []
    for s in scenes:
        w, h = _SIZES[int(rng.choice(len(_SIZES), p=_SIZE_P))]
        out.append(np.asarray(render(s, image_size(w, h), rng)))
    return out


def reference_pixels(model: Any, images: Sequence[np.ndarray]) -> torch.Tensor:
    """The images through open_clip's own inference transform (Pillow and torchvision).

    Deliberately not the scorer's batched ``preprocess_batch``: a model trained through the
    code under test would learn around a bug in it, and the tests that judge scores with
    this model (``tests/clip_truth.py``) could no longer fail on one.
    """
    import open_clip
    import torch
    from PIL import Image

    cfg = open_clip.get_model_preprocess_cfg(model)
    transform = open_clip.image_transform(
        cfg["size"],
        is_train=False,
        mean=cfg["mean"],
        std=cfg["std"],
        resize_mode=cfg.get("resize_mode"),
        interpolation=cfg.get("interpolation"),
        fill_color=cfg.get("fill_color", 0),
    )
    return torch.stack([transform(Image.fromarray(a)) for a in images])


THREADS_ENV = "DIFFWATCH_DEMO_CLIP_THREADS"


def default_train_threads() -> int:
    """Torch threads for training when ``TrainOptions.threads`` is 0: the variable
    ``DIFFWATCH_DEMO_CLIP_THREADS`` if set, else up to two. On an idle 2-core box two threads
    train in 78.7 s against 110.1 s for one (``bench/demo_clip.py``); on a shared one (the
    test suite runs two workers) two threads spin-wait on each other and a step took 4x as
    long (1.02 s against 0.26 s), so the suite sets the variable to 1."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{THREADS_ENV} must be a whole number of threads >= 1, got {raw!r}")
        return int(raw)
    return max(1, min(2, os.cpu_count() or 1))


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n if n > 0 else default_train_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_demo_clip(
    opts: TrainOptions = TrainOptions(), progress: Progress | None = None
) -> tuple[dict[str, Any], float]:
    """Train the demo CLIP from scratch: (state dict, mean loss of the last 20 steps).

    Deterministic for a given ``opts`` on a given machine (seeded data, init and batches).
    """
    import open_clip
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng([opts.seed, 7])
    scenes = [sample_scene(rng) for _ in range(opts.images)]
    prompts = [prompt_of(s) for s in scenes]
    with tempfile.TemporaryDirectory() as tmp:
        name = register_demo_clip(Path(tmp))
    tokenizer = open_clip.get_tokenizer(name, context_length=CONTEXT_LENGTH)
    with _threads(opts.threads):
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(opts.seed)
            # Through the factory, so the model carries the preprocess cfg load_clip will see
            # (it logs that no weights were loaded: that is the point of training).
            logging.disable(logging.WARNING)
            try:
                model = open_clip.create_model(name, pretrained=None, device="cpu")
            finally:
                logging.disable(logging.NOTSET)
        finally:
            torch.random.set_rng_state(state)
        pixels = reference_pixels(model, draw_scenes(scenes, rng))
        tokens = tokenizer(prompts)
        model.token_embedding.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=opts.lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=opts.lr, total_steps=opts.steps, pct_start=0.1
        )
        model.train()
        labels = torch.arange(opts.batch)
        losses: list[float] = []
        for step in range(opts.steps):
            idx = rng.choice(opts.images, opts.batch, replace=False)
            kinds = rng.choice(len(MUTATIONS), size=len(idx), p=HARD_NEGATIVE_P)
            garbled = tokenizer(
                [
                    prompt_of(mutate(scenes[i], rng, MUTATIONS[k]))
                    for i, k in zip(idx, kinds, strict=True)
                ]
            )
            image_emb = F.normalize(model.encode_image(pixels[idx]), dim=-1)
            text_emb = F.normalize(model.encode_text(torch.cat([tokens[idx], garbled])), dim=-1)
            logits = model.logit_scale.exp() * image_emb @ text_emb.T  # (B, 2B)
            # Each image against every prompt of the batch and every garbled prompt; each
            # prompt against the batch's images.
            loss = (
                F.cross_entropy(logits, labels) + F.cross_entropy(logits[:, : opts.batch].T, labels)
            ) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, 4.6052)  # at most 100, as in CLIP
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step + 1, opts.steps, losses[-1])
        model.eval()
    return model.state_dict(), float(np.mean(losses[-20:]))


def heldout_scenes(n: int, seed: int = 20261206) -> list[Scene]:
    """Scenes from a stream the training never draws from (its seeds are [seed, 7])."""
    rng = np.random.default_rng([seed, 11])
    return [sample_scene(rng) for _ in range(n)]


def evaluate_demo_clip(scorer: Any, n: int = 500, pool: int = 100) -> DemoClipQuality:
    """Held-out retrieval and matching-vs-garbled gaps through ``scorer`` (a ClipScorer).

    Retrieval: each image against the prompts of its ``pool`` (its own and ``pool - 1``
    others), top-1 accuracy. Gaps: for each garbling kind, the same image scored with its
    prompt and with the prompt of the scene changed in that one way (background only where
    the prompt names one).
    """
    rng = np.random.default_rng([n, 13])
    scenes = heldout_scenes(n)
    images = draw_scenes(scenes, rng)
    prompts = [prompt_of(s) for s in scenes]
    img = scorer.embed_images(images)
    txt = scorer.embed_texts(prompts)
    hits = 0
    for start in range(0, n - pool + 1, pool):
        sim = img[start : start + pool] @ txt[start : start + pool].T
        hits += int((sim.argmax(axis=1) == np.arange(pool)).sum())
    tried = (n // pool) * pool
    matching = 100 * np.clip((img * txt).sum(axis=1), 0, None)
    gaps = []
    for kind in MUTATIONS:
        keep = [i for i, s in enumerate(scenes) if kind != "background" or s.background_named]
        garbled = [prompt_of(mutate(scenes[i], rng, kind)) for i in keep]
        g = 100 * np.clip((img[keep] * scorer.embed_texts(garbled)).sum(axis=1), 0, None)
        diff = matching[keep] - g
        gaps.append(KindGap(kind, len(keep), float(diff.mean()), float((diff > 0).mean())))
    return DemoClipQuality(
        heldout=n,
        retrieval_top1=hits / max(tried, 1),
        retrieval_pool=pool,
        matching_mean=float(matching.mean()),
        gaps=tuple(gaps),
    )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One trainer per cache directory (concurrent demos, parallel test workers)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _quality_from(d: dict[str, Any]) -> DemoClipQuality:
    return DemoClipQuality(
        **{k: v for k, v in d.items() if k != "gaps"},
        gaps=tuple(KindGap(**g) for g in d.get("gaps", ())),
    )


def demo_models_dir() -> Path:
    """Where the demo's models live: DIFFWATCH_DEMO_MODELS, else DIFFWATCH_HOME/demo-models."""
    from diffwatch.settings import load_settings

    s = load_settings()
    return s.demo_models or s.home / "demo-models"


def demo_clip_dir(models: Path, opts: TrainOptions = TrainOptions()) -> Path:
    """Where the weights of this recipe live: ``models/demo-clip/<recipe key>``."""
    return models / "demo-clip" / opts.key()


def ensure_demo_clip(
    models: Path, opts: TrainOptions = TrainOptions(), progress: Progress | None = None
) -> DemoClip:
    """The demo CLIP for ``opts``: cached weights if this recipe was trained before, else
    trained now, saved, loaded back through ``load_clip`` and evaluated (held out)."""
    import torch

    from diffwatch.scoring.clip.load import load_clip
    from diffwatch.scoring.clip.scorer import ClipScorer

    directory = demo_clip_dir(models, opts)
    ckpt, meta_path = directory / "demo_clip.pt", directory / "meta.json"
    with _locked(directory):
        if ckpt.is_file() and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            register_demo_clip(directory)
            return DemoClip(
                ckpt, False, meta["train_s"], meta["final_loss"], _quality_from(meta["quality"]),
                options=opts,
            )  # fmt: skip
        t0 = time.perf_counter()
        state, final_loss = train_demo_clip(opts, progress)
        train_s = round(time.perf_counter() - t0, 1)
        tmp = directory / "demo_clip.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, ckpt)
        with _threads(opts.threads):
            scorer = ClipScorer(load_clip(demo_clip_settings(ckpt)))
            quality = evaluate_demo_clip(scorer)
        meta = {
            "label": DEMO_CLIP_LABEL,
            "recipe": opts.key(),
            "options": asdict(opts),
            "train_s": train_s,
            "final_loss": round(final_loss, 4),
            "quality": asdict(quality),
        }
        tmp_meta = directory / "meta.json.tmp"
        tmp_meta.write_text(json.dumps(meta, indent=2))
        os.replace(tmp_meta, meta_path)
    return DemoClip(ckpt, True, train_s, final_loss, quality, options=opts)
