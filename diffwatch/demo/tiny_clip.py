"""A tiny random-weight open_clip model, saved to a file and loaded through the real path.

For tests and for the demo when no CLIP weights are on the machine; its embeddings are
random projections of the tokens and mean nothing about images. The demo labels every
result made with it.

    ckpt = save_tiny_clip(directory)          # registers the architecture, writes a state dict
    clip = load_clip(tiny_clip_settings(ckpt))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_CLIP_LABEL = "tiny random-weight CLIP (demo/test only; its scores mean nothing)"
TINY_CLIP_NAME = "diffwatch-tiny-clip"
TINY_CLIP_IMAGE_SIZE = 64  # px
TINY_CLIP_EMBED_DIM = 32


def tiny_clip_config() -> dict[str, Any]:
    """An open_clip model config: ViT of 2 layers (width 64, patch 16, 64 px), text of 2 layers.

    The text tower keeps CLIP's vocabulary (49408) and context length (77), so the BPE
    tokenizer that ships inside the open_clip package works with it, offline.
    """
    return {
        "embed_dim": TINY_CLIP_EMBED_DIM,
        "vision_cfg": {
            "image_size": TINY_CLIP_IMAGE_SIZE,
            "layers": 2,
            "width": 64,
            "head_width": 32,
            "patch_size": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 2,
        },
    }


def register_clip_config(directory: Path, name: str, config: dict[str, Any]) -> str:
    """Write ``config`` to ``<directory>/<name>.json`` and register it with open_clip (which
    names a model by its config file's stem); ``name``."""
    import open_clip

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return name


def register_tiny_clip(directory: Path) -> str:
    """Write the tiny config to ``<directory>/<name>.json`` and register it with open_clip."""
    return register_clip_config(directory, TINY_CLIP_NAME, tiny_clip_config())


def build_tiny_clip(seed: int = 0) -> Any:
    """A tiny open_clip CLIP with random weights drawn from ``seed`` (fp32, CPU)."""
    import open_clip
    import torch

    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = open_clip.CLIP(**tiny_clip_config())
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


def save_tiny_clip(directory: Path, seed: int = 0) -> Path:
    """Register the tiny architecture; save a seeded state dict to ``<directory>/tiny_clip.bin``."""
    import torch

    register_tiny_clip(directory)
    path = directory / "tiny_clip.bin"
    torch.save(build_tiny_clip(seed).state_dict(), path)
    return path


def tiny_clip_settings(checkpoint: Path, device: str = "cpu", precision: str = "auto") -> Any:
    """ClipConfig that loads the tiny checkpoint (no tag, so no hub is involved)."""
    from diffwatch.scoring.clip.config import ClipConfig

    return ClipConfig(
        model_name=TINY_CLIP_NAME,
        pretrained=None,
        checkpoint=str(checkpoint),
        device=device,
        precision=precision,  # type: ignore[arg-type]
    )


def tiny_clip_scorer(home: Path, device: str = "cpu") -> Any:
    """A ClipScorer on the tiny CLIP saved under ``home/demo-models/tiny-clip`` (the demo's
    and ``--tiny-clip``'s stand-in when no CLIP weights are on the machine)."""
    from diffwatch.scoring.clip.scorer import ClipScorer, load_clip

    ckpt = save_tiny_clip(home / "demo-models" / "tiny-clip")
    return ClipScorer(load_clip(tiny_clip_settings(ckpt, device=device)))
