"""The text embedders ``bench/prompt_drift.py`` compares: every CLIP a user may run.

- ``tiny``: the tiny random-weight CLIP the tests and the demo use (``diffwatch.demo.tiny_clip``);
- ``demo``: the demo CLIP, trained on the demo's synthetic scenes (``diffwatch.demo.demo_clip``;
  trained once per recipe, 1-3 minutes on 2 cores, then cached under ``--demo-models``);
- ``vit-b-32-random``: open_clip ViT-B-32 with random (seeded) weights: a full-size tower with
  nothing learnt (benchmark only: ``load_clip`` never loads random weights in production);
- ``clip``: a real CLIP, from ``--clip-checkpoint`` or an open_clip tag already in the local
  cache; skipped, with the reason, where none is on the machine.

Each loads through ``diffwatch.scoring.clip.load.load_clip`` (a random tower is saved to a
file first) and embeds as ``diffwatch.drift.prompts.ClipTextEmbedder`` does. Full-size towers
run the text transformer only up to the longest prompt of each batch instead of all 77
positions: the causal mask means a token never attends to a later one, so the end-of-text
features are the same (the benchmark checks them against ``ClipScorer.embed_texts`` on a
sample and reports the largest difference), about 5x less CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EMBEDDERS = ("tiny", "demo", "vit-b-32-random", "clip")
# The demo's two CLIPs know no real prompt language: a run combines their embedding test with
# the lexical test lexical-first (``diffwatch.drift.prompts.combine_order``, "auto"). A CLIP
# given by the user (a real one, or here a random full-size tower) gets min-p.
DEMO_EMBEDDERS = ("tiny", "demo")


def auto_order(name: str) -> str:
    """The combination a run uses with embedder ``name`` under --combine auto."""
    return "lexical-first" if name in DEMO_EMBEDDERS else "min-p"


@dataclass
class Embedder:
    """A loaded embedder: ``embed`` maps prompts to L2-normalised float32 rows."""

    name: str
    label: str
    embed: Callable[[Sequence[str]], np.ndarray]
    load_s: float
    check_max_abs_diff: float | None = None  # trimmed context vs the production path


def load(
    name: str, workdir: Path, *, demo_models: Path | None, clip_model: str,
    clip_pretrained: str | None, clip_checkpoint: str | None,
) -> Embedder:  # fmt: skip
    """Load embedder ``name`` or raise RuntimeError with the reason it cannot run here."""
    from diffwatch.scoring.clip.scorer import ClipScorer, load_clip

    t0 = time.perf_counter()
    if name == "tiny":
        from diffwatch.demo.tiny_clip import TINY_CLIP_LABEL, save_tiny_clip, tiny_clip_settings

        scorer = ClipScorer(load_clip(tiny_clip_settings(save_tiny_clip(workdir / "tiny"))))
        return Embedder(name, TINY_CLIP_LABEL, scorer.embed_texts, time.perf_counter() - t0)
    if name == "demo":
        try:
            from diffwatch.demo.demo_clip import (
                DEMO_CLIP_LABEL,
                TrainOptions,
                demo_clip_settings,
                demo_models_dir,
                ensure_demo_clip,
            )
        except ImportError as exc:
            raise RuntimeError(f"the demo CLIP is not importable here ({exc})") from None
        clip = ensure_demo_clip(demo_models or demo_models_dir(), TrainOptions())
        scorer = ClipScorer(load_clip(demo_clip_settings(clip.checkpoint)))
        return Embedder(name, DEMO_CLIP_LABEL, scorer.embed_texts, time.perf_counter() - t0)
    if name == "vit-b-32-random":
        from bench.scoring import random_clip_checkpoint
        from diffwatch.scoring.clip.config import ClipConfig

        ckpt = random_clip_checkpoint(workdir, "ViT-B-32")
        cfg = ClipConfig(model_name="ViT-B-32", pretrained=None, checkpoint=str(ckpt), device="cpu")
        scorer = ClipScorer(load_clip(cfg))
        ckpt.unlink()  # 580 MB
        label = "open_clip ViT-B-32, random weights (benchmark only)"
        return _full_size(name, label, scorer, t0)
    if name == "clip":
        from diffwatch.scoring.clip.config import ClipConfig, ClipWeightsError

        cfg = ClipConfig(
            model_name=clip_model, pretrained=clip_pretrained, checkpoint=clip_checkpoint,
            device="cpu",
        )  # fmt: skip
        try:
            scorer = ClipScorer(load_clip(cfg))
        except ClipWeightsError as exc:
            raise RuntimeError(
                "no real CLIP weights on this machine (no model hub here): "
                + str(exc).splitlines()[0]
            ) from None
        label = f"open_clip {clip_model} ({scorer.clip.source})"
        return _full_size(name, label, scorer, t0)
    raise ValueError(f"unknown embedder {name!r}; choose from {', '.join(EMBEDDERS)}")


def _full_size(name: str, label: str, scorer: Any, t0: float) -> Embedder:
    """A full-size tower with the trimmed-context encoder, checked against the scorer's."""
    embed = _trimmed(scorer)
    sample = [
        "a photo of a cat",
        "an oil painting of a lighthouse in a storm, dramatic sky, highly detailed",
        "two red apples and a green pear on a wooden table",
        "A close-up of a robot's hand holding a small flower, studio lighting, 85mm",
    ]
    diff = float(np.abs(embed(sample) - scorer.embed_texts(sample)).max())
    return Embedder(name, label, embed, time.perf_counter() - t0, diff)


def _trimmed(scorer: Any, batch: int = 64) -> Callable[[Sequence[str]], np.ndarray]:
    """``scorer.embed_texts`` computed on each batch's longest prompt instead of all
    positions (open_clip's ``CLIP.encode_text`` with the context cut after the last EOT)."""
    import torch
    import torch.nn.functional as F
    from open_clip.transformer import text_global_pool

    from diffwatch.scoring.clip.text import tokenize

    clip = scorer.clip
    model = clip.model

    def embed(prompts: Sequence[str]) -> np.ndarray:
        tokens = tokenize(clip.tokenizer, list(prompts), clip.context_length)
        lengths = np.minimum(np.asarray(tokens.n_tokens), clip.context_length)
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(prompts), clip.embed_dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch):
                rows = order[start : start + batch]
                width = int(lengths[rows].max())
                ids = tokens.ids[torch.as_tensor(rows)][:, :width]
                x = model.token_embedding(ids) + model.positional_embedding[:width]
                x = model.transformer(x, attn_mask=model.attn_mask[:width, :width])
                x = model.ln_final(x)
                x = text_global_pool(x, ids, model.text_pool_type)
                x = x @ model.text_projection
                out[rows] = F.normalize(x.float(), dim=-1).numpy()
        return out

    return embed
