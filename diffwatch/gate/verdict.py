"""The gate's verdict rules: pure functions from an estimate and its interval to a verdict.

Every metric is read non-inferiority style. The candidate's *harm* (how much worse it is
than the baseline, in the metric's own unit) has an interval [low, high] at the policy's
confidence level, and the policy gives a margin m:

- **pass** when high <= m: the whole interval lies within the margin;
- **fail** when low > m: the candidate is credibly worse than the margin allows;
- **inconclusive** otherwise: the data cannot tell; more items would.

An undefined interval (NaN, e.g. no items to measure) is inconclusive, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

from diffwatch.analytics.intervals import wilson
from diffwatch.gate.policy import (
    AlignmentPolicy,
    DistributionPolicy,
    GoldenPolicy,
    HumanPolicy,
    SafetyPolicy,
)

Verdict = Literal["pass", "fail", "inconclusive"]
_EXIT: dict[str, int] = {"pass": 0, "fail": 1, "inconclusive": 3}  # 2: the run itself failed
_RANK: dict[str, int] = {"pass": 0, "inconclusive": 1, "fail": 2}


def noninferiority(low: float, high: float, margin: float) -> Verdict:
    """A harm interval [low, high] against a margin, in the harm's unit (see the module)."""
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if low > high:
        raise ValueError(f"an interval needs low <= high, got [{low}, {high}]")
    if high <= margin:
        return "pass"
    return "fail" if low > margin else "inconclusive"


def alignment_verdict(low: float, high: float, section: AlignmentPolicy) -> Verdict:
    """CLIPScore difference candidate - baseline, interval [low, high] in CLIPScore points;
    harm is the negated difference, so it fails when the difference is credibly below
    -margin."""
    return noninferiority(-high, -low, section.margin)


def ratio_verdict(low: float, high: float, max_ratio: float) -> Verdict:
    """A candidate / baseline ratio (latency, peak memory), interval [low, high], against
    ``max_ratio``: the ratio itself is the harm."""
    return noninferiority(low, high, max_ratio)


def safety_verdict(low: float, high: float, new_flags: int, section: SafetyPolicy) -> Verdict:
    """NSFW-flag rate difference candidate - baseline (a proportion, interval [low, high]);
    more than ``max_new_flags`` items newly flagged fails outright, whatever the rates."""
    if new_flags > section.max_new_flags:
        return "fail"
    return noninferiority(low, high, section.margin)


def distribution_verdict(
    estimate: float, low: float, high: float, p_value: float, section: DistributionPolicy
) -> Verdict:
    """CMMD (x1000) between the sides with its interval and permutation-test p-value.

    Pass when the whole interval is within ``max_cmmd``; fail when the test is significant
    (p < alpha) and the estimate is over ``max_cmmd``: the sides differ, and by more than
    the policy allows. Otherwise inconclusive. The test, not the interval, carries the fail
    side: an MMD estimate is positive however alike two samples are, and its bootstrap
    interval reaches down to 0 at small n, while the permutation test is exact under "same
    distribution". Identical sets (0, [0, 0], p = 1) pass.
    """
    if math.isnan(estimate) or math.isnan(p_value):
        return "inconclusive"
    if p_value < section.alpha and estimate > section.max_cmmd:
        return "fail"
    return "pass" if high <= section.max_cmmd else "inconclusive"


def golden_verdict(departed: int, section: GoldenPolicy) -> Verdict:
    """Golden items whose candidate image left its tolerance: at most ``max_departed``
    passes, more fails (a count of items, no interval)."""
    return "pass" if departed <= section.max_departed else "fail"


def human_verdict(
    wins: float, pairs: int, section: HumanPolicy, level: float
) -> tuple[Verdict, str]:
    """Raters' pairwise preference: ``wins`` of ``pairs`` rated pairs went to the candidate
    (ties count half). Returns the verdict and a reason; below ``min_pairs`` it is
    inconclusive and the reason says how many more pairs are needed."""
    if pairs < section.min_pairs:
        need = section.min_pairs - pairs
        return "inconclusive", f"needs {need} more rated pairs ({pairs} of {section.min_pairs})"
    ci = wilson(wins, pairs, level)  # type: ignore[arg-type]  # a half win is fine here
    verdict = noninferiority(-ci.high, -ci.low, -section.min_win_rate)
    return verdict, (
        f"win rate {ci.estimate:.3f} [{ci.low:.3f}, {ci.high:.3f}] at {level:g} "
        f"vs minimum {section.min_win_rate:g} over {pairs} rated pairs"
    )


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The worst of several verdicts (fail > inconclusive > pass); inconclusive when none."""
    found = list(verdicts)
    return max(found, key=_RANK.__getitem__) if found else "inconclusive"


def overall(metrics: Sequence[tuple[str, Verdict, bool]]) -> Verdict:
    """The run's verdict from (name, verdict, blocks) per metric: fail if a blocking metric
    fails, else inconclusive if one is inconclusive, else pass; non-blocking ones never
    change it."""
    return worst([v for _, v, blocks in metrics if blocks] or ["pass"])


def exit_code(verdict: Verdict) -> int:
    """The process exit status of a verdict: pass 0, fail 1, inconclusive 3 (2: an error)."""
    return _EXIT[verdict]
