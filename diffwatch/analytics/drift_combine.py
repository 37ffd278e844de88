"""The prompt-drift verdict: the embedding test and the lexical test, combined so that the
run's false-positive rate stays at α (pure, deterministic).

Two tests at α each would flag about 2α of unshifted runs. Both tests here are permutation
tests, so they are run on the **same** permutations and combined by the single-step min-p
procedure of Westfall & Young (1993):

- each test's raw p-value is its own permutation p-value (as if it ran alone);
- on every split (the observed one and each permutation) take the smallest of the tests'
  p-values within their permutation distributions;
- a test's **adjusted** p-value is the share of splits whose smallest p-value is at or below
  that test's raw p-value; the **combined** p-value is the smallest adjusted p-value;
- the run has drifted when the combined p-value is at most α.

Under "no drift" the observed split is exchangeable with the permutations, so the combined
p-value is exact: P(combined p ≤ α) ≤ α at any window size and any dependence between the
tests. It is never larger than Bonferroni's 2 · min(p) and gets closer to min(p) the more the
two tests agree. (``minp_adjust`` is the rule; ``tests/unit/test_drift_combine.py`` checks it.)

No level-α combination can beat its best test when the other one is noise, and min-p pays
for the second hypothesis. An embedder that knows nothing of real prompt language (the
demo's tiny random-weight CLIP, or the demo CLIP trained on the demo's synthetic scenes) is
such a test on real prompts, so for those the run uses the **fixed-sequence** procedure
(Maurer, Hothorn & Lehmacher 1995) with the lexical test first: the lexical test at the full
α; the embedding test, also at α, only once the lexical test has rejected. Its adjusted
p-values are the running maximum along the sequence (lexical: raw; embedding: the larger
of the two raw p-values), the run's p-value is the lexical test's, and the family-wise rate
stays at α (``fixed_sequence_adjust``). The run's power is then exactly the lexical test's,
at the price that the embedding test never flags a run alone. ``ORDERS`` names both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffwatch.analytics.lexical_drift import LexicalResult, check_prompts, lexical_on_splits
from diffwatch.analytics.prompt_drift import (
    KNN,
    TIE_TOLERANCE,
    TwoSampleResult,
    as_matrix,
    check_options,
    check_widths,
    mmd_on_splits,
    permutation_weights,
    subsample,
)

METHOD = "westfall-young-minp"
FIXED_SEQUENCE = "fixed-sequence-lexical-first"
TESTS = ("embedding", "lexical")
# How the two tests combine: the option value and the method name a run stores.
ORDERS = {"min-p": METHOD, "lexical-first": FIXED_SEQUENCE}


@dataclass(frozen=True, slots=True)
class MinP:
    """Raw and Westfall–Young adjusted p-values of k tests that share their permutations."""

    raw: tuple[float, ...]  # each test's own permutation p-value
    adjusted: tuple[float, ...]  # min-p adjusted, one per test (≥ raw, ≤ k · raw)
    combined: float  # min(adjusted): the p-value of "some test sees a difference"


def minp_adjust(stats: np.ndarray) -> MinP:
    """Westfall–Young single-step min-p over ``stats`` (k tests × (1 + permutations)).

    Column 0 holds each test's observed statistic and the other columns the statistics of
    the same relabellings; larger means more different. With c_j(s) = #{splits s' whose
    statistic of test j is ≥ that of split s} (ties within ``TIE_TOLERANCE`` count, s itself
    included) and S = 1 + permutations: raw_j = c_j(0) / S; adjusted_j = #{s : min_i c_i(s)
    ≤ c_j(0)} / S; combined = min_j adjusted_j.
    """
    counts = _counts(stats)
    splits = counts.shape[1]
    smallest = counts.min(axis=0)
    raw = tuple(float(c) / splits for c in counts[:, 0])
    adjusted = tuple(float(np.count_nonzero(smallest <= c)) / splits for c in counts[:, 0])
    return MinP(raw=raw, adjusted=adjusted, combined=min(adjusted))


def fixed_sequence_adjust(stats: np.ndarray) -> MinP:
    """The fixed-sequence procedure over ``stats`` (k tests × (1 + permutations), laid out
    as for ``minp_adjust``), testing row 0 first, then row 1, and so on, each at the full α
    while every earlier one rejected: adjusted_j = max(raw_0, ..., raw_j); combined =
    adjusted_0 (a later test rejects only after the first has)."""
    counts = _counts(stats)
    raw = tuple(float(c) / counts.shape[1] for c in counts[:, 0])
    adjusted = tuple(float(v) for v in np.maximum.accumulate(np.asarray(raw)))
    return MinP(raw=raw, adjusted=adjusted, combined=adjusted[0])


def _counts(stats: np.ndarray) -> np.ndarray:
    """c_j(s): splits whose statistic of test j is at least split s's (ties count)."""
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[1] < 2:
        raise ValueError(
            f"stats must be (tests, 1 + permutations) with at least one permutation, got "
            f"shape {stats.shape}; stack each test's statistics as a row"
        )
    splits = stats.shape[1]
    counts = np.empty(stats.shape, dtype=np.int64)
    for j, row in enumerate(stats):
        ordered = np.sort(row)
        counts[j] = splits - np.searchsorted(ordered, row - TIE_TOLERANCE, side="left")
    return counts


def combine(emb_stats: np.ndarray, lex_stats: np.ndarray, order: str) -> MinP:
    """The two tests' raw, adjusted and combined p-values, in ``TESTS`` order, by ``order``
    (a key of ``ORDERS``)."""
    check_order(order)
    if order == "min-p":
        return minp_adjust(np.vstack([emb_stats, lex_stats]))
    seq = fixed_sequence_adjust(np.vstack([lex_stats, emb_stats]))  # lexical first
    return MinP(raw=seq.raw[::-1], adjusted=seq.adjusted[::-1], combined=seq.combined)


def check_order(order: str) -> None:
    """Refuse an unknown combination order with the known ones."""
    if order not in ORDERS:
        raise ValueError(f"unknown combination {order!r}; choose one of {', '.join(ORDERS)}")


@dataclass(frozen=True, slots=True)
class PromptTestResult:
    """Both prompt tests on shared permutations and the combined verdict."""

    embedding: TwoSampleResult
    lexical: LexicalResult
    p_value: float  # combined p-value (by ``method``)
    adjusted_embedding: float  # the embedding test's adjusted p-value
    adjusted_lexical: float  # the lexical test's adjusted p-value
    alpha: float
    drifted: bool  # p_value <= alpha
    permutations: int
    seed: int = 0
    method: str = METHOD

    def combined_dict(self) -> dict:
        """The combination as plain JSON (the tests' own dicts are apart)."""
        adjusted = {"embedding": self.adjusted_embedding, "lexical": self.adjusted_lexical}
        return {
            "method": self.method,
            "tests": list(TESTS),
            "p_value": _plain(self.p_value),
            "alpha": _plain(self.alpha),
            "drifted": self.drifted,
            "p_values": {"embedding": self.embedding.p_value, "lexical": self.lexical.p_value},
            "adjusted_p_values": {k: _plain(v) for k, v in adjusted.items()},
            "decided_by": [k for k, v in adjusted.items() if v <= self.alpha],
            "permutations": self.permutations,
            "seed": self.seed,
        }


def prompt_drift_test(
    reference_embeddings: np.ndarray,
    current_embeddings: np.ndarray,
    reference_prompts: Sequence[str],
    current_prompts: Sequence[str],
    *,
    permutations: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
    max_samples: int | None = 2000,
    knn: int = KNN,
    order: str = "min-p",
) -> PromptTestResult:
    """The embedding MMD test and the lexical TF-IDF test on the same prompts and the same
    permutations, combined by ``order``: Westfall–Young min-p, or the fixed sequence with
    the lexical test first (see the module docstring).

    Row i of an embedding matrix is the embedding of prompt i of the same window. Each side
    larger than ``max_samples`` is subsampled (seeded; prompts and embeddings alike). The
    result is a deterministic function of the inputs and ``seed``.
    """
    x = as_matrix("reference", reference_embeddings)
    y = as_matrix("current", current_embeddings)
    check_widths(x, y)
    ref = check_prompts("reference prompts", reference_prompts)
    cur = check_prompts("current prompts", current_prompts)
    for name, emb, prompts in (("reference", x, ref), ("current", y, cur)):
        if emb.shape[0] != len(prompts):
            raise ValueError(
                f"{name} has {emb.shape[0]} embeddings but {len(prompts)} prompts; pass one "
                "embedding row per prompt, in the same order"
            )
    check_options(permutations, alpha, max_samples, knn)
    check_order(order)
    rng = np.random.default_rng(seed)
    keep_x = subsample(np.arange(x.shape[0]), max_samples, rng)
    keep_y = subsample(np.arange(y.shape[0]), max_samples, rng)
    weights = permutation_weights(keep_x.size, keep_y.size, permutations, rng)
    embedding, emb_stats = mmd_on_splits(
        x[keep_x], y[keep_y], weights, alpha=alpha, seed=seed, knn=knn
    )
    lexical, lex_stats = lexical_on_splits(
        [ref[i] for i in keep_x], [cur[i] for i in keep_y], weights, alpha=alpha, seed=seed
    )
    minp = combine(emb_stats, lex_stats, order)
    return PromptTestResult(
        embedding=embedding,
        lexical=lexical,
        p_value=minp.combined,
        adjusted_embedding=minp.adjusted[0],
        adjusted_lexical=minp.adjusted[1],
        alpha=float(alpha),
        drifted=bool(minp.combined <= alpha),
        permutations=int(permutations),
        seed=int(seed),
        method=ORDERS[order],
    )


def _plain(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
