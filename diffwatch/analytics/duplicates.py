"""Near-duplicate images with an interval on their share: the definition (what counts, how
it is found) is ``diffwatch.model.near_duplicates``; this adds the Wilson interval."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffwatch.analytics.intervals import LEVEL, wilson
from diffwatch.model.near_duplicates import DEFAULT_THRESHOLD, find_near_duplicates

__all__ = ["DEFAULT_THRESHOLD", "DuplicateReport", "near_duplicates"]


@dataclass(frozen=True, slots=True)
class DuplicateReport:
    """How many images of a set have a near-duplicate partner, and the closest pairs."""

    n: int  # images examined
    n_duplicates: int  # images with at least one near-duplicate partner
    share: float  # n_duplicates / n, 0..1
    ci_low: float  # Wilson score interval of share at ``level``, 0..1
    ci_high: float
    threshold: float  # cosine at or above which two images are near-duplicates
    examples: tuple[tuple[int, int, float], ...]  # (generation id, generation id, cosine)
    level: float = LEVEL

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable dict (examples become [id_a, id_b, cosine] lists)."""
        return {
            "n": self.n,
            "n_duplicates": self.n_duplicates,
            "share": self.share,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "threshold": self.threshold,
            "examples": [list(e) for e in self.examples],
            "level": self.level,
        }


def near_duplicates(
    embeddings: np.ndarray,
    ids: Sequence[int],
    prompts: Sequence[str],
    seeds: Sequence[int | None],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_examples: int = 8,
    block: int = 2048,
) -> DuplicateReport:
    """``find_near_duplicates`` (see there: what counts, how it is found) with the share's
    Wilson interval at ``LEVEL``."""
    found = find_near_duplicates(
        embeddings, ids, prompts, seeds, threshold=threshold, max_examples=max_examples,
        block=block,
    )  # fmt: skip
    ci = wilson(found.n_duplicates, found.n)
    return DuplicateReport(
        n=found.n,
        n_duplicates=found.n_duplicates,
        share=found.n_duplicates / found.n,
        ci_low=float(ci.low),
        ci_high=float(ci.high),
        threshold=found.threshold,
        examples=found.examples,
    )
