"""Human ratings per group (model version or deployment) for the Model versions page.

Pure: rows of ``diffwatch.db.queries.ratings_analytics.human_items`` in, frozen dataclasses out.
Each rated image counts once, as the mean of its raters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from diffwatch.analytics.ratings import _get, _json, _mean_ci


@dataclass(frozen=True, slots=True)
class HumanSummary:
    """Human ratings of one group (a model version or deployment).

    Each rated image counts once, as the mean of its raters, so heavily re-rated images do
    not weigh more: ``mean_*`` is the mean over images of those per-image means (1..5) and
    ``*_low``/``*_high`` its 95% t-interval over images (None with fewer than 2 images).
    ``nsfw_share``: share of images that any rater flagged nsfw (0..1).
    """

    group: str
    n_items: int
    n_ratings: int
    mean_quality: float
    quality_low: float | None
    quality_high: float | None
    mean_adherence: float
    adherence_low: float | None
    adherence_high: float | None
    nsfw_share: float

    def to_dict(self) -> dict:
        """Plain JSON-safe dict."""
        return _json(asdict(self))


def human_summary(items: Iterable[Any]) -> list[HumanSummary]:
    """Per group, sorted by group: ``items`` rows have ``group, item_id, n_ratings,
    mean_quality, mean_adherence, human_nsfw`` (by name, or in that order)."""
    by: dict[str, list[tuple[int, float, float, bool]]] = defaultdict(list)
    for row in items:
        by[str(_get(row, "group", 0))].append(
            (
                int(_get(row, "n_ratings", 2)),
                float(_get(row, "mean_quality", 3)),
                float(_get(row, "mean_adherence", 4)),
                bool(_get(row, "human_nsfw", 5)),
            )
        )
    out = []
    for group in sorted(by):
        rows = by[group]
        q = np.array([r[1] for r in rows])
        a = np.array([r[2] for r in rows])
        out.append(
            HumanSummary(
                group=group,
                n_items=len(rows),
                n_ratings=sum(r[0] for r in rows),
                mean_quality=float(q.mean()),
                quality_low=_mean_ci(q)[0],
                quality_high=_mean_ci(q)[1],
                mean_adherence=float(a.mean()),
                adherence_low=_mean_ci(a)[0],
                adherence_high=_mean_ci(a)[1],
                nsfw_share=sum(r[3] for r in rows) / len(rows),
            )
        )
    return out


def human_diff(
    baseline: Sequence[float], candidate: Sequence[float]
) -> tuple[float, float, float] | None:
    """Candidate − baseline difference of per-image means, with Welch's 95% interval.

    Returns ``(estimate, low, high)`` in scale points, or None when either side has fewer
    than 2 images (no variance to build an interval from).
    """
    if len(baseline) < 2 or len(candidate) < 2:
        return None
    from diffwatch.analytics.intervals import sample_mean, welch_diff

    d = welch_diff(sample_mean(baseline), sample_mean(candidate))
    return d.estimate, d.low, d.high
