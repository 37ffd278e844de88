"""Confidence intervals for differences between two groups (pure, deterministic).

- Means: Welch's unequal-variance t interval, on estimates that carry their own variance
  and degrees of freedom (plain samples, or ratio estimators over time buckets).
- Proportions: Wilson score intervals and Newcombe's hybrid score interval for a
  difference (Newcombe 1998, method 10).
- Quantiles of histograms: a seeded multinomial bootstrap of the difference, and a
  distribution-free order-statistic interval for one group's quantile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95  # confidence level of every interval unless told otherwise
BOOTSTRAP_SEED = 20_260_101
BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate and its two-sided confidence interval (unit of the estimate)."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL


@dataclass(frozen=True, slots=True)
class MeanEstimate:
    """A mean, the variance of that mean (not of the data), and its degrees of freedom."""

    mean: float
    var_of_mean: float
    df: float
    n: int  # observations behind it (for the minimum-sample rule)


def sample_mean(values: Sequence[float]) -> MeanEstimate:
    """Mean of independent observations: variance s²/n, n − 1 degrees of freedom."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError(f"a sample mean's variance needs at least 2 values, got {x.size}")
    return MeanEstimate(float(x.mean()), float(x.var(ddof=1) / x.size), x.size - 1.0, x.size)


def ratio_mean(pairs: Sequence[tuple[float, float]]) -> MeanEstimate | None:
    """Ratio of sums Σy/Σn over buckets (clusters), with its cluster-robust variance.

    Each pair is one time bucket's (sum of values, count). The estimate is the overall
    mean Σy/Σn; its variance is the linearised ratio-estimator variance
    m/(m−1) · Σ(y_b − R·n_b)² / (Σn)² with m − 1 degrees of freedom (m buckets). It needs
    no sums of squares, and it stays honest when requests of one bucket are correlated.
    None when fewer than 2 buckets hold data, or none holds a count.
    """
    # A bucket with a sum but no count (GPU time of failed requests only) still counts.
    kept = [(float(y), float(n)) for y, n in pairs if n > 0 or y != 0]
    ys = np.array([y for y, _ in kept])
    ns = np.array([n for _, n in kept])
    m = ys.size
    if m < 2:
        return None
    total = ns.sum()
    if total <= 0:
        return None
    r = ys.sum() / total
    var = m / (m - 1) * float(np.sum((ys - r * ns) ** 2)) / total**2
    return MeanEstimate(float(r), var, m - 1.0, int(total))


def welch_diff(a: MeanEstimate, b: MeanEstimate, level: float = LEVEL) -> Interval:
    """CI of b.mean − a.mean: Welch's t with Welch–Satterthwaite degrees of freedom."""
    d = b.mean - a.mean
    var = a.var_of_mean + b.var_of_mean
    if var <= 0:
        return Interval(d, d, d, level)
    half = float(stats.t.ppf(0.5 + level / 2, welch_df(a, b))) * math.sqrt(var)
    return Interval(d, d - half, d + half, level)


def welch_df(a: MeanEstimate, b: MeanEstimate) -> float:
    """Welch–Satterthwaite degrees of freedom of b.mean − a.mean."""
    var = a.var_of_mean + b.var_of_mean
    return var**2 / (a.var_of_mean**2 / a.df + b.var_of_mean**2 / b.df)


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2))


def wilson(successes: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval of a proportion successes/n (no continuity correction)."""
    if n <= 0:
        raise ValueError(f"a proportion needs n > 0 trials, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    z = _z(level)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), level)


def newcombe_diff(x_a: int, n_a: int, x_b: int, n_b: int, level: float = LEVEL) -> Interval:
    """CI of x_b/n_b − x_a/n_a: Newcombe's hybrid score interval (1998, method 10)."""
    a, b = wilson(x_a, n_a, level), wilson(x_b, n_b, level)
    d = b.estimate - a.estimate
    low = d - math.hypot(b.estimate - b.low, a.high - a.estimate)
    high = d + math.hypot(b.high - b.estimate, a.estimate - a.low)
    return Interval(d, low, high, level)


def _hist_arrays(hist: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray]:
    items = sorted((b, n) for b, n in hist.items() if n > 0)
    return np.array([b for b, _ in items]), np.array([n for _, n in items], dtype=float)


def hist_quantile(hist: Mapping[int, int], q: float) -> int | None:
    """Bin of the nearest-rank q-quantile, rank ceil(q·n) (as percentile_disc)."""
    bins, counts = _hist_arrays(hist)
    if counts.size == 0:
        return None
    rank = max(1.0, math.ceil(q * counts.sum()))
    return int(bins[np.searchsorted(np.cumsum(counts), rank)])


def _bin(hist: Mapping[int, int], q: float) -> int:
    b = hist_quantile(hist, q)
    assert b is not None  # callers checked the histogram is not empty
    return b


def _boot_quantiles(
    bins: np.ndarray, counts: np.ndarray, q: float, rng: np.random.Generator, draws: int
) -> np.ndarray:
    n = int(counts.sum())
    sample = rng.multinomial(n, counts / counts.sum(), size=draws)
    rank = max(1, math.ceil(q * n))
    idx = np.argmax(np.cumsum(sample, axis=1) >= rank, axis=1)
    return bins[idx]


def quantile_diff(
    hist_a: Mapping[int, int],
    hist_b: Mapping[int, int],
    q: float,
    value_of: Callable[[int], float],
    level: float = LEVEL,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
) -> Interval | None:
    """CI of quantile_q(b) − quantile_q(a) from two histograms ``{bin: count}``.

    Percentile bootstrap: each histogram is resampled as a multinomial with its own
    count and bin shares, ``draws`` times, with a fixed seed (the same inputs give the
    same interval). ``value_of`` maps a bin to its value (ms). None if either is empty.
    """
    bins_a, counts_a = _hist_arrays(hist_a)
    bins_b, counts_b = _hist_arrays(hist_b)
    if counts_a.size == 0 or counts_b.size == 0:
        return None
    values = np.vectorize(value_of, otypes=[float])
    rng = np.random.default_rng(seed)
    qa = values(_boot_quantiles(bins_a, counts_a, q, rng, draws))
    qb = values(_boot_quantiles(bins_b, counts_b, q, rng, draws))
    d = value_of(_bin(hist_b, q)) - value_of(_bin(hist_a, q))
    low, high = np.quantile(qb - qa, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return Interval(d, float(min(low, d)), float(max(high, d)), level)


def quantile_interval(
    hist: Mapping[int, int], q: float, value_of: Callable[[int], float], level: float = LEVEL
) -> Interval | None:
    """Distribution-free CI of one histogram's q-quantile from binomial order statistics.

    The ranks l and u are the binomial(n, q) quantiles at (1 ∓ level)/2 (clamped to
    [1, n]); the interval is the values of the bins holding ranks l and u. None if empty.
    """
    bins, counts = _hist_arrays(hist)
    if counts.size == 0:
        return None
    n = int(counts.sum())
    cum = np.cumsum(counts)
    lo_rank = max(1, int(stats.binom.ppf((1 - level) / 2, n, q)))
    hi_rank = min(n, int(stats.binom.ppf((1 + level) / 2, n, q)) + 1)
    lo_b = int(bins[np.searchsorted(cum, lo_rank)])
    hi_b = int(bins[np.searchsorted(cum, hi_rank)])
    return Interval(value_of(_bin(hist, q)), float(value_of(lo_b)), float(value_of(hi_b)), level)
