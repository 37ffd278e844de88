"""What every scorer provides to the worker: a versioned key and a batch ``score``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from diffwatch.db.queries.scoring import ScorerKey

if TYPE_CHECKING:
    from diffwatch.scoring.clip.text import TokenizedPrompts


@dataclass(frozen=True, slots=True)
class ScoreOutcome:
    """One image's score: a value, an optional flag, and JSON-ready details."""

    value: float | None
    flagged: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    embedding: np.ndarray | None = None  # the image's embedding, for scorers that keep one
    prompt_embedding: np.ndarray | None = None  # its prompt's text embedding


class Scorer(Protocol):
    """A batch scorer. ``key.version`` changes whenever its model, weights or policy do.

    ``embedding_dims`` is the width of the image embeddings its outcomes carry (CLIP), or
    None for a scorer that keeps none; the worker stores them where the database can.
    """

    key: ScorerKey
    embedding_dims: int | None

    def score(
        self,
        images: Sequence[np.ndarray | Any],
        prompts: Sequence[str],
        tokens: TokenizedPrompts | None = None,
    ) -> list[ScoreOutcome]:
        """Score RGB uint8 images (H×W×3: numpy arrays, or torch tensors on the scoring
        device) against their prompts, in order. ``tokens`` are the prompts already
        tokenized by the loader, for scorers that need tokens; others ignore them."""
        ...
