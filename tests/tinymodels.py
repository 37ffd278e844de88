"""Tiny models for tests, saved to files and loaded through the same code path as real weights.

The tiny CLIP lives in the package (``diffwatch.demo.tiny_clip``) because the demo uses it too::

    ckpt = save_tiny_clip(tmp_path)           # registers the architecture, writes a state dict
    clip = load_clip(ClipConfig(model_name=TINY_CLIP_NAME, pretrained=None,
                                checkpoint=str(ckpt), device="cpu"))
"""

from __future__ import annotations

from typing import Any

from diffwatch.demo.tiny_clip import (
    TINY_CLIP_EMBED_DIM,
    TINY_CLIP_IMAGE_SIZE,
    TINY_CLIP_NAME,
    build_tiny_clip,
    register_tiny_clip,
    save_tiny_clip,
    tiny_clip_config,
    tiny_clip_settings,
)

__all__ = [
    "TINY_CLIP_EMBED_DIM",
    "TINY_CLIP_IMAGE_SIZE",
    "TINY_CLIP_NAME",
    "build_tiny_clip",
    "photo_like",
    "register_tiny_clip",
    "save_tiny_clip",
    "tiny_clip_config",
    "tiny_clip_settings",
]


def photo_like(height: int, width: int, seed: int = 0) -> Any:
    """An HxWx3 uint8 RGB array with smooth colour regions plus noise, like a small photo."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    noisy = base.astype(np.int16) + rng.integers(-30, 31, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)
