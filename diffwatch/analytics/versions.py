"""Compare two model versions (or deployments) and say in plain words what changed.

Every difference is candidate − baseline with a 95 % confidence interval: Welch's t on
ratio estimators over time buckets (cost per image, CLIP score, ratings), Newcombe's
hybrid score interval (error rate, NSFW rate), and a seeded bootstrap of the merged
latency histograms (p50, p95). The verdict rules are in docs/dashboard-queries.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from diffwatch.analytics.intervals import (
    LEVEL,
    Interval,
    hist_quantile,
    newcombe_diff,
    quantile_diff,
    ratio_mean,
    welch_diff,
)
from diffwatch.model.histogram import value_of
from diffwatch.model.version_metrics import METRICS, BucketSums, Metric, Proportion, VersionStats

Status = Literal[
    "regressed", "improved", "no_difference", "inconclusive", "not_enough_data", "not_measured"
]
Recommendation = Literal["promote", "hold", "not_enough_data"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric on both sides, in display units; ``diff`` is candidate − baseline."""

    metric: Metric
    baseline: float | None
    candidate: float | None
    diff: Interval | None
    n_baseline: int
    n_candidate: int
    threshold: float  # smallest difference that matters, in display units
    status: Status
    sentence: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """One sentence per metric and the recommendation, with the sentence that gives it."""

    recommendation: Recommendation
    summary: str
    comparisons: tuple[Comparison, ...]

    @property
    def text(self) -> str:
        """All sentences, then the verdict, as one paragraph of plain text."""
        return " ".join([*(c.sentence for c in self.comparisons), self.summary])


def _value(m: Metric, s: VersionStats) -> tuple[float | None, int, int]:
    """(value in display units, sample size, buckets) of metric m on one side."""
    src = getattr(s, m.source)
    if m.kind == "quantile":
        n = sum(src.values())
        b = hist_quantile(src, m.q)
        return (None if b is None else value_of(b)), n, 0
    if m.kind == "proportion":
        assert isinstance(src, Proportion)
        return (src.successes / src.n * m.scale if src.n else None), src.n, 0
    if src is None:
        return None, 0, 0
    assert isinstance(src, BucketSums)
    n = src.n
    total = sum(y for y, _ in src.pairs)
    return (total / n * m.scale if n else None), n, src.buckets


def _interval(m: Metric, a: VersionStats, b: VersionStats, level: float) -> Interval | None:
    sa, sb = getattr(a, m.source), getattr(b, m.source)
    if m.kind == "quantile":
        return quantile_diff(sa, sb, m.q, value_of, level)
    if m.kind == "proportion":
        d = newcombe_diff(sa.successes, sa.n, sb.successes, sb.n, level)
    else:
        ea, eb = ratio_mean(sa.pairs), ratio_mean(sb.pairs)
        if ea is None or eb is None:
            return None
        d = welch_diff(ea, eb, level)
    return Interval(d.estimate * m.scale, d.low * m.scale, d.high * m.scale, d.level)


def _num(m: Metric, x: float, diff: bool = False, sign: bool = False) -> str:
    """A value (or a difference, in diff_unit) as text: '−0.30', '+180 ms', '1.20%'."""
    unit = (m.diff_unit or m.unit) if diff else m.unit
    text = f"{x:{'+' if sign else ''}{m.fmt}}".replace("-", "−")
    return f"{text}%" if unit == "%" else f"{text} {unit}".rstrip()


def _ci(m: Metric, d: Interval) -> str:
    pct = f"{d.level * 100:g}%"
    est, low, high = (_num(m, x, diff=True, sign=True) for x in (d.estimate, d.low, d.high))
    return f"{est} [{pct} CI {low}, {high}]"


def _classify(m: Metric, d: Interval, threshold: float) -> Status:
    # harm > 0 is a change in the bad direction.
    s = 1.0 if m.better == "lower" else -1.0
    harm_lo, harm_hi = sorted((s * d.low, s * d.high))
    harm = s * d.estimate
    if harm_lo > 0 and harm >= threshold:
        return "regressed"
    if harm_hi < 0 and -harm >= threshold:
        return "improved"
    if harm_hi < threshold:
        return "no_difference"
    return "inconclusive"


def _sentence(m: Metric, c: Status, d: Interval | None, thr: float, short: str) -> str:
    name = m.name[0].upper() + m.name[1:]
    if c == "not_measured":
        return f"{name}: not measured on both sides."
    if c == "not_enough_data" or d is None:
        return f"{name}: not enough data ({short})."
    ci = _ci(m, d)
    if c == "regressed":
        return f"{name}: {m.worse}, {ci}."
    if c == "improved":
        return f"{name}: {m.improved}, {ci}."
    if c == "no_difference":
        return f"{name}: no difference that matters ({ci}; less than {_num(m, thr, True)})."
    return f"{name}: inconclusive ({ci}); a change of {_num(m, thr, True)} is not ruled out."


def compare_metric(
    m: Metric, baseline: VersionStats, candidate: VersionStats, level: float = LEVEL
) -> Comparison:
    """Compare one metric: both values, the difference's CI, its status and sentence."""
    va, na, ba = _value(m, baseline)
    vb, nb, bb = _value(m, candidate)
    thr = m.min_diff * abs(va) if m.relative and va is not None else m.min_diff
    if na == 0 and nb == 0:
        return Comparison(m, va, vb, None, na, nb, thr, "not_measured", _sentence(
            m, "not_measured", None, thr, ""))  # fmt: skip
    short = [
        f"{s.label} has {n} of the {m.min_n} needed"
        for s, n in ((baseline, na), (candidate, nb))
        if n < m.min_n
    ] + [
        f"{s.label} has data in {k} of the {m.min_buckets} time buckets needed"
        for s, k in ((baseline, ba), (candidate, bb))
        if m.kind == "ratio" and k < m.min_buckets
    ]
    d = None if short else _interval(m, baseline, candidate, level)
    status: Status = "not_enough_data" if d is None else _classify(m, d, thr)
    return Comparison(m, va, vb, d, na, nb, thr, status, _sentence(
        m, status, d, thr, "; ".join(short)))  # fmt: skip


def compare(
    baseline: VersionStats,
    candidate: VersionStats,
    metrics: Sequence[Metric] = METRICS,
    level: float = LEVEL,
) -> list[Comparison]:
    """Compare every metric of the candidate against the baseline."""
    return [compare_metric(m, baseline, candidate, level) for m in metrics]


def _names(cs: Sequence[Comparison]) -> str:
    names = [c.metric.name for c in cs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def verdict(
    baseline: VersionStats,
    candidate: VersionStats,
    metrics: Sequence[Metric] = METRICS,
    level: float = LEVEL,
) -> Verdict:
    """Plain-language verdict: hold if any metric regressed by a margin that matters,
    not enough data if any measured metric is short of samples or inconclusive,
    otherwise promote. Metrics measured on neither side do not count."""
    cs = tuple(compare(baseline, candidate, metrics, level))
    worse = [c for c in cs if c.status == "regressed"]
    unsure = [c for c in cs if c.status in ("not_enough_data", "inconclusive")]
    measured = [c for c in cs if c.status != "not_measured"]
    who = candidate.label
    if worse:
        rec: Recommendation = "hold"
        summary = f"Verdict: hold the rollout of {who} — {_names(worse)} regressed."
    elif unsure or not measured:
        rec = "not_enough_data"
        why = f"{_names(unsure)} cannot be judged yet" if unsure else "nothing was measured"
        summary = f"Verdict: not enough data — {why}; keep {who} running and look again."
    else:
        rec = "promote"
        better = [c for c in cs if c.status == "improved"]
        extra = f"; {_names(better)} improved" if better else ""
        summary = f"Verdict: promote {who} — no metric regressed by a margin that matters{extra}."
    return Verdict(rec, summary, cs)
