"""Compare re-generated images with their references: CLIP image–image cosine, each image's
CLIPScore against the prompt, and the tolerance calibrated from same-seed repeats (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class ImageTextEmbedder(Protocol):
    """L2-normalised CLIP embeddings (float32 rows) of images and of prompts."""

    def embed_images(self, images: Sequence[Any]) -> np.ndarray: ...

    def embed_texts(self, prompts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Comparison:
    """One pair: ``cosine`` (−1..1) of the two images' CLIP embeddings; ``clip_reference``
    and ``clip_regen`` CLIPScore (0..100) of each against the prompt; ``delta`` regen −
    reference (CLIPScore points)."""

    cosine: float
    clip_reference: float
    clip_regen: float

    @property
    def distance(self) -> float:
        """1 − cosine: 0 for the same embedding, up to 2."""
        return 1.0 - self.cosine

    @property
    def delta(self) -> float:
        """CLIPScore of the re-generated image minus the reference's, in points."""
        return self.clip_regen - self.clip_reference


def compare(
    clip: ImageTextEmbedder,
    regenerated: Sequence[Any],
    references: Sequence[Any],
    prompts: Sequence[str],
) -> list[Comparison]:
    """Compare image i of ``regenerated`` with image i of ``references`` under prompt i."""
    if not len(regenerated) == len(references) == len(prompts):
        raise ValueError(
            f"compare: {len(regenerated)} re-generated images, {len(references)} references "
            f"and {len(prompts)} prompts; they must pair up"
        )
    if not prompts:
        return []
    regen = clip.embed_images(list(regenerated))
    ref = clip.embed_images(list(references))
    row = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    text = clip.embed_texts(list(row))[[row[p] for p in prompts]]
    cos = np.clip((regen * ref).sum(axis=1), -1.0, 1.0)
    s_ref = 100.0 * np.clip((ref * text).sum(axis=1), 0.0, 1.0)
    s_regen = 100.0 * np.clip((regen * text).sum(axis=1), 0.0, 1.0)
    return [
        Comparison(float(c), float(a), float(b))
        for c, a, b in zip(cos, s_ref, s_regen, strict=True)
    ]


@dataclass(frozen=True)
class Calibration:
    """Same-seed repeats: how far apart (1 − cosine) two generations of one seed came out,
    and the tolerance that follows: ``max(floor, factor × max_distance)``."""

    pairs: int
    max_distance: float
    median_distance: float
    floor: float
    factor: float

    @property
    def tolerance(self) -> float:
        """The largest 1 − cosine that is not flagged."""
        return max(self.floor, self.factor * self.max_distance)

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready, with the resulting tolerance."""
        return {
            "pairs": self.pairs,
            "max_distance": self.max_distance,
            "median_distance": self.median_distance,
            "floor": self.floor,
            "factor": self.factor,
            "tolerance": self.tolerance,
        }


def calibrate(distances: Sequence[float], floor: float, factor: float) -> Calibration:
    """A calibration from the 1 − cosine distances of same-seed pairs (none: the floor)."""
    d = np.asarray(distances, dtype=float)
    return Calibration(
        pairs=len(d),
        max_distance=float(d.max()) if len(d) else 0.0,
        median_distance=float(np.median(d)) if len(d) else 0.0,
        floor=floor,
        factor=factor,
    )
