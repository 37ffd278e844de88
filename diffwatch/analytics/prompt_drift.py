"""Two-sample test for prompt-distribution drift on text embeddings (pure, deterministic).

The test is a kernel maximum mean discrepancy (MMD, Gretton et al. 2012) with an RBF kernel
whose bandwidth is the median pairwise distance of the pooled sample, the unbiased MMD²
statistic, and a permutation null. The pooled kernel matrix is built once; every
permutation's statistic then comes out of one matrix product, so 2000 + 2000 prompts with
500 permutations take about a second on two cores.

The p-value says whether the windows differ; the effect size says by how much, in a unit a
person can read: the AUC of a leave-one-out nearest-neighbour classifier that tries to tell
the current window from the reference window, corrected for chance with the permuted splits
(0.5: indistinguishable, 1.0: separable).

This is the embedding half of the prompt test. ``lexical_drift`` reads the words instead, and
``drift_combine`` runs both on the same permutations (``permutation_weights``,
``mmd_on_splits``) and combines them so that a run's false-positive rate stays at α.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

METHOD = "mmd-rbf-permutation"
EFFECT_SIZE_NAME = "knn_auc"
MIN_ROWS = 5  # below this the permutation null has too few distinct splits to mean much
KNN = 10  # neighbours per point for the effect size
_NULL_AUCS = 100  # permuted splits that estimate the chance level of the k-NN AUC
_BLOCK = 512  # rows per block in the neighbour search, to bound memory at N·512 indices
TIE_TOLERANCE = 1e-12  # statistics this close to the observed one count as ties (round-off)


@dataclass(frozen=True, slots=True)
class TwoSampleResult:
    """Outcome of a two-sample test between a reference and a current embedding window."""

    method: str  # "mmd-rbf-permutation"
    statistic: float  # unbiased MMD² (kernel units, dimensionless; can be slightly < 0)
    p_value: float  # permutation p-value, (1 + #{null ≥ observed}) / (1 + permutations)
    alpha: float  # significance level used
    drifted: bool  # p_value <= alpha
    effect_size: float  # chance-corrected k-NN AUC, 0.5 = indistinguishable, 1 = separable
    effect_size_name: str  # "knn_auc"
    n_reference: int  # rows used after subsampling
    n_current: int
    permutations: int
    bandwidth: float  # RBF bandwidth σ in embedding-space distance units
    knn: int = KNN  # neighbours behind the effect size
    knn_auc_raw: float = 0.5  # the k-NN AUC before the chance correction
    knn_auc_null: float = 0.5  # its mean over permuted splits (what chance alone gives)
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (floats, ints, bools, str)."""
        return {k: _plain(v) for k, v in asdict(self).items()}


def mmd_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
    max_samples: int | None = 2000,
    knn: int = KNN,
) -> TwoSampleResult:
    """Kernel MMD permutation test of reference vs current embeddings (rows = prompts).

    Kernel: k(x, y) = exp(−‖x − y‖² / (2σ²)), σ = the median pairwise Euclidean distance
    of the pooled (subsampled) rows. Statistic: the unbiased MMD² estimate. p-value:
    (1 + #{permuted MMD² ≥ observed}) / (1 + permutations), so never 0.

    Effect size ("knn_auc", chance-corrected): each row is scored by the share of its
    ``knn`` nearest neighbours (by kernel similarity, itself excluded) that belong to the
    current window; the AUC of that score against the true window label (ties count half)
    is the probability that a random current prompt looks more "current" than a random
    reference prompt. Leaving a row out of its own neighbours biases that AUC below 0.5 in
    small windows (about 0.43 for 20 + 20 rows), so the same AUC is computed on up to 100
    of the permuted splits and the effect size is 0.5 + (observed AUC − their mean),
    clipped to [0, 1]. Read it as: 0.5 means the windows are indistinguishable; 0.6 is a
    visible shift in the mix; 1.0 means the windows do not overlap at all. The raw AUC and
    its chance level are kept in ``knn_auc_raw`` and ``knn_auc_null``.

    Each side larger than ``max_samples`` rows is subsampled without replacement (seeded);
    ``max_samples=None`` keeps every row (memory grows as (n + m)², 8 bytes each).
    The result is a deterministic function of the inputs and ``seed``.
    """
    x = as_matrix("reference", reference)
    y = as_matrix("current", current)
    check_widths(x, y)
    check_options(permutations, alpha, max_samples, knn)
    rng = np.random.default_rng(seed)
    x = subsample(x, max_samples, rng)
    y = subsample(y, max_samples, rng)
    weights = permutation_weights(x.shape[0], y.shape[0], permutations, rng)
    result, _ = mmd_on_splits(x, y, weights, alpha=alpha, seed=seed, knn=knn)
    return result


def permutation_weights(n: int, m: int, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Split indicators, (n + m, permutations + 1): 1 = reference. Column 0 is the observed
    split (the first n rows), the others are uniform random relabellings of it."""
    weights = np.empty((n + m, permutations + 1))
    weights[:, 0] = np.r_[np.ones(n), np.zeros(m)]
    weights[:, 1:] = rng.permuted(np.tile(weights[:, :1], (1, permutations)), axis=0)
    return weights


def permutation_p_value(stats: np.ndarray, tolerance: float = TIE_TOLERANCE) -> float:
    """(1 + #{permuted statistic ≥ observed}) / (1 + permutations); ``stats[0]`` is observed.

    Statistics within ``tolerance`` (the statistic's unit) below the observed one count as ties.
    """
    # Floating-point round-off must not decide ties with the observed split itself.
    exceed = int(np.count_nonzero(stats[1:] >= stats[0] - tolerance))
    return (1 + exceed) / stats.size


def chance_corrected_auc(aucs: np.ndarray) -> tuple[float, float]:
    """(effect size, chance level) from AUCs of the observed split (``aucs[0]``) and permuted
    ones: 0.5 plus the observed AUC's excess over the permuted mean, clipped to [0, 1]; the
    chance level is 0.5 when there is no permuted AUC."""
    null = float(aucs[1:].mean()) if aucs.size > 1 else 0.5
    return min(1.0, max(0.0, 0.5 + float(aucs[0]) - null)), null


@dataclass(frozen=True, slots=True)
class KnnAuc:
    """The k-NN AUC effect size of one split (see ``mmd_test``) and what lies behind it."""

    effect_size: float  # chance-corrected, 0.5 = indistinguishable, 1 = separable
    raw: float  # the AUC before the correction
    null: float  # its mean over permuted splits (what chance alone gives)
    knn: int  # neighbours per point actually used


def knn_auc(similarity: np.ndarray, weights: np.ndarray, knn: int = KNN) -> KnnAuc:
    """Chance-corrected k-NN AUC (dimensionless, 0.5 = none) of the split ``weights[:, 0]``.

    ``similarity`` is the pooled (N × N) matrix, larger = nearer (a kernel, or any function
    that decreases with distance); ``weights`` holds 0/1 split columns, 1 = reference,
    column 0 observed and up to 100 of the others used for the chance level (see
    ``permutation_weights`` and ``mmd_test``). At most N − 1 neighbours are used.
    """
    k_eff = min(knn, similarity.shape[0] - 1)
    nearest = _neighbours(similarity, k_eff)
    permutations = weights.shape[1] - 1
    aucs = _knn_aucs(nearest, 1.0 - weights[:, : min(permutations, _NULL_AUCS) + 1])
    effect, null = chance_corrected_auc(aucs)
    return KnnAuc(float(effect), float(aucs[0]), float(null), int(k_eff))


def check_widths(x: np.ndarray, y: np.ndarray) -> None:
    """Both windows must come from the same encoder (same embedding width)."""
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"reference has embeddings of width {x.shape[1]} but current has width "
            f"{y.shape[1]}; embed both windows with the same text encoder"
        )


def mmd_on_splits(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, *, alpha: float, seed: int, knn: int = KNN
) -> tuple[TwoSampleResult, np.ndarray]:
    """The MMD test of ``x`` (reference rows) against ``y`` on the given splits (see
    ``permutation_weights``), and the MMD² of every split (column 0: observed), so another
    test can share the permutations (``diffwatch.analytics.drift_combine``)."""
    n, m = x.shape[0], y.shape[0]
    permutations = weights.shape[1] - 1
    kernel, bandwidth = _rbf_kernel(np.concatenate([x, y]))
    effect = knn_auc(kernel, weights, knn)
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimator leaves out k(x_i, x_i)
    stats = unbiased_mmd2(kernel, weights, n, m)
    p_value = permutation_p_value(stats)
    result = TwoSampleResult(
        method=METHOD,
        statistic=float(stats[0]),
        p_value=float(p_value),
        alpha=float(alpha),
        drifted=bool(p_value <= alpha),
        effect_size=effect.effect_size,
        effect_size_name=EFFECT_SIZE_NAME,
        n_reference=n,
        n_current=m,
        permutations=int(permutations),
        bandwidth=float(bandwidth),
        knn=effect.knn,
        knn_auc_raw=effect.raw,
        knn_auc_null=effect.null,
        seed=int(seed),
    )
    return result, stats


def as_matrix(name: str, value: object) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a numeric array of embeddings (rows = prompts), but it could "
            f"not be read as numbers ({exc}); pass the float vectors from the text encoder"
        ) from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (rows = prompts, columns = embedding dimensions), "
            f"got shape {arr.shape}; stack one embedding per row, e.g. np.vstack(vectors)"
        )
    if arr.shape[0] < MIN_ROWS:
        raise ValueError(
            f"{name} has {arr.shape[0]} rows, but the drift test needs at least {MIN_ROWS} "
            f"prompts per window; widen the {name} window or wait for more traffic"
        )
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has embeddings of width 0; pass the encoder's vectors")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = ", ".join(str(int(r)) for r in rows[:5]) + (" …" if rows.size > 5 else "")
        raise ValueError(
            f"{name} has NaN or infinite values in {rows.size} rows (rows {shown}); "
            f"drop those rows or re-embed their prompts"
        )
    return arr


def check_options(permutations: int, alpha: float, max_samples: int | None, knn: int) -> None:
    if int(permutations) != permutations or permutations < 1:
        raise ValueError(
            f"permutations must be a positive integer, got {permutations!r}; use e.g. 500"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}; use 0.05")
    if max_samples is not None and max_samples < MIN_ROWS:
        raise ValueError(
            f"max_samples must be None or at least {MIN_ROWS}, got {max_samples!r}; use e.g. 2000"
        )
    if int(knn) != knn or knn < 1:
        raise ValueError(f"knn must be a positive integer, got {knn!r}; use e.g. {KNN}")


def subsample(arr: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_samples is None or arr.shape[0] <= max_samples:
        return arr
    keep = np.sort(rng.choice(arr.shape[0], size=max_samples, replace=False))
    return arr[keep]


def _rbf_kernel(pooled: np.ndarray) -> tuple[np.ndarray, float]:
    """RBF kernel matrix of the pooled rows and its median-heuristic bandwidth σ."""
    sq = np.einsum("ij,ij->i", pooled, pooled)
    d2 = pooled @ pooled.T
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    np.maximum(d2, 0.0, out=d2)  # round-off can push identical rows slightly below 0
    np.fill_diagonal(d2, 0.0)
    upper = d2[np.triu_indices(d2.shape[0], k=1)]
    positive = upper[upper > 0]
    # All rows identical: any bandwidth gives a constant kernel, so pick 1 and move on.
    median_d2 = float(np.median(upper)) if upper.size else 0.0
    if median_d2 <= 0.0:
        median_d2 = float(np.median(positive)) if positive.size else 1.0
    d2 *= -1.0 / (2.0 * median_d2)
    np.exp(d2, out=d2)
    return d2, math.sqrt(median_d2)


def unbiased_mmd2(kernel: np.ndarray, weights: np.ndarray, n: int, m: int) -> np.ndarray:
    """Unbiased MMD² of every split in ``weights`` (column = 0/1 indicator of the first sample).

    ``kernel`` has a zero diagonal. With a the indicator and r = K·1, the within-first sum is
    aᵀKa, the cross sum aᵀr − aᵀKa and the within-second sum 1ᵀr − aᵀKa − 2·cross, so one
    product K·A gives every permutation at once.
    """
    row_sums = kernel.sum(axis=1)
    within_x = np.einsum("ij,ij->j", weights, kernel @ weights)
    cross = row_sums @ weights - within_x
    within_y = row_sums.sum() - within_x - 2.0 * cross
    return within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2.0 * cross / (n * m)


def _neighbours(kernel: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k most similar other rows (n + m, k)."""
    total = kernel.shape[0]
    out = np.empty((total, k), dtype=np.intp)
    for start in range(0, total, _BLOCK):
        block = kernel[start : start + _BLOCK].copy()
        rows = np.arange(block.shape[0])
        block[rows, start + rows] = -np.inf  # a point is not its own neighbour
        out[start : start + block.shape[0]] = np.argpartition(block, total - k, axis=1)[
            :, total - k :
        ]
    return out


def _knn_aucs(nearest: np.ndarray, current: np.ndarray) -> np.ndarray:
    """k-NN AUC of each labelling column in ``current`` (0/1, rows = points)."""
    from scipy.stats import rankdata

    counts = current[nearest].sum(axis=1)  # current neighbours per point and column
    ranks = rankdata(counts, axis=0)  # midranks: ties count half
    m = current.sum(axis=0)
    n = current.shape[0] - m
    return ((ranks * current).sum(axis=0) - m * (m + 1) / 2) / (n * m)


def _plain(value: object) -> object:
    if isinstance(value, bool | str | int) or value is None:
        return value
    value = float(value)  # type: ignore[arg-type]
    return value if math.isfinite(value) else None
