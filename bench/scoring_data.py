"""Synthetic inputs for bench/scoring.py: photo-like images saved as JPEG and PNG, and prompts.

The images are smooth colour fields (two scales of bicubic-upsampled random grids), a few
soft-edged shapes and mild sensor-like noise: they compress and decode like camera photos or
diffusion outputs, unlike pure noise (too large) or flat colour (too small).
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

JPEG_QUALITY = 90
FORMATS = {"jpeg": ".jpg", "png": ".png"}


def photo_like(size: int, seed: int) -> np.ndarray:
    """A ``size``×``size``×3 uint8 RGB image: smooth regions, soft shapes, mild noise."""
    rng = np.random.default_rng(seed)

    def field_(cells: int) -> np.ndarray:
        coarse = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        up = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(up, dtype=np.float32)

    base = (
        0.6 * field_(max(size // 96, 3))
        + 0.25 * field_(max(size // 24, 4))
        + 0.15 * field_(max(size // 6, 8))  # fine texture: foliage, fabric, hair
    )
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(size // 12, size // 2, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=colour)
    im = im.filter(ImageFilter.GaussianBlur(radius=1.2))
    noisy = np.asarray(im, dtype=np.float32) + rng.normal(0.0, 3.0, (size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str) -> bytes:
    """The image as a JPEG (quality 90, 4:2:0) or PNG (Pillow's default level 6) file."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    elif fmt == "png":
        Image.fromarray(rgb).save(buf, format="PNG")
    else:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return buf.getvalue()


@dataclass
class ImageSet:
    """Files on disk per format, and the byte sizes of the distinct encodings."""

    paths: dict[str, list[str]] = field(default_factory=dict)
    unique_bytes: dict[str, list[int]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Per format: files written and mean/min/max file size (KiB)."""
        out: dict[str, dict[str, float | int]] = {}
        for fmt, sizes in self.unique_bytes.items():
            out[fmt] = {
                "files": len(self.paths[fmt]),
                "mean_kib": round(float(np.mean(sizes)) / 1024, 1),
                "min_kib": round(min(sizes) / 1024, 1),
                "max_kib": round(max(sizes) / 1024, 1),
                **({"quality": JPEG_QUALITY} if fmt == "jpeg" else {"compress_level": 6}),
            }
        return out


def write_images(
    directory: Path,
    n: int,
    unique: int,
    formats: Sequence[str],
    size: int = 512,
    seed: int = 0,
    threads: int | None = None,
) -> ImageSet:
    """Write ``n`` files per format into ``directory``, cycling over ``unique`` distinct images.

    Every file is its own path (and its own read and decode in the benchmark); repeating
    content only saves generation time.
    """
    threads = threads or min(16, os.cpu_count() or 1)
    unique = max(1, min(unique, n))

    def make(i: int) -> dict[str, bytes]:
        rgb = photo_like(size, seed + i)
        return {fmt: encode(rgb, fmt) for fmt in formats}

    with ThreadPoolExecutor(threads) as pool:
        encoded = list(pool.map(make, range(unique)))
    out = ImageSet()
    for fmt in formats:
        ext = FORMATS[fmt]
        paths = [str(directory / f"img_{i:06d}{ext}") for i in range(n)]
        for i, path in enumerate(paths):
            Path(path).write_bytes(encoded[i % unique][fmt])
        out.paths[fmt] = paths
        out.unique_bytes[fmt] = [len(e[fmt]) for e in encoded]
    return out


def prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct prompts of 30-300 characters, built like real ones (bench/records.py)."""
    from bench.records import make_prompt

    rng = random.Random(seed)
    # A serial number keeps every prompt distinct, so the text tower runs once per image
    # (ClipScorer embeds repeated prompts once), as it does for real traffic.
    return [f"{make_prompt(rng)}, take {i}" for i in range(n)]
