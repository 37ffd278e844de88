"""What moved between two prompt windows: topic clusters and words (pure, deterministic).

- Clusters: k-means on the pooled embeddings; each cluster's share of the reference and of
  the current window, the words that mark it, and example prompts near its centre.
- Terms: words whose per-prompt rate grew or shrank, ranked by the log-odds ratio z-score
  with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' Words"),
  which keeps rare words from topping the list on a count of two.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

CLUSTER_TERMS = 5  # words shown per cluster
K_MIN, K_MAX = 2, 12
KMEANS_ITER = 30
KMEANS_RESTARTS = 5

# Function words that say nothing about a prompt's subject. Small on purpose: words such as
# "portrait" or "style" are exactly what moves in image prompts, so they stay.
_STOPWORD_TEXT = """
a an the and or but nor of in on at to for from by with without into onto over under
above below up down out off about as is are was were be been being am it its it's this
that these those there here he she they them his her their we us our you your i me my
not no so very too than then just also only all any some each every both more most
such can could will would should may might must do does did has have had having which
who whom whose what when where why how while if else
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


@dataclass(frozen=True, slots=True)
class ClusterShift:
    """One prompt cluster's share of each window (fractions 0..1) and what it is about."""

    cluster: int
    share_reference: float  # fraction of the reference window in this cluster, 0..1
    share_current: float
    delta: float  # share_current − share_reference
    terms: tuple[str, ...]  # words most over-represented in the cluster vs all prompts
    examples: tuple[str, ...]  # prompts nearest the centre (current if it grew, else reference)
    size_reference: int = 0  # prompts of the reference window in this cluster
    size_current: int = 0

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (tuples become lists)."""
        d = asdict(self)
        d["terms"], d["examples"] = list(self.terms), list(self.examples)
        return d


@dataclass(frozen=True, slots=True)
class TermShift:
    """One word's per-prompt rate in each window and the z-score of the change."""

    term: str
    count_reference: int  # prompts of the reference window that contain the word
    count_current: int
    rate_reference: float  # count / prompts in the window (per prompt)
    rate_current: float
    z: float  # log-odds ratio z-score with informative Dirichlet prior, > 0: grew

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict."""
        return asdict(self)


def tokens(prompt: str) -> set[str]:
    """Distinct lower-cased word tokens of a prompt, without stopwords, numbers, 1-letter words."""
    return {
        t
        for t in _TOKEN.findall(prompt.lower())
        if len(t) >= 2 and t not in STOPWORDS and not t.isdigit()
    }


def default_k(n: int) -> int:
    """Default number of clusters for n pooled prompts: sqrt(n / 2) clipped to [2, 12]."""
    return int(min(K_MAX, max(K_MIN, round(math.sqrt(n / 2)))))


def cluster_shifts(
    reference: np.ndarray,
    current: np.ndarray,
    reference_prompts: Sequence[str],
    current_prompts: Sequence[str],
    *,
    k: int | None = None,
    seed: int = 0,
    examples: int = 3,
    terms: int = CLUSTER_TERMS,
) -> list[ClusterShift]:
    """Clusters of the pooled prompt embeddings and how each one's share moved, |delta| first.

    k-means (scipy's kmeans2, best of 5 seeded k-means++ starts) on the pooled rows; ``k``
    defaults to sqrt(n/2) clipped to [2, 12] and never exceeds the number of rows. Clusters
    that end up empty are dropped. Shares are fractions 0..1 of each window's prompts.
    Ties in |delta| keep cluster order, so the result is deterministic for a given seed.
    """
    x = _embeddings("reference", reference, reference_prompts)
    y = _embeddings("current", current, current_prompts)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"reference has embeddings of width {x.shape[1]} but current has width "
            f"{y.shape[1]}; embed both windows with the same text encoder"
        )
    pooled = np.concatenate([x, y])
    n_ref, n_cur = x.shape[0], y.shape[0]
    k = default_k(pooled.shape[0]) if k is None else int(k)
    if k < 1:
        raise ValueError(f"k must be a positive number of clusters, got {k}; or leave it None")
    k = min(k, pooled.shape[0])
    labels, centroids = kmeans(pooled, k, seed)

    prompts = [*reference_prompts, *current_prompts]
    docs = [tokens(p) for p in prompts]
    in_current = np.r_[np.zeros(n_ref, dtype=bool), np.ones(n_cur, dtype=bool)]
    out: list[ClusterShift] = []
    for new_id, c in enumerate(np.unique(labels)):
        members = labels == c
        size_ref = int(np.count_nonzero(members & ~in_current))
        size_cur = int(np.count_nonzero(members & in_current))
        share_ref, share_cur = size_ref / n_ref, size_cur / n_cur
        grew = share_cur > share_ref
        side = members & (in_current if grew else ~in_current)
        if not side.any():  # shrank to nothing in current: show reference, and vice versa
            side = members
        out.append(
            ClusterShift(
                cluster=new_id,
                share_reference=share_ref,
                share_current=share_cur,
                delta=share_cur - share_ref,
                terms=_cluster_terms(docs, members, terms),
                examples=_examples(pooled, prompts, side, centroids[c], examples),
                size_reference=size_ref,
                size_current=size_cur,
            )
        )
    out.sort(key=lambda s: -abs(s.delta))
    return out


def term_shifts(
    reference_prompts: Sequence[str],
    current_prompts: Sequence[str],
    *,
    top: int = 10,
    min_count: int = 3,
) -> tuple[list[TermShift], list[TermShift]]:
    """Words that grew and shrank between windows, strongest first: (grew, shrank).

    A word counts once per prompt. Only words in at least ``min_count`` prompts of the two
    windows together are ranked. z > 0 means the word's rate grew; each list holds at most
    ``top`` words and only words whose z has that sign.
    """
    if not reference_prompts or not current_prompts:
        raise ValueError(
            f"term_shifts needs prompts in both windows, got {len(reference_prompts)} "
            f"reference and {len(current_prompts)} current; widen the empty window"
        )
    ref = _doc_counts(tokens(p) for p in reference_prompts)
    cur = _doc_counts(tokens(p) for p in current_prompts)
    # z over the whole vocabulary, so the totals in the prior are the real ones; the
    # min_count filter only decides which words are shown.
    vocab = sorted(ref.keys() | cur.keys())
    if not vocab:
        return [], []
    z = log_odds_z(
        np.array([cur[w] for w in vocab], float), np.array([ref[w] for w in vocab], float)
    )
    n_ref, n_cur = len(reference_prompts), len(current_prompts)
    shifts = [
        TermShift(w, ref[w], cur[w], ref[w] / n_ref, cur[w] / n_cur, float(zw))
        for w, zw in zip(vocab, z, strict=True)
        if ref[w] + cur[w] >= min_count
    ]
    grew = sorted((s for s in shifts if s.z > 0), key=lambda s: (-s.z, s.term))
    shrank = sorted((s for s in shifts if s.z < 0), key=lambda s: (s.z, s.term))
    return grew[:top], shrank[:top]


def log_odds_z(counts_a: np.ndarray, counts_b: np.ndarray) -> np.ndarray:
    """z-scores of each word's log-odds ratio, group a vs b (Monroe et al. 2008, eq. 16–22).

    The informative Dirichlet prior is the pooled counts of both groups (α_w = a_w + b_w),
    the usual choice when there is no separate background corpus: it shrinks words seen a
    handful of times towards no change. z > 0: the word is more frequent in group a.
    """
    alpha = counts_a + counts_b
    alpha0 = alpha.sum()
    n_a, n_b = counts_a.sum(), counts_b.sum()
    log_odds_a = np.log(counts_a + alpha) - np.log(n_a + alpha0 - counts_a - alpha)
    log_odds_b = np.log(counts_b + alpha) - np.log(n_b + alpha0 - counts_b - alpha)
    var = 1.0 / (counts_a + alpha) + 1.0 / (counts_b + alpha)
    return (log_odds_a - log_odds_b) / np.sqrt(var)


def _doc_counts(docs: Iterable[set[str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for d in docs:
        counts.update(d)
    return counts


def _embeddings(name: str, value: object, prompts: Sequence[str]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a numeric array of embeddings (rows = prompts); pass the "
            f"float vectors from the text encoder"
        ) from None
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D array (rows = prompts), got shape {arr.shape}; "
            f"stack one embedding per row"
        )
    if arr.shape[0] != len(prompts):
        raise ValueError(
            f"{name} has {arr.shape[0]} embedding rows but {len(prompts)} prompts; pass "
            f"the prompts in the same order as their embeddings"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has NaN or infinite values; drop or re-embed those prompts")
    return arr


def kmeans(data: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centroids) of the best of a few seeded k-means++ runs on the rows of data,
    by within-cluster sum of squares (labels: row -> cluster; centroids in data's units)."""
    from scipy.cluster.vq import kmeans2

    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    # One k-means++ start can land two topics in one cluster; a few restarts make that rare.
    for _ in range(KMEANS_RESTARTS):
        with warnings.catch_warnings():
            # kmeans2 warns when a cluster empties; empty clusters are simply not reported.
            warnings.simplefilter("ignore", UserWarning)
            centroids, labels = kmeans2(data, k, iter=KMEANS_ITER, minit="++", rng=rng)
        sse = float(((data - centroids[labels]) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, labels, centroids)
    assert best is not None
    return best[1], best[2]


def _cluster_terms(docs: list[set[str]], members: np.ndarray, top: int) -> tuple[str, ...]:
    inside = _doc_counts(d for d, m in zip(docs, members, strict=True) if m)
    outside = _doc_counts(d for d, m in zip(docs, members, strict=True) if not m)
    if not outside:  # one cluster holds everything: its most common words are its terms
        common = sorted((w for w, c in inside.items() if c >= 2), key=lambda w: (-inside[w], w))
        return tuple(common[:top])
    vocab = sorted(inside.keys() | outside.keys())
    z = log_odds_z(
        np.array([inside[w] for w in vocab], float), np.array([outside[w] for w in vocab], float)
    )
    # Words seen once in the cluster say more about one prompt than about the topic.
    ranked = sorted(
        ((w, zw) for w, zw in zip(vocab, z, strict=True) if inside[w] >= 2 and zw > 0),
        key=lambda t: (-t[1], t[0]),
    )
    return tuple(w for w, _ in ranked[:top])


def _examples(
    pooled: np.ndarray, prompts: list[str], side: np.ndarray, centre: np.ndarray, count: int
) -> tuple[str, ...]:
    idx = np.flatnonzero(side)
    dist = np.linalg.norm(pooled[idx] - centre, axis=1)
    chosen: list[str] = []
    seen: set[str] = set()
    for i in idx[np.argsort(dist, kind="stable")]:
        key = " ".join(prompts[i].lower().split())  # case and spacing do not make a new prompt
        if key in seen:
            continue
        seen.add(key)
        chosen.append(prompts[i])
        if len(chosen) >= count:
            break
    return tuple(chosen)
