"""Tiny models for tests, saved to files and loaded through the same code path as real weights.

Plain functions, not fixtures, so any test module can use them::

    ckpt = save_tiny_clip(tmp_path)           # registers the architecture, writes a state dict
    clip = load_clip(ClipConfig(model_name=TINY_CLIP_NAME, pretrained=None,
                                checkpoint=str(ckpt), device="cpu"))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def register_tiny_clip(directory: Path) -> str:
    """Write the tiny config to ``<directory>/<name>.json`` and register it with open_clip."""
    import open_clip

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{TINY_CLIP_NAME}.json"
    path.write_text(json.dumps(tiny_clip_config()))
    open_clip.add_model_config(path)
    return TINY_CLIP_NAME


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
    from scoring.clip_config import ClipConfig

    return ClipConfig(
        model_name=TINY_CLIP_NAME,
        pretrained=None,
        checkpoint=str(checkpoint),
        device=device,
        precision=precision,  # type: ignore[arg-type]
    )


def photo_like(height: int, width: int, seed: int = 0) -> Any:
    """An HxWx3 uint8 RGB array with smooth colour regions plus noise, like a small photo."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    noisy = base.astype(np.int16) + rng.integers(-30, 31, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)
