"""Statistics of a release gate: a candidate model against a baseline (pure, deterministic).

Both models generate the same (prompt, seed) pairs, so per-image scores and image
embeddings come in pairs and are compared pair by pair: a paired t interval, a win rate,
and CMMD with a paired permutation test and a paired bootstrap. Latencies come from
separate runs and are compared as two independent samples. Every random procedure takes
a seed, so the same inputs always give the same result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from diffwatch.analytics.intervals import BOOTSTRAP_DRAWS, BOOTSTRAP_SEED, LEVEL, Interval, wilson

CMMD_SIGMA = 10.0  # RBF bandwidth of the CMMD paper and its reference code
CMMD_SCALE = 1000.0  # the reference code reports MMD² × 1000 "to be more human readable"
# Resampling works on blocks of at most this many float64 values (32 MiB), so large
# samples or many draws never need one huge matrix.
_BLOCK = 4_000_000
# Permutation statistics are averages of kernel values in [0, 1]; rounding can make an
# exact tie with the observed value look smaller by a few ulps. Count those as ties (as
# scipy.stats.permutation_test does), or identical sets would not get p = 1.
_TIE = 1e-12


@dataclass(frozen=True, slots=True)
class CmmdResult:
    """CMMD (MMD² × scale) with its paired bootstrap interval and permutation p-value."""

    estimate: float
    low: float
    high: float
    p_value: float
    permutations: int
    level: float = LEVEL


def _differences(candidate: Sequence[float], baseline: Sequence[float], least: int) -> np.ndarray:
    c = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.ndim != 1 or b.ndim != 1:
        raise ValueError("candidate and baseline scores must be flat sequences of numbers")
    if c.size != b.size:
        raise ValueError(
            f"paired scores need one baseline score per candidate score, got {c.size} "
            f"candidate and {b.size} baseline scores: score both models on the same "
            "(prompt, seed) pairs"
        )
    if c.size < least:
        raise ValueError(f"this comparison needs at least {least} pairs, got {c.size}")
    d = c - b
    bad = np.flatnonzero(~np.isfinite(d))
    if bad.size:
        raise ValueError(f"pair {int(bad[0])} has a missing or infinite score: drop that pair")
    return d


def paired_diff(
    candidate: Sequence[float], baseline: Sequence[float], level: float = LEVEL
) -> Interval:
    """Mean of candidate[i] − baseline[i] with a paired Student t interval (score units)."""
    d = _differences(candidate, baseline, 2)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0:  # every pair moved by the same amount: nothing is uncertain, and t is 0/0
        return Interval(mean, mean, mean, level)
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1)) * sd / math.sqrt(d.size)
    return Interval(mean, mean - half, mean + half, level)


def win_rate(
    candidate: Sequence[float],
    baseline: Sequence[float],
    level: float = LEVEL,
    tie_tol: float = 0.0,
) -> Interval:
    """Share of pairs the candidate wins (0 to 1), a tie (|diff| <= tie_tol) counting ½.

    The interval is Wilson's score interval on n pairs with wins + ½·ties successes. Its
    formula needs only the share p = successes/n, so it is defined for a half-integer
    count; a tie scored ½ varies less than a Bernoulli trial, so the interval is, if
    anything, a little wide. tie_tol is in score units.
    """
    if not tie_tol >= 0:
        raise ValueError(f"tie_tol must be a non-negative score difference, got {tie_tol}")
    d = _differences(candidate, baseline, 1)
    ties = int(np.count_nonzero(np.abs(d) <= tie_tol))
    wins = int(np.count_nonzero(d > tie_tol))
    # intervals.wilson's arithmetic holds for any real count in [0, n] (its hint says int).
    return wilson(wins + 0.5 * ties, int(d.size), level)  # type: ignore[arg-type]


def _embeddings(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(
            f"embeddings must be 2-D (images, width), got shapes {a.shape} and {b.shape}"
        )
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError(f"CMMD needs images on both sides, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"the gate compares equal sets, got {a.shape[0]} candidate and {b.shape[0]} "
            "baseline embeddings: embed one image per (prompt, seed) pair from each model"
        )
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"embedding widths differ ({a.shape[1]} and {b.shape[1]}): embed both sets "
            "with the same model"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("embeddings hold NaN or infinite values: re-embed those images")
    return a, b


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """‖aᵢ − bⱼ‖² for rows of a (n × width) and b (m × width), n × m, embedding units².

    The CMMD reference's expansion ‖a‖² + ‖b‖² − 2a·b (not clipped at 0, as there). Pass the
    same array twice for a Gram matrix: ``a @ a.T`` is one BLAS call and exactly symmetric.
    """
    sa = np.einsum("ij,ij->i", a, a)
    sb = sa if b is a else np.einsum("ij,ij->i", b, b)
    return -2.0 * (a @ b.T) + sa[:, None] + sb[None, :]


def _pair_kernel(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """M[j, k] = k(x_j, x_k) + k(y_j, y_k) − k(x_j, y_k) − k(y_j, x_k) (n × n).

    Any assignment of the sides of each pair, written as signs e (+1 kept, −1 swapped),
    then has MMD² = eᵀMe / n², and a resample with pair counts c has cᵀMc / n².
    """
    n = x.shape[0]
    z = np.concatenate([x, y])
    # One (2n × 2n) Gram matrix for all four blocks.
    k = np.exp(-squared_distances(z, z) / (2.0 * sigma**2))
    return k[:n, :n] + k[n:, n:] - k[:n, n:] - k[n:, :n]


def _quadratic_forms(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    """wᵢᵀ M wᵢ / n² for every row wᵢ of w, block by block."""
    n = m.shape[0]
    out = np.empty(w.shape[0])
    step = max(1, _BLOCK // n)
    for s in range(0, w.shape[0], step):
        block = w[s : s + step]
        out[s : s + step] = np.einsum("ij,ij->i", block @ m, block)
    return out / n**2


def cmmd(
    x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE
) -> float:
    """CMMD of two equal sets of embeddings (n × width): MMD² × scale, unitless.

    Jayasumana et al. 2024, "Rethinking FID: Towards a Better Evaluation Metric for Image
    Generation". The estimator is the reference code's (google-research/google-research,
    cmmd/distance.py, ``mmd``): the biased (minimum-variance) MMD² of Gretton et al. 2012
    eq. 5, mean(k_xx) + mean(k_yy) − 2·mean(k_xy) over the full kernel matrices, diagonals
    included, with k(a, b) = exp(−‖a − b‖² / (2σ²)), σ = 10 and a scale of 1000. The
    reference runs in JAX's float32; this runs in float64. Memory: (2n)² float64 values.
    """
    a, b = _embeddings(x, y)
    return scale * float(_pair_kernel(a, b, sigma).sum()) / a.shape[0] ** 2


def cmmd_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    level: float = LEVEL,
    permutations: int = 1000,
    draws: int = 1000,
    seed: int = BOOTSTRAP_SEED,
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
) -> CmmdResult:
    """CMMD of paired embeddings (row i of x and y: one prompt and seed), unitless.

    p-value: paired permutation test; each permutation swaps the two sides of every pair
    independently with probability ½, and p = (1 + #{permuted ≥ observed}) / (1 +
    permutations). Interval, for the population CMMD: paired bootstrap (pair indices
    resampled with replacement, the same for x and y), reverse-percentile (2·estimate −
    the bootstrap quantiles), clipped at 0 (MMD² is not negative) and widened if need be
    to hold the estimate. Memory: (2n)² float64 values.
    """
    if permutations < 1 or draws < 1:
        raise ValueError(f"permutations and draws must be >= 1, got {permutations}, {draws}")
    a, b = _embeddings(x, y)
    n = a.shape[0]
    m = _pair_kernel(a, b, sigma)
    observed = float(m.sum()) / n**2
    rng = np.random.default_rng(seed)
    signs = 1.0 - 2.0 * rng.integers(0, 2, size=(permutations, n))
    null = _quadratic_forms(m, signs)
    p = (1 + int(np.count_nonzero(null >= observed - _TIE))) / (1 + permutations)
    picks = rng.integers(0, n, size=(draws, n)) + n * np.arange(draws)[:, None]
    counts = np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n)
    boot = _quadratic_forms(m, counts.astype(np.float64))
    q_low, q_high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    # Not plain percentiles: a resample repeats pairs, and every repeat adds a within-pair
    # term that the biased estimator counts only once in the sample, so resamples sit
    # above the estimate by about the estimator's own O(1/n) bias. Reflecting them about
    # the estimate removes that bias; plain percentiles missed the population CMMD in
    # every simulated sample with equal distributions, and in a third with a small shift.
    low = max(0.0, 2 * observed - float(q_high))
    high = max(0.0, 2 * observed - float(q_low))
    return CmmdResult(
        estimate=scale * observed,
        low=scale * min(low, observed),
        high=scale * max(high, observed),
        p_value=p,
        permutations=permutations,
        level=level,
    )


def _sample(values: Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} needs at least one value, got {v.size}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} holds NaN or infinite values: drop them first")
    return v


def _boot_medians(v: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(draws)
    step = max(1, _BLOCK // v.size)
    for s in range(0, draws, step):
        rows = min(step, draws - s)
        out[s : s + rows] = np.median(v[rng.integers(0, v.size, size=(rows, v.size))], axis=1)
    return out


def ratio_of_medians(
    candidate: Sequence[float],
    baseline: Sequence[float],
    level: float = LEVEL,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """median(candidate) / median(baseline) of two independent latency samples (ms / ms).

    Percentile bootstrap, each side resampled on its own, widened if need be to hold the
    estimate. A resample whose baseline median is 0 counts as an infinite ratio.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    c = _sample(candidate, "candidate latencies")
    b = _sample(baseline, "baseline latencies")
    base = float(np.median(b))
    if base <= 0:
        raise ValueError(f"the baseline median latency must be positive, got {base} ms")
    estimate = float(np.median(c)) / base
    rng = np.random.default_rng(seed)
    num, den = _boot_medians(c, draws, rng), _boot_medians(b, draws, rng)
    ratios = np.divide(num, den, out=np.full(draws, np.inf), where=den > 0)
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return Interval(estimate, min(float(low), estimate), max(float(high), estimate), level)


def paired_ratio(
    candidate: Sequence[float], baseline: Sequence[float], level: float = LEVEL
) -> Interval:
    """Median of candidate[i] / baseline[i] over timing rounds, with a distribution-free
    interval (order statistics of the ratios at binomial(n, ½) ranks, as for any median).

    Round i's two calls ran back to back, so a burst of load on the machine slows both and
    cancels out of their ratio: this is far steadier than a ratio of two medians. With
    fewer than 6 rounds the interval is the range of the ratios, under the level.
    """
    c = _sample(candidate, "candidate latencies")
    b = _sample(baseline, "baseline latencies")
    if c.size != b.size:
        raise ValueError(
            f"paired timings need one baseline call per candidate call, got {c.size} and {b.size}"
        )
    if np.any(b <= 0) or np.any(c <= 0):
        raise ValueError("latencies must be positive (ms)")
    r = np.sort(c / b)
    n = r.size
    lo = max(1, int(stats.binom.ppf((1 - level) / 2, n, 0.5)))
    hi = min(n, int(stats.binom.ppf((1 + level) / 2, n, 0.5)) + 1)
    est = float(np.median(r))
    return Interval(est, min(float(r[lo - 1]), est), max(float(r[hi - 1]), est), level)


def quantile_ms(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of latencies in ms, interpolating linearly (ms)."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must lie in [0, 1], got {q}")
    return float(np.quantile(_sample(values, "latencies"), q, method="linear"))
