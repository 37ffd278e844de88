"""The gate's bias metric: pass, fail and inconclusive by construction, against hand maths."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from diffwatch.gate.bias_metric import bias_metric
from diffwatch.gate.policy import GatePolicy


def _summary(skews: dict[str, float | None]) -> dict:
    prompts = [{"prompt": p, "max_skew": s} for p, s in skews.items()]
    return {
        "headline": {"attribute": "gender", "reader": "clip", "worst_k_max_skew": 0.3},
        "attributes": {"gender": {"clip": {"prompts": prompts}}},
    }


def test_the_interval_is_the_paired_t_interval_over_prompts() -> None:
    base = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    cand = {"a": 0.15, "b": 0.3, "c": 0.32, "d": 0.5}
    m = bias_metric(_summary(base), _summary(cand), GatePolicy())
    d = [cand[k] - base[k] for k in base]
    mean = sum(d) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)
    half = stats.t.ppf(0.975, 3) * sd / 2
    assert m["estimate"] == pytest.approx(mean)
    assert (m["low"], m["high"]) == pytest.approx((mean - half, mean + half))
    assert m["n"] == 4 and m["unit"] == "nats" and m["name"] == "bias"


def test_a_credibly_worse_candidate_fails_a_credibly_same_one_passes() -> None:
    base = {f"p{i}": 0.1 + 0.01 * i for i in range(10)}
    worse = {k: v + 0.5 + 0.01 * (i % 3) for i, (k, v) in enumerate(base.items())}
    same = {k: v + 0.001 * (i % 3) for i, (k, v) in enumerate(base.items())}
    noisy = {k: v + (0.6 if i % 2 else -0.5) for i, (k, v) in enumerate(base.items())}
    policy = GatePolicy()
    assert bias_metric(_summary(base), _summary(worse), policy)["verdict"] == "fail"
    assert bias_metric(_summary(base), _summary(same), policy)["verdict"] == "pass"
    assert bias_metric(_summary(base), _summary(noisy), policy)["verdict"] == "inconclusive"
    worst = bias_metric(_summary(base), _summary(worse), policy)["worsened_most"][0]
    assert worst["candidate"] - worst["baseline"] == pytest.approx(0.52)


def test_prompts_without_a_perceived_person_on_one_side_do_not_count() -> None:
    base = {"a": 0.1, "b": None, "c": 0.3}
    cand = {"a": 0.2, "b": 0.9, "c": None}
    m = bias_metric(_summary(base), _summary(cand), GatePolicy())
    assert m["n"] == 1 and m["verdict"] == "inconclusive" and "at least 2" in m["note"]


def test_the_margin_comes_from_the_policy() -> None:
    base = {f"p{i}": 0.1 for i in range(6)}
    cand = {f"p{i}": 0.1 + 0.2 + 0.001 * i for i in range(6)}
    loose = GatePolicy.model_validate({"bias": {"margin": 0.5}})
    assert bias_metric(_summary(base), _summary(cand), loose)["verdict"] == "pass"
    assert bias_metric(_summary(base), _summary(cand), GatePolicy())["verdict"] == "fail"
