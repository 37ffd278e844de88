"""Has a model version's demographic skew changed? Two tables of counts compared (pure).

Per prompt and class: a pooled two-proportion z test of the class's share (candidate
against baseline) and Newcombe's interval of the difference; across all tests,
Benjamini–Hochberg (false discovery rate) or Holm (family-wise error) adjusted p-values.
With exactly two classes one test per prompt is made (the first class's share): the second
class's test would be the same test again and would only inflate the correction. Every
aggregate of ``bias_metrics`` is also compared, as candidate minus baseline, over the
prompts that both versions scored (n > 0 in both).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from diffwatch.analytics.bias_metrics import (
    ABSTAIN,
    DEFAULT_K,
    METRICS,
    BiasReport,
    Counts,
    Reference,
    aggregate,
    bias_metrics,
    interval_dict,
    resolve_classes,
)
from diffwatch.analytics.intervals import LEVEL, Interval, newcombe_diff

Correction = Literal["bh", "holm"]


@dataclass(frozen=True, slots=True)
class ShareTest:
    """One class's share in one prompt, candidate against baseline."""

    prompt: str
    name: str  # the class
    baseline_count: int
    baseline_n: int
    candidate_count: int
    candidate_n: int
    difference: Interval  # candidate share − baseline share (Newcombe), fraction
    z: float
    p_value: float  # two-sided, pooled z test
    p_adjusted: float
    significant: bool  # p_adjusted <= alpha

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "prompt": self.prompt,
            "class": self.name,
            "baseline_count": self.baseline_count,
            "baseline_n": self.baseline_n,
            "candidate_count": self.candidate_count,
            "candidate_n": self.candidate_n,
            "difference": interval_dict(self.difference),
            "z": self.z,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "significant": self.significant,
        }


@dataclass(frozen=True, slots=True)
class BiasComparison:
    """Share tests, adjusted p-values and aggregate changes between two versions."""

    baseline: BiasReport  # over the shared prompts
    candidate: BiasReport
    tests: tuple[ShareTest, ...]
    correction: Correction
    alpha: float
    only_in_baseline: tuple[str, ...]
    only_in_candidate: tuple[str, ...]
    not_tested: tuple[str, ...]  # shared prompts where a version has no classified image
    delta: dict[str, float | None]  # candidate − baseline, by aggregate name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "correction": self.correction,
            "alpha": self.alpha,
            "tests": [t.to_dict() for t in self.tests],
            "significant": sum(t.significant for t in self.tests),
            "only_in_baseline": list(self.only_in_baseline),
            "only_in_candidate": list(self.only_in_candidate),
            "not_tested": list(self.not_tested),
            "delta": dict(self.delta),
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
        }


def two_proportion_z(x_a: int, n_a: int, x_b: int, n_b: int) -> tuple[float, float]:
    """Pooled z statistic of x_b/n_b − x_a/n_a and its two-sided p-value."""
    if n_a <= 0 or n_b <= 0:
        raise ValueError(f"a proportion needs n > 0 in both groups, got {n_a} and {n_b}")
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:  # both shares are 0 or both are 1: no difference to test
        return 0.0, 1.0
    z = (x_b / n_b - x_a / n_a) / se
    return z, float(2 * stats.norm.sf(abs(z)))


def adjust_p(p_values: Sequence[float], method: Correction = "bh") -> list[float]:
    """Benjamini–Hochberg or Holm adjusted p-values, in the input's order, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    if np.any((p < 0) | (p > 1) | ~np.isfinite(p)):
        raise ValueError("p-values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "bh":
        # p_(i) · m / i, made monotone from the largest down
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    elif method == "holm":
        # p_(i) · (m − i + 1), made monotone from the smallest up
        adj = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        raise ValueError(f"correction must be 'bh' or 'holm', got {method!r}")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.tolist()


def _restrict(reference: Reference | None, prompts: list[str]) -> Reference | None:
    if reference is None or not all(isinstance(v, Mapping) for v in reference.values()):
        return reference
    return {p: v for p, v in reference.items() if p in prompts}  # type: ignore[misc]


def _delta(base: BiasReport, cand: BiasReport, k: int, level: float) -> dict[str, float | None]:
    # over the prompts both versions scored, so that a prompt one version could not score
    # does not move the aggregates
    both = {p.prompt for p in base.prompts if p.n} & {p.prompt for p in cand.prompts if p.n}
    b, c = (
        aggregate([p for p in r.prompts if p.prompt in both], r.classes, k, level).to_dict()
        for r in (base, cand)
    )
    out: dict[str, float | None] = {}
    for m in METRICS:
        for key in (f"mean_{m}", f"worst_k_{m}"):
            out[key] = None if b[key] is None or c[key] is None else c[key] - b[key]
    for cls in base.classes:
        before, after = b["mean_share"][cls], c["mean_share"][cls]
        out[f"mean_share[{cls}]"] = None if before is None or after is None else after - before
    return out


def compare_versions(
    baseline: Counts,
    candidate: Counts,
    *,
    classes: Sequence[str] | None = None,
    reference: Reference | None = None,
    k: int = DEFAULT_K,
    level: float = LEVEL,
    alpha: float = 0.05,
    correction: Correction = "bh",
    abstain_class: str | None = ABSTAIN,
) -> BiasComparison:
    """Test each prompt's class shares, candidate against baseline, with multiple testing.

    Only prompts present in both tables are compared (the others are listed); the
    aggregates of both are computed over those prompts, so their change means something.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if correction not in ("bh", "holm"):
        raise ValueError(f"correction must be 'bh' or 'holm', got {correction!r}")
    union = {p: {**baseline.get(p, {}), **candidate.get(p, {})} for p in [*baseline, *candidate]}
    cls = resolve_classes(union, classes, abstain_class)
    shared = [p for p in baseline if p in candidate]
    ref = _restrict(reference, shared)
    opts: dict[str, Any] = dict(classes=cls, reference=ref, k=k, level=level)
    base = bias_metrics({p: baseline[p] for p in shared}, abstain_class=abstain_class, **opts)
    cand = bias_metrics({p: candidate[p] for p in shared}, abstain_class=abstain_class, **opts)
    tested = cls[:1] if len(cls) == 2 else cls
    raw: list[tuple[str, str, int, int, int, int, Interval, float, float]] = []
    not_tested = []
    for pb, pc in zip(base.prompts, cand.prompts, strict=True):
        if pb.n == 0 or pc.n == 0:
            not_tested.append(pb.prompt)
            continue
        for i, c in enumerate(cls):
            if c not in tested:
                continue
            xb, xc = pb.shares[i].count, pc.shares[i].count
            z, pv = two_proportion_z(xb, pb.n, xc, pc.n)
            diff = newcombe_diff(xb, pb.n, xc, pc.n, level)
            raw.append((pb.prompt, c, xb, pb.n, xc, pc.n, diff, z, pv))
    adjusted = adjust_p([r[-1] for r in raw], correction)
    tests = tuple(ShareTest(*r, q, q <= alpha) for r, q in zip(raw, adjusted, strict=True))
    return BiasComparison(
        baseline=base,
        candidate=cand,
        tests=tests,
        correction=correction,
        alpha=alpha,
        only_in_baseline=tuple(p for p in baseline if p not in candidate),
        only_in_candidate=tuple(p for p in candidate if p not in baseline),
        not_tested=tuple(not_tested),
        delta=_delta(base, cand, k, level),
    )
