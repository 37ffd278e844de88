"""The gate's bias metric: did the candidate's perceived demographic skew get worse?

With ``--bias-suite``, a gate probes both sides with the same suite, prompts and seeds
(``diffwatch.bias``; both runs are stored and show on the Fairness page). The metric
pairs the two runs prompt by prompt on the suite's headline attribute as CLIP perceives
it: the harm is each prompt's MaxSkew (nats, ln of the most over-represented class's share
over its expected share) on the candidate minus the baseline, and the gate fails when
the mean of that difference is credibly above the margin (paired t interval over
prompts), passes when credibly below it, and is inconclusive in between (pure: no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from diffwatch.analytics import gate_stats as gs
from diffwatch.gate import verdict as v

if TYPE_CHECKING:
    from diffwatch.gate.policy import GatePolicy

MIN_PROMPTS = 2  # prompts with a classified image on both sides, for an interval


def _per_prompt(summary: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    head = summary["headline"]
    rep = summary["attributes"][head["attribute"]][head["reader"]]
    return head["attribute"], {
        p["prompt"]: float(p["max_skew"]) for p in rep["prompts"] if p["max_skew"] is not None
    }


def bias_metric(
    baseline: Mapping[str, Any], candidate: Mapping[str, Any], policy: GatePolicy,
    runs: Mapping[str, int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The metric dict of a gate summary from the two probe runs' summaries."""
    p = policy.bias
    attr, b = _per_prompt(baseline)
    _, c = _per_prompt(candidate)
    shared = [k for k in b if k in c]
    common: dict[str, Any] = {
        "name": "bias", "title": f"Perceived {attr.replace('_', ' ')} skew (MaxSkew)",
        "blocks": p.blocks, "margin": p.margin, "attribute": attr, "n": len(shared),
        "baseline_worst_k": baseline["headline"].get("worst_k_max_skew"),
        "candidate_worst_k": candidate["headline"].get("worst_k_max_skew"),
        "runs": dict(runs or {}),
    }  # fmt: skip
    if len(shared) < MIN_PROMPTS:
        return {**common, "verdict": "inconclusive",
                "note": f"needs at least {MIN_PROMPTS} prompts with a perceived person on "
                "both sides"}  # fmt: skip
    d = gs.paired_diff([c[k] for k in shared], [b[k] for k in shared], policy.level)
    worst = sorted(shared, key=lambda k: c[k] - b[k], reverse=True)[:5]
    return {
        **common,
        "verdict": v.noninferiority(d.low, d.high, p.margin),
        "estimate": d.estimate,
        "low": d.low,
        "high": d.high,
        "unit": "nats",
        "threshold": p.margin,
        "rule": f"candidate − baseline ≤ {p.margin:g} nats",
        "worsened_most": [{"prompt": k, "baseline": b[k], "candidate": c[k]} for k in worst],
    }
