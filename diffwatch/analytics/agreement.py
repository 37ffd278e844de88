"""Inter-rater agreement on the human review queue: Krippendorff's alpha.

Ratings arrive as ``(item_id, rater_id, value)`` triples, straight from a SQL query. Only
items with at least two ratings carry information about agreement ("pairable" values, in
Krippendorff's terms); items rated once are dropped before anything is counted.

The computation itself is the ``krippendorff`` package (Castro, fast-krippendorff), which
reproduces the worked examples of Krippendorff (2011), "Computing Krippendorff's
Alpha-Reliability"; this module only turns triples into its reliability matrix and says
why alpha is undefined instead of raising.
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import numpy as np

LEVELS = ("nominal", "ordinal", "interval", "ratio")


@dataclass(frozen=True, slots=True)
class Agreement:
    """Krippendorff's alpha and the amount of data behind it.

    ``alpha`` is None when it is undefined: fewer than two pairable values, or no
    variation among them (expected disagreement is zero, so 1 − Do/De has no value).
    """

    alpha: float | None
    level: str  # "nominal" | "ordinal" | "interval" | "ratio"
    n_items: int  # items with at least 2 ratings (pairable)
    n_ratings: int  # ratings on those items
    n_raters: int  # distinct raters among those ratings

    def to_dict(self) -> dict:
        """Plain dict for JSON output and DataFrames."""
        return asdict(self)


def _numeric(value: object, item: Hashable, rater: Hashable, level: str) -> float:
    """Check one value for a level with distances (ordinal and up) and return it as float."""
    # bool is an int subclass, but a True/False rating on a 1–5 scale is a bug upstream.
    # Decimal is allowed because SQL NUMERIC columns come back as Decimal.
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        raise ValueError(
            f"ratings: item {item!r}, rater {rater!r} has value {value!r} "
            f"({type(value).__name__}); level {level!r} needs numbers. "
            "Pass numeric ratings, or use level='nominal' for categories."
        )
    number = float(value)
    if not math.isfinite(number):
        # NaN would silently read as "missing" in the reliability matrix.
        raise ValueError(
            f"ratings: item {item!r}, rater {rater!r} has value {value!r}; "
            "values must be finite. Leave unrated items out instead of passing NaN."
        )
    return number


def krippendorff_alpha(
    ratings: Iterable[tuple[Hashable, Hashable, float | int]],
    level: str = "ordinal",
) -> Agreement:
    """Krippendorff's alpha over ``(item_id, rater_id, value)`` triples, in any order.

    ``level`` is the level of measurement: "nominal" (any hashable values), or "ordinal",
    "interval", "ratio" (numeric values). Items rated once are ignored. A rater rating the
    same item twice raises ValueError: the database allows one rating per (rater, item), so
    a duplicate means a bug in the query that produced the triples.
    """
    if level not in LEVELS:
        raise ValueError(
            f"level: {level!r} is not a level of measurement; use one of {', '.join(LEVELS)}."
        )

    seen: dict[tuple[Hashable, Hashable], object] = {}
    by_item: dict[Hashable, dict[Hashable, float]] = {}
    codes: dict[Hashable, float] = {}  # nominal: category → arbitrary numeric code
    for item, rater, value in ratings:
        if (item, rater) in seen:
            raise ValueError(
                f"ratings: rater {rater!r} rated item {item!r} twice "
                f"(values {seen[item, rater]!r} and {value!r}); each rater rates an item "
                "at most once. Fix the query that produced the ratings (one row per "
                "rater and item)."
            )
        seen[item, rater] = value
        if level == "nominal":
            # Nominal alpha only asks "same or different", so any code works; codes keep
            # strings and mixed types out of the float matrix the library wants.
            number = codes.setdefault(value, float(len(codes)))
        else:
            number = _numeric(value, item, rater, level)
        by_item.setdefault(item, {})[rater] = number

    pairable = {item: row for item, row in by_item.items() if len(row) >= 2}
    raters = list(dict.fromkeys(r for row in pairable.values() for r in row))
    n_ratings = sum(len(row) for row in pairable.values())
    values = {v for row in pairable.values() for v in row.values()}

    alpha: float | None = None
    # One distinct value means zero expected disagreement: alpha is 0/0, not a number.
    if pairable and len(values) >= 2:
        # Imported here so that importing analytics stays numpy-only and cheap.
        import krippendorff

        column = {item: j for j, item in enumerate(pairable)}
        row_of = {rater: i for i, rater in enumerate(raters)}
        # Raters × items, NaN where a rater did not rate an item: the library's layout.
        matrix = np.full((len(raters), len(pairable)), np.nan)
        for item, row in pairable.items():
            for rater, number in row.items():
                matrix[row_of[rater], column[item]] = number
        result = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))
        alpha = result if math.isfinite(result) else None

    return Agreement(
        alpha=alpha,
        level=level,
        n_items=len(pairable),
        n_ratings=n_ratings,
        n_raters=len(raters),
    )


def alpha_bootstrap(
    triples: Sequence[tuple[Any, Any, float]],
    level: str = "ordinal",
    draws: int = 500,
    seed: int = 20_261_121,
) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of Krippendorff's alpha, resampling items.

    Items rated at least twice are drawn with replacement (a drawn-again item gets a fresh
    id, so its ratings count again); draws where alpha is undefined are dropped. None with
    fewer than 5 pairable items or fewer than half the draws defined.
    """
    by_item: dict[Any, list[tuple[Any, float]]] = defaultdict(list)
    for item, rater, value in triples:
        by_item[item].append((rater, value))
    items = [rows for rows in by_item.values() if len(rows) >= 2]
    if len(items) < 5:
        return None
    rng = np.random.default_rng(seed)
    alphas = []
    for _ in range(draws):
        pick = rng.integers(0, len(items), len(items))
        sample = [(k, r, v) for k, j in enumerate(pick) for r, v in items[j]]
        a = krippendorff_alpha(sample, level).alpha
        if a is not None:
            alphas.append(a)
    if len(alphas) < draws / 2:
        return None
    lo, hi = np.percentile(alphas, [2.5, 97.5])
    return float(lo), float(hi)
