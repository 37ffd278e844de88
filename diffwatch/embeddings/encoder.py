"""Loading the CLIP that encodes search text: the one module of this stage that reaches torch.

It goes through scoring's own loader (``load_clip_scorer``), so the label it returns is the
scorer version under which the worker stored that CLIP's image embeddings. Torch and
open_clip load inside the call, never at import: the dashboard imports this stage without
them, and only a configured text search loads them (the import contract names this edge).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from diffwatch.scoring.clip.config import ClipOptions

Embed = Callable[[Sequence[str]], np.ndarray]


def load_clip_text(
    clip: ClipOptions, device: str, error: type[Exception]
) -> tuple[Embed, str, int]:
    """The text side of the CLIP of ``clip`` on ``device``: (embed texts → L2-normalised
    float32 rows, its scorer version, its embedding width). A CLIP that cannot be loaded
    raises ``error`` with the reason and the setting to fix."""
    try:
        from diffwatch.scoring.clip.config import ClipWeightsError
        from diffwatch.scoring.scorers import load_clip_scorer
    except ImportError as exc:  # the scoring extra (torch, open_clip) is not installed
        raise error(
            f"text search loads a CLIP, which needs the scoring extra ({exc.name} is "
            "missing): pip install 'diffwatch[scoring]'"
        ) from exc
    try:
        scorer, version = load_clip_scorer(clip, device)
    except (ClipWeightsError, FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(
            f"the search CLIP (DIFFWATCH_SEARCH_CLIP_MODEL={clip.model}) could not be loaded: "
            f"{reason}"
        ) from exc
    return scorer.embed_texts, version, int(scorer.clip.embed_dim)
