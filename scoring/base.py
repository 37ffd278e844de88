"""What every scorer provides to the worker: a versioned key and a batch ``score``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from db.queries.scoring import ScorerKey


@dataclass(frozen=True, slots=True)
class ScoreOutcome:
    """One image's score: a value, an optional flag, and JSON-ready details."""

    value: float | None
    flagged: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    """A batch scorer. ``key.version`` changes whenever its model, weights or policy do."""

    key: ScorerKey

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[ScoreOutcome]:
        """Score RGB uint8 images (H×W×3) against their prompts, in order."""
        ...
