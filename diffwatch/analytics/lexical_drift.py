"""Lexical two-sample test for prompt drift: do the windows use other words? (pure, deterministic)

The embedding test (``prompt_drift.mmd_test``) sees prompts only through the text encoder,
and a weak encoder (a random-weight or tiny one) can blur a plain change of topic. This test
reads the words themselves, so it does not depend on the embedder at all:

- **Vectors.** Each prompt is the TF-IDF vector of its distinct words (``drift_moved.tokens``:
  lower-cased, without stopwords, numbers and one-letter words). The IDF, ln((1 + N) /
  (1 + df)) + 1, is counted on the pooled sample, which is the same for every relabelling,
  so the permutation null stays exact. Rows are L2-normalised.
- **Statistic.** The unbiased MMD² with the cosine kernel of those vectors: the squared
  distance between the two windows' mean TF-IDF vectors, with each prompt's similarity to
  itself left out. It is the embedding test's machinery on another kernel, so both tests
  can share one set of permutations (``drift_combine``).
- **p-value.** Permutations of the window labels, (1 + #{null ≥ observed}) / (1 +
  permutations): exact under "no drift" at any window size. (Evidently's text drift trains
  a domain classifier instead and, above 1,000 reference rows, calls drift at a fixed
  ROC AUC of 0.55, whose false-positive rate depends on n.)
- **Effect size** (``centroid_auc``). Each prompt is scored by its mean similarity to the
  current window minus its mean similarity to the reference window, itself left out: a
  leave-one-out nearest-centroid classifier of the window. Its ROC AUC, corrected for
  chance with permuted splits like the embedding test's ``knn_auc``, reads the same way:
  0.5 means the windows use the same words, 1.0 that they share none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from diffwatch.analytics.drift_moved import tokens
from diffwatch.analytics.prompt_drift import (
    MIN_ROWS,
    chance_corrected_auc,
    check_options,
    permutation_p_value,
    permutation_weights,
    subsample,
    unbiased_mmd2,
)

METHOD = "tfidf-cosine-mmd-permutation"
EFFECT_SIZE_NAME = "centroid_auc"
_NULL_AUCS = 100  # permuted splits that estimate the chance level of the centroid AUC

if TYPE_CHECKING:
    from scipy import sparse


@dataclass(frozen=True, slots=True)
class LexicalResult:
    """Outcome of the lexical (TF-IDF) two-sample test between two prompt windows."""

    method: str  # "tfidf-cosine-mmd-permutation"
    statistic: float  # unbiased MMD² with the cosine kernel on TF-IDF vectors (0..1 units)
    p_value: float  # permutation p-value, (1 + #{null ≥ observed}) / (1 + permutations)
    alpha: float  # significance level used
    drifted: bool  # p_value <= alpha, this test alone (the run's verdict is the combined one)
    effect_size: float  # chance-corrected centroid AUC, 0.5 = same words, 1 = none shared
    effect_size_name: str  # "centroid_auc"
    n_reference: int  # prompts used after subsampling
    n_current: int
    permutations: int
    terms: int  # distinct words in the pooled sample (the TF-IDF vocabulary)
    empty_prompts: int  # prompts with no word left after tokenising (they weigh nothing)
    centroid_auc_raw: float = 0.5  # the AUC before the chance correction
    centroid_auc_null: float = 0.5  # its mean over permuted splits
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (floats, ints, bools, str)."""
        return {k: _plain(v) for k, v in asdict(self).items()}


def tfidf_vectors(prompts: Sequence[str]) -> tuple[sparse.csr_matrix, list[str]]:
    """L2-normalised TF-IDF rows of ``prompts`` (scipy CSR, one row a prompt) and the terms.

    Term frequency is 0/1 (a word counts once a prompt; prompts are short and repeat
    modifiers for emphasis); idf = ln((1 + N) / (1 + df)) + 1 over these N prompts. A prompt
    without a word is an all-zero row.
    """
    from scipy import sparse

    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, prompt in enumerate(prompts):
        for term in sorted(tokens(prompt)):  # sorted: the same columns on every run
            cols.append(vocabulary.setdefault(term, len(vocabulary)))
            rows.append(i)
    n = len(prompts)
    counts = sparse.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(n, len(vocabulary)), dtype=np.float64
    )
    df = np.asarray(counts.sum(axis=0)).ravel()
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    weighted = counts.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.diags(1.0 / norms) @ weighted, list(vocabulary)


def lexical_test(
    reference: Sequence[str],
    current: Sequence[str],
    *,
    permutations: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
    max_samples: int | None = 2000,
) -> LexicalResult:
    """TF-IDF cosine-kernel MMD permutation test of reference vs current prompts.

    Each side larger than ``max_samples`` prompts is subsampled without replacement
    (seeded). The result is a deterministic function of the inputs and ``seed``.
    """
    ref = check_prompts("reference", reference)
    cur = check_prompts("current", current)
    check_options(permutations, alpha, max_samples, 1)
    rng = np.random.default_rng(seed)
    ref = [ref[i] for i in subsample(np.arange(len(ref)), max_samples, rng)]
    cur = [cur[i] for i in subsample(np.arange(len(cur)), max_samples, rng)]
    weights = permutation_weights(len(ref), len(cur), permutations, rng)
    result, _ = lexical_on_splits(ref, cur, weights, alpha=alpha, seed=seed)
    return result


def lexical_on_splits(
    reference: Sequence[str],
    current: Sequence[str],
    weights: np.ndarray,
    *,
    alpha: float,
    seed: int = 0,
) -> tuple[LexicalResult, np.ndarray]:
    """The lexical test on the given splits (``prompt_drift.permutation_weights``: column 0
    the observed split, 1 = reference), and the statistic of every split (column 0 observed),
    so the embedding test can share the permutations."""
    n, m = len(reference), len(current)
    if weights.shape[0] != n + m:
        raise ValueError(
            f"weights has {weights.shape[0]} rows for {n} + {m} prompts; build it with "
            "permutation_weights(len(reference), len(current), ...)"
        )
    vectors, terms = tfidf_vectors([*reference, *current])
    kernel = (vectors @ vectors.T).toarray()
    np.fill_diagonal(kernel, 0.0)
    empty = int(np.count_nonzero(np.asarray(vectors.getnnz(axis=1)) == 0))
    stats = unbiased_mmd2(kernel, weights, n, m)
    p_value = permutation_p_value(stats)
    aucs = centroid_aucs(kernel, weights[:, : min(weights.shape[1] - 1, _NULL_AUCS) + 1])
    auc, auc_null = chance_corrected_auc(aucs)
    result = LexicalResult(
        method=METHOD,
        statistic=float(stats[0]),
        p_value=float(p_value),
        alpha=float(alpha),
        drifted=bool(p_value <= alpha),
        effect_size=float(auc),
        effect_size_name=EFFECT_SIZE_NAME,
        n_reference=n,
        n_current=m,
        permutations=int(weights.shape[1] - 1),
        terms=len(terms),
        empty_prompts=empty,
        centroid_auc_raw=float(aucs[0]),
        centroid_auc_null=auc_null,
        seed=int(seed),
    )
    return result, stats


def centroid_aucs(kernel: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Leave-one-out nearest-centroid AUC of each split in ``weights`` (1 = reference).

    ``kernel`` has a zero diagonal. A prompt's score is its mean similarity to the other
    current prompts minus its mean similarity to the other reference prompts; the AUC is
    the probability that a current prompt scores above a reference prompt (ties half).
    """
    from scipy.stats import rankdata

    ref = weights
    cur = 1.0 - weights
    n = ref[:, 0].sum()
    m = cur[:, 0].sum()
    to_ref = kernel @ ref  # summed similarity to the reference side (self excluded: diag 0)
    to_cur = kernel.sum(axis=1)[:, None] - to_ref
    score = to_cur / (m - cur) - to_ref / (n - ref)  # each side's size without the row itself
    ranks = rankdata(score, axis=0)
    return ((ranks * cur).sum(axis=0) - m * (m + 1) / 2) / (n * m)


def check_prompts(name: str, value: Sequence[str]) -> list[str]:
    """The prompts as a list of str, or a ValueError that names the problem and the fix."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(
            f"{name} must be a sequence of prompt strings, got {type(value).__name__}; "
            "pass one string a prompt, e.g. a list"
        )
    bad = [i for i, p in enumerate(value) if not isinstance(p, str)]
    if bad:
        shown = ", ".join(str(i) for i in bad[:5]) + (" …" if len(bad) > 5 else "")
        raise ValueError(
            f"{name} has {len(bad)} items that are not strings (items {shown}); "
            "pass the prompt texts"
        )
    if len(value) < MIN_ROWS:
        raise ValueError(
            f"{name} has {len(value)} prompts, but the drift test needs at least {MIN_ROWS} "
            f"prompts per window; widen the {name} window or wait for more traffic"
        )
    return list(value)


def _plain(value: object) -> object:
    if isinstance(value, bool | str | int) or value is None:
        return value
    value = float(value)  # type: ignore[arg-type]
    return value if math.isfinite(value) else None
