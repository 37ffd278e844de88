"""What the model-version comparison measures: metric definitions and sufficient statistics.

A ``Metric`` says what is compared (name, unit, which direction is better, the smallest
difference that matters, the minimum sample); ``diffwatch.analytics.versions`` says how. The
statistics of one side come from rollups (``diffwatch.db.queries.versions``): counts, sums per
time bucket and merged latency histograms, never raw rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Better = Literal["lower", "higher"]
Kind = Literal["quantile", "proportion", "ratio"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One compared metric; differences are candidate − baseline, in ``unit``.

    ``min_diff`` is the smallest difference that matters (in ``unit``, or a fraction of
    the baseline's value when ``relative``). ``min_n`` is the minimum sample per side
    (requests, images or scored images); ratio metrics also need ``min_buckets`` time
    buckets with data per side, because their variance comes from bucket-to-bucket spread.
    """

    key: str
    name: str
    unit: str  # of the value as displayed: "ms", "USD", "%", "" (scale converts)
    better: Better
    min_diff: float  # in display units, or a fraction of the baseline when relative
    kind: Kind
    source: str  # VersionStats attribute holding the statistics
    min_n: int
    relative: bool = False
    q: float = 0.5  # quantile metrics only
    scale: float = 1.0  # display value = stored value × scale (proportions → %)
    diff_unit: str = ""  # unit of a difference when it differs from unit ("pp")
    fmt: str = ",.2f"
    worse: str = "worse"  # word for a change in the bad direction
    improved: str = "better"
    min_buckets: int = 5


P50 = Metric("p50_ms", "p50 latency", "ms", "lower", 0.10, "quantile", "latency_hist", 100,
             relative=True, q=0.5, fmt=",.0f", worse="slower", improved="faster")  # fmt: skip
P95 = Metric("p95_ms", "p95 latency", "ms", "lower", 0.10, "quantile", "latency_hist", 400,
             relative=True, q=0.95, fmt=",.0f", worse="slower", improved="faster")  # fmt: skip
ERROR_RATE = Metric("error_rate", "error rate", "%", "lower", 0.5, "proportion", "errors", 100,
                    scale=100.0, diff_unit="pp", fmt=".2f")  # fmt: skip
COST = Metric("cost_per_image_usd", "cost per image", "USD", "lower", 0.05, "ratio", "cost",
              100, relative=True, fmt=".5f", worse="more expensive",
              improved="cheaper")  # fmt: skip
CLIP = Metric("clip_mean", "CLIP score", "", "higher", 0.5, "ratio", "clip", 100)
NSFW = Metric("nsfw_rate", "NSFW rate", "%", "lower", 0.5, "proportion", "nsfw", 200,
              scale=100.0, diff_unit="pp", fmt=".2f")  # fmt: skip
RATING = Metric("rating_mean", "human rating", "", "higher", 0.1, "ratio", "rating", 50)
METRICS: tuple[Metric, ...] = (P50, P95, ERROR_RATE, COST, CLIP, NSFW, RATING)


@dataclass(frozen=True, slots=True)
class Proportion:
    """``successes`` of ``n`` trials (errors of requests, flagged of scored images)."""

    successes: int
    n: int


@dataclass(frozen=True, slots=True)
class BucketSums:
    """Per time bucket: (sum of values, count); the mean is Σsum / Σcount."""

    pairs: tuple[tuple[float, float], ...] = ()

    @property
    def n(self) -> int:
        """Observations over all buckets."""
        return int(sum(c for _, c in self.pairs))

    @property
    def buckets(self) -> int:
        """Buckets holding at least one observation."""
        return sum(1 for _, c in self.pairs if c > 0)


@dataclass(frozen=True, slots=True)
class VersionStats:
    """Sufficient statistics of one side (a version, a deployment) over the range.

    ``latency_hist`` is the merged total_ms histogram ``{bin: count}`` (db.histogram).
    ``cost`` holds (USD, images) per bucket on priced GPU types only. ``rating`` is None
    until ratings exist; then it holds (mean human quality, 1) per rated image.
    """

    label: str
    requests: int = 0
    images: int = 0
    errors: Proportion = Proportion(0, 0)
    latency_hist: Mapping[int, int] = field(default_factory=dict)
    cost: BucketSums = BucketSums()
    unpriced_gpu_hours: float = 0.0  # GPU time on GPU types missing from gpu_prices (h)
    clip: BucketSums = BucketSums()
    clip_scorer_version: str | None = None
    nsfw: Proportion = Proportion(0, 0)
    nsfw_scorer_version: str | None = None
    rating: BucketSums | None = None
    width_s: int = 3600  # bucket width the sums were read at (s)
