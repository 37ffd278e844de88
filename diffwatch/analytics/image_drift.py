"""Drift of production images, read through their CLIP image embeddings (pure, deterministic).

- ``image_drift_test``: do the current window's images differ from the reference window's?
  CMMD (Jayasumana et al. 2024: MMD² of an RBF kernel with σ = 10, × 1000; the estimator of
  ``gate_stats.cmmd``, here for two unpaired windows of any sizes) with a permutation test,
  and the chance-corrected k-NN AUC of ``prompt_drift`` as the effect size, so that alert
  rules read image and prompt drift alike.
- ``paired_image_drift_test``: the same prompts and seeds under an old and a new model
  version, with ``gate_stats.cmmd_test``'s paired swap test.
- ``clusters_moved``: which kinds of image grew or shrank, with generation ids to show.
- ``attribute``: did the model change, the traffic, or both?

The heavy work (the pooled kernel matrix, and one quadratic form per permutation) goes through
a ``KernelBackend``: ``NumpyBackend`` here, ``diffwatch.drift.image_backend.TorchBackend`` on
a CPU or a GPU with torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from diffwatch.analytics.drift_moved import default_k, kmeans
from diffwatch.analytics.gate_stats import CMMD_SCALE, CMMD_SIGMA, cmmd_test, squared_distances
from diffwatch.analytics.prompt_drift import (
    EFFECT_SIZE_NAME,
    TIE_TOLERANCE,
    KnnAuc,
    knn_auc,
    permutation_p_value,
    permutation_weights,
    subsample,
)
from diffwatch.model.near_duplicates import generation_ids, image_matrix

METHOD = "cmmd-permutation"
PAIRED_METHOD = "cmmd-paired-permutation"
MIN_ROWS = 2  # per side: with fewer, no relabelling differs from the observed split
# Blocks of at most this many float64 values (32 MiB) wherever a kernel is built row by row.
_BLOCK = 4_000_000
_TIE_SHARE = 1e-4  # of the permutation statistics' range: closer to the observed is a tie

NO_CHANGE = "no change"
MODEL_CHANGED = "model changed"
TRAFFIC_CHANGED = "traffic changed"
BOTH_CHANGED = "model and traffic changed"
ATTRIBUTIONS = (NO_CHANGE, MODEL_CHANGED, TRAFFIC_CHANGED, BOTH_CHANGED)


@dataclass(frozen=True, slots=True)
class ImageDriftResult:
    """Outcome of an image-drift test between two sets of image embeddings."""

    scope: str  # what was compared, e.g. "all versions", "model_version=v3"
    method: str  # METHOD (unpaired windows) or PAIRED_METHOD (same prompts and seeds)
    n_reference: int  # images used after subsampling (pairs, for the paired test)
    n_current: int
    cmmd: float  # MMD² × 1000 of the two sets, RBF kernel of bandwidth sigma; unitless, >= 0
    p_value: float  # permutation p-value, (1 + #{null ≥ observed}) / (1 + permutations)
    alpha: float  # significance level used
    drifted: bool  # p_value <= alpha
    effect_size: float  # chance-corrected k-NN AUC: 0.5 = indistinguishable, 1 = separable
    effect_size_name: str  # "knn_auc", as for prompt drift
    permutations: int
    seed: int
    sigma: float  # RBF bandwidth in embedding units (CMMD's 10)
    knn: int  # neighbours behind the effect size
    knn_auc_raw: float  # the k-NN AUC before the chance correction
    knn_auc_null: float  # its mean over permuted splits (what chance alone gives)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable dict (str, int, float, bool)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ClusterMove:
    """One cluster of images: its share of each window (fractions 0..1) and examples to show."""

    cluster: int
    share_reference: float  # fraction of the (subsampled) reference images in the cluster
    share_current: float
    delta: float  # share_current − share_reference
    size_reference: int  # images of the (subsampled) reference window in the cluster
    size_current: int
    example_ids: tuple[int, ...]  # generation ids nearest the centroid, from examples_from
    examples_from: str  # "current" when the cluster grew (delta > 0), else "reference"

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable dict (the tuple becomes a list)."""
        d = asdict(self)
        d["example_ids"] = list(self.example_ids)
        return d


class KernelBackend(Protocol):
    """Where the pooled kernel is built and its quadratic forms are taken (numpy in and out)."""

    def rbf_kernel(self, pooled: np.ndarray, sigma: float) -> np.ndarray:
        """exp(−‖pᵢ − pⱼ‖² / (2σ²)) − 1 for all rows of pooled (N × width, float64), as an
        N × N float32 matrix computed in float64; σ in embedding units, values unitless."""
        ...

    def quadratic_forms(self, kernel: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """wⱼᵀ K wⱼ for every column wⱼ of weights (N × C, 0/1): C float64 values, unitless."""
        ...


@dataclass(frozen=True, slots=True)
class NumpyBackend:
    """The kernel work in numpy on this machine's CPU cores (as many as BLAS uses)."""

    def rbf_kernel(self, pooled: np.ndarray, sigma: float) -> np.ndarray:
        """exp(−‖pᵢ − pⱼ‖² / (2σ²)) − 1, N × N float32, computed in float64 blocks (σ: embedding
        units). Memory: N² float32 values plus a 32 MiB block."""
        total = pooled.shape[0]
        # float32 for the N × N matrix: 400 MB instead of 800 MB at 5,000 + 5,000 images, and
        # single-precision BLAS for the permutations. It stores k − 1 (expm1 of float64
        # distances) rather than k: with σ = 10 every kernel value of unit vectors lies in
        # [0.98, 1], where float32's step of 6e-8 would blur k − 1 of near-duplicate images
        # (about 1e-6) and cost typical ones (about 0.01) two of their seven digits.
        out = np.empty((total, total), dtype=np.float32)
        step = max(1, _BLOCK // total)
        for s in range(0, total, step):
            # The upper triangle of blocks only, mirrored: half the work, exactly symmetric.
            d2 = squared_distances(pooled[s : s + step], pooled[s:])
            d2 *= -1.0 / (2.0 * sigma**2)
            block = np.expm1(d2).astype(np.float32)
            out[s : s + step, s:] = block
            out[s:, s : s + step] = block.T
        return out

    def quadratic_forms(self, kernel: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """wⱼᵀ K wⱼ for every column of weights (N × C), one BLAS product in K's precision and
        the final sums in float64 (unitless)."""
        w = np.asarray(weights, dtype=kernel.dtype)  # 0/1: exact in float32
        kw = kernel @ w
        return np.einsum("ij,ij->j", w.astype(np.float64), kw.astype(np.float64))


def cmmd_unpaired(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
) -> float:
    """CMMD of two unpaired sets of image embeddings (n × width, m × width): MMD² × scale.

    The estimator of ``gate_stats.cmmd`` (google-research's cmmd/distance.py): mean kernel
    value over reference pairs + over current pairs − 2 × over cross pairs, diagonals
    included (the biased V-statistic), k(a, b) = exp(−‖a − b‖² / (2σ²)). For n = m it equals
    ``gate_stats.cmmd`` whatever the pairing. Unitless; float64 in row blocks (32 MiB).
    """
    x = image_matrix("reference", reference, least=1)
    y = image_matrix("current", current, least=1)
    _check_widths(x, y)
    _check_sigma(sigma)
    return scale * _v_statistic(x, y, sigma)


def image_drift_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    max_samples: int | None = 5000,
    sigma: float = CMMD_SIGMA,
    backend: KernelBackend | None = None,
    scope: str = "all",
) -> ImageDriftResult:
    """Permutation test of reference vs current image embeddings (rows = images), by CMMD.

    Statistic: CMMD as ``cmmd_unpaired`` (σ = 10, × 1000). p-value: the pooled rows are
    relabelled uniformly at random ``permutations`` times, p = (1 + #{permuted ≥ observed})
    / (1 + permutations), never 0. Effect size: ``prompt_drift``'s chance-corrected k-NN
    AUC (10 nearest neighbours by Euclidean distance, chance level from up to 100 of the
    same relabellings): 0.5 = the windows look alike, 1.0 = they do not overlap.

    Each side larger than ``max_samples`` rows is subsampled without replacement (seeded;
    None keeps all). Memory: (n + m)² float32 values (400 MB at 5,000 + 5,000). The result
    is a deterministic function of the inputs and ``seed`` for a given backend.
    """
    x = image_matrix("reference", reference)
    y = image_matrix("current", current)
    _check_widths(x, y)
    _check_options(permutations, alpha, sigma)
    if max_samples is not None and (int(max_samples) != max_samples or max_samples < MIN_ROWS):
        raise ValueError(
            f"max_samples must be None or an integer of at least {MIN_ROWS}, got "
            f"{max_samples!r}; use e.g. 5000"
        )
    rng = np.random.default_rng(seed)
    x = subsample(x, max_samples, rng)
    y = subsample(y, max_samples, rng)
    weights = permutation_weights(x.shape[0], y.shape[0], int(permutations), rng)
    stats, effect = _split_statistics(
        np.concatenate([x, y]), weights, sigma, backend or NumpyBackend()
    )
    # The statistics of the float32 kernel are off by about 1e-6 of their range, so a tie
    # with the observed split (identical rows on both sides) is judged at 1e-4 of it; a
    # permuted statistic that close without a tie is rare, and counting it is conservative.
    tolerance = max(TIE_TOLERANCE, _TIE_SHARE * float(np.ptp(stats)))
    # The reported CMMD is the float64 one (the same number up to that round-off).
    return _result(
        scope, METHOD, x, y, _v_statistic(x, y, sigma), permutation_p_value(stats, tolerance),
        effect, alpha=alpha, permutations=permutations, seed=seed, sigma=sigma,
    )  # fmt: skip


def paired_image_drift_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    sigma: float = CMMD_SIGMA,
    scope: str = "same prompts",
) -> ImageDriftResult:
    """Paired test of image embeddings, row i of both = one prompt and seed under the old
    (reference) and the new (current) model version.

    Statistic and p-value: ``gate_stats.cmmd_test`` (CMMD × 1000; each permutation swaps the
    two sides of every pair with probability ½). Effect size: the k-NN AUC of ``image_drift_
    test`` on the 2n pooled rows, its chance level taken over the same kind of within-pair
    swaps (so a pair's two images, often each other's nearest neighbours, cancel out):
    0.5 = the versions render alike, 1.0 = every image is told apart. Memory: a few (2n)²
    float64 matrices (gate-sized sets: hundreds to a few thousand pairs).
    """
    x = image_matrix("reference", reference)
    y = image_matrix("current", current)
    _check_widths(x, y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"a paired comparison needs one current image per reference image (row i of both: "
            f"the same prompt and seed), got {x.shape[0]} reference and {y.shape[0]} current "
            "rows; pair the images by prompt and seed, or use image_drift_test for windows"
        )
    _check_options(permutations, alpha, sigma)
    # draws=1: the bootstrap interval is not reported here; its draws come after the swaps,
    # so they do not change the p-value.
    permutations = int(permutations)
    gate = cmmd_test(x, y, permutations=permutations, draws=1, seed=seed, sigma=sigma)
    n = x.shape[0]
    swapped = np.random.default_rng(seed).integers(0, 2, size=(n, permutations))
    weights = np.empty((2 * n, permutations + 1))
    weights[:n, 0], weights[n:, 0] = 1.0, 0.0
    weights[:n, 1:], weights[n:, 1:] = 1 - swapped, swapped
    z = np.concatenate([x, y])
    effect = knn_auc(-squared_distances(z, z), weights)
    return _result(
        scope, PAIRED_METHOD, x, y, gate.estimate / CMMD_SCALE, gate.p_value, effect,
        alpha=alpha, permutations=permutations, seed=seed, sigma=sigma,
    )  # fmt: skip


def clusters_moved(
    reference: np.ndarray,
    current: np.ndarray,
    reference_ids: Sequence[int],
    current_ids: Sequence[int],
    *,
    k: int | None = None,
    seed: int = 0,
    examples: int = 4,
    max_samples: int | None = 5000,
) -> list[ClusterMove]:
    """Clusters of the pooled image embeddings and how each one's share moved, |delta| first.

    k-means (``drift_moved.kmeans``: best of 5 seeded k-means++ starts) on the pooled rows;
    ``k`` defaults to sqrt(N/2) clipped to [2, 12] and never exceeds N. Each side larger than
    ``max_samples`` is subsampled first (seeded, the same rows ``image_drift_test`` keeps for
    the same seed); shares (0..1) and sizes count the kept rows. Examples: up to ``examples``
    generation ids nearest the centroid, from the window where the cluster grew (current when
    delta > 0, else reference). Clusters that end up empty are dropped; ties keep cluster order.
    """
    x = image_matrix("reference", reference, least=1)
    y = image_matrix("current", current, least=1)
    _check_widths(x, y)
    x_ids = generation_ids("reference_ids", reference_ids, x.shape[0])
    y_ids = generation_ids("current_ids", current_ids, y.shape[0])
    if k is not None and (int(k) != k or k < 1):
        raise ValueError(f"k must be a positive number of clusters, got {k!r}; or leave it None")
    if int(examples) != examples or examples < 0:
        raise ValueError(f"examples must be a count >= 0, got {examples!r}; use e.g. 4")
    if max_samples is not None and (int(max_samples) != max_samples or max_samples < 1):
        raise ValueError(f"max_samples must be None or >= 1, got {max_samples!r}; use e.g. 5000")
    rng = np.random.default_rng(seed)
    # subsample() draws the rows to keep; on an index column it hands back which ones.
    keep_x = subsample(np.arange(x.shape[0])[:, None], max_samples, rng)[:, 0]
    keep_y = subsample(np.arange(y.shape[0])[:, None], max_samples, rng)[:, 0]
    pooled = np.concatenate([x[keep_x], y[keep_y]])
    ids = np.concatenate([x_ids[keep_x], y_ids[keep_y]])
    n_ref, n_cur = keep_x.size, keep_y.size
    clusters = min(default_k(n_ref + n_cur) if k is None else int(k), n_ref + n_cur)
    labels, centroids = kmeans(pooled, clusters, seed)
    in_current = np.r_[np.zeros(n_ref, dtype=bool), np.ones(n_cur, dtype=bool)]
    out: list[ClusterMove] = []
    for new_id, c in enumerate(np.unique(labels)):
        members = labels == c
        size_ref = int(np.count_nonzero(members & ~in_current))
        size_cur = int(np.count_nonzero(members & in_current))
        delta = size_cur / n_cur - size_ref / n_ref
        side = members & (in_current if delta > 0 else ~in_current)
        idx = np.flatnonzero(side if side.any() else members)
        dist = np.linalg.norm(pooled[idx] - centroids[c], axis=1)
        nearest = idx[np.argsort(dist, kind="stable")[: int(examples)]]
        out.append(
            ClusterMove(
                cluster=new_id,
                share_reference=size_ref / n_ref,
                share_current=size_cur / n_cur,
                delta=delta,
                size_reference=size_ref,
                size_current=size_cur,
                example_ids=tuple(int(i) for i in ids[nearest]),
                examples_from="current" if delta > 0 else "reference",
            )
        )
    out.sort(key=lambda move: -abs(move.delta))
    return out


def attribute(
    overall: ImageDriftResult | None,
    per_version: Sequence[ImageDriftResult],
    same_prompts: Sequence[ImageDriftResult],
) -> str:
    """The model changed when a same-prompt comparison drifted, the traffic changed when a
    per-version comparison drifted or the overall one drifted without a same-prompt drift,
    each family of k comparisons counting as drifted when one p-value is <= its alpha / k.

    Inputs. ``overall``: reference window vs current window, every model version pooled (None
    when not run). ``per_version``: one per model version served in both windows, that
    version's reference images vs its current images: the model is held fixed (a version
    label names fixed weights and settings), so only the traffic it served can differ.
    ``same_prompts``: paired comparisons (``paired_image_drift_test``) of the same prompts
    and seeds under an old and a new version: the traffic is held fixed, so only the model
    can differ.

    Reading. A same-prompt drift is the one direct evidence that the model renders
    differently; a per-version drift is direct evidence that the traffic moved. An overall
    drift that neither explains is read as traffic (it has the most images, so it sees
    small shifts in the prompt mix first); a rollout to a version that renders differently
    therefore reads "model changed" only through a same-prompt comparison, and "traffic
    changed" (traffic moved to another version) without one. An overall drift with a
    same-prompt drift and no per-version drift is the model alone. Bonferroni within each
    family keeps ten versions checked at α = 0.05 from claiming a traffic change 40 % of the
    time when nothing moved. Returns one of ``ATTRIBUTIONS``.
    """
    for name, results in (("per_version", per_version), ("same_prompts", same_prompts)):
        if isinstance(results, ImageDriftResult) or not all(
            isinstance(r, ImageDriftResult) for r in results
        ):
            raise ValueError(f"{name} must be a sequence of ImageDriftResult (may be empty)")
    if overall is not None and not isinstance(overall, ImageDriftResult):
        raise ValueError(f"overall must be an ImageDriftResult or None, got {type(overall)}")
    model = _family_drifted(same_prompts)
    traffic = _family_drifted(per_version) or (
        overall is not None and overall.drifted and not model
    )
    if model and traffic:
        return BOTH_CHANGED
    return MODEL_CHANGED if model else TRAFFIC_CHANGED if traffic else NO_CHANGE


def _family_drifted(results: Sequence[ImageDriftResult]) -> bool:
    k = len(results)
    return any(r.p_value <= r.alpha / k for r in results)


def _split_statistics(
    pooled: np.ndarray, weights: np.ndarray, sigma: float, backend: KernelBackend
) -> tuple[np.ndarray, KnnAuc]:
    """MMD² (V-statistic, unitless) of every split column of weights, and the effect size."""
    total = pooled.shape[0]
    n = int(np.count_nonzero(weights[:, 0]))
    m = total - n
    kernel = backend.rbf_kernel(pooled, sigma)
    if kernel.shape != (total, total):
        raise ValueError(
            f"{type(backend).__name__}.rbf_kernel returned shape {kernel.shape} for {total} "
            f"rows; a KernelBackend must return the {total} × {total} kernel matrix"
        )
    # k − 1 falls as the distance grows, so its nearest neighbours are any RBF kernel's.
    effect = knn_auc(kernel, weights)
    # With v = a/n − (1 − a)/m for a split indicator a, MMD² = vᵀKv, and since Σv = 0 it is
    # blind to a constant and to row and column offsets of K. Removing them (double
    # centring) leaves entries a thousand times smaller than k − 1, which is what keeps the
    # float32 product K·a accurate; the row sums that centring leaves in float32 are put
    # back in float64 below, so the statistic is exact for the stored matrix.
    means = kernel.mean(axis=1, dtype=np.float64)
    offset = (means - means.mean() / 2).astype(kernel.dtype)
    kernel -= offset[:, None]
    kernel -= offset[None, :]
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    quad = backend.quadratic_forms(kernel, weights)  # aᵀKa for every split a
    c = 1.0 / n + 1.0 / m  # v = c·a − 1/m
    return c * c * quad - 2.0 * c / m * (row_sums @ weights) + row_sums.sum() / m**2, effect


def _v_statistic(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Biased MMD² of x and y in float64, kernel built in row blocks (unitless)."""
    n, m = x.shape[0], y.shape[0]
    gamma = 2.0 * sigma**2
    step = max(1, _BLOCK // (n + m))

    def within(a: np.ndarray) -> float:
        # Sum of k over all ordered pairs of rows of a, from the upper triangle of blocks.
        total = 0.0
        for s in range(0, a.shape[0], step):
            k = np.exp(-squared_distances(a[s : s + step], a[s:]) / gamma)
            total += float(k[:, :step].sum()) + 2.0 * float(k[:, step:].sum())
        return total

    cross = 0.0
    for s in range(0, n, step):
        cross += float(np.exp(-squared_distances(x[s : s + step], y) / gamma).sum())
    return within(x) / n**2 + within(y) / m**2 - 2.0 * cross / (n * m)


def _result(
    scope: str,
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    mmd2: float,
    p_value: float,
    effect: KnnAuc,
    *,
    alpha: float,
    permutations: int,
    seed: int,
    sigma: float,
) -> ImageDriftResult:
    return ImageDriftResult(
        scope=str(scope),
        method=method,
        n_reference=int(x.shape[0]),
        n_current=int(y.shape[0]),
        cmmd=CMMD_SCALE * float(mmd2),
        p_value=float(p_value),
        alpha=float(alpha),
        drifted=bool(p_value <= alpha),
        effect_size=effect.effect_size,
        effect_size_name=EFFECT_SIZE_NAME,
        permutations=int(permutations),
        seed=int(seed),
        sigma=float(sigma),
        knn=effect.knn,
        knn_auc_raw=effect.raw,
        knn_auc_null=effect.null,
    )


def _check_widths(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"reference has embeddings of width {x.shape[1]} but current has width "
            f"{y.shape[1]}; embed both sets with the same CLIP image encoder"
        )


def _check_sigma(sigma: float) -> None:
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(
            f"sigma must be a positive RBF bandwidth in embedding units, got {sigma!r}; use "
            f"{CMMD_SIGMA:g} (CMMD's)"
        )


def _check_options(permutations: int, alpha: float, sigma: float) -> None:
    if isinstance(permutations, bool) or int(permutations) != permutations or permutations < 1:
        raise ValueError(
            f"permutations must be a positive integer, got {permutations!r}; use e.g. 200"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}; use 0.05")
    _check_sigma(sigma)
