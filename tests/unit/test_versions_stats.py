"""Confidence intervals against textbook values and by simulation; verdict sentences."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from diffwatch.analytics.intervals import (
    newcombe_diff,
    quantile_diff,
    quantile_interval,
    ratio_mean,
    sample_mean,
    welch_df,
    welch_diff,
    wilson,
)
from diffwatch.analytics.versions import compare_metric, verdict
from diffwatch.model.histogram import LN_GAMMA, MAX_BIN, bin_of, value_of
from diffwatch.model.version_metrics import CLIP, P95, BucketSums, Proportion, VersionStats

SIMS = 400


def _covered(hits: int) -> float:
    return hits / SIMS


def _hist(x: np.ndarray) -> dict[int, int]:
    bins = np.minimum(np.ceil(np.log(x) / LN_GAMMA), MAX_BIN).astype(int)
    b, c = np.unique(bins, return_counts=True)
    return dict(zip(b.tolist(), c.tolist(), strict=True))


def test_welch_interval_matches_a_hand_computed_example() -> None:
    # a = 1..5: mean 3, s² = 2.5; b = 2, 4, ..., 12: mean 7, s² = 14.
    # se² = 2.5/5 + 14/6 = 2.8333; df = 2.8333² / (0.5²/4 + 2.3333²/5) = 6.9723.
    a, b = sample_mean([1, 2, 3, 4, 5]), sample_mean([2, 4, 6, 8, 10, 12])
    assert welch_df(a, b) == pytest.approx(6.9723, abs=1e-4)
    ci = welch_diff(a, b)
    assert ci.estimate == 4.0
    # t(0.975) from the printed table: 2.447 at 6 df, 2.365 at 7 df; linear in between.
    t_table = 2.365 + (7 - 6.9723) * (2.447 - 2.365)
    half = t_table * math.sqrt(2.8333333)
    assert ci.low == pytest.approx(4 - half, abs=0.01)
    assert ci.high == pytest.approx(4 + half, abs=0.01)


def test_welch_with_equal_variances_and_sizes_uses_pooled_df() -> None:
    # Equal n and s²: Welch's df is 2(n − 1) = 10, and t(0.975, 10) = 2.228 (table).
    a = sample_mean([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = sample_mean([3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    ci = welch_diff(a, b)
    se = math.sqrt(2 * 3.5 / 6)
    assert ci.high - ci.estimate == pytest.approx(2.228 * se, abs=2e-3)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [  # Newcombe (1998), Stat Med 17:873-890, Table II, method 10 (score, no CC)
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
    ],
)
def test_newcombe_hybrid_score_interval_matches_published_examples(
    x1: int, n1: int, x2: int, n2: int, low: float, high: float
) -> None:
    # The paper's difference is p1 − p2; ours is candidate − baseline, so p1 is "b".
    ci = newcombe_diff(x2, n2, x1, n1)
    assert ci.estimate == pytest.approx(x1 / n1 - x2 / n2)
    assert (round(ci.low, 4), round(ci.high, 4)) == (low, high)


def test_wilson_interval_published_value() -> None:
    # Newcombe (1998) Table I, 81/263, method 3 (score): 0.2553 to 0.3662.
    ci = wilson(81, 263)
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.2553, 0.3662)


def test_welch_covers_the_true_difference_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(SIMS):
        ci = welch_diff(sample_mean(rng.normal(10, 2, 8)), sample_mean(rng.normal(11, 5, 12)))
        hits += ci.low <= 1.0 <= ci.high
    assert 0.92 <= _covered(hits) <= 0.98


def test_newcombe_covers_the_true_difference_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(8)
    hits = 0
    for _ in range(SIMS):
        ci = newcombe_diff(int(rng.binomial(150, 0.1)), 150, int(rng.binomial(120, 0.2)), 120)
        hits += ci.low <= 0.1 <= ci.high
    assert 0.92 <= _covered(hits) <= 0.98


def test_ratio_mean_over_correlated_buckets_keeps_its_coverage() -> None:
    # Each bucket has its own shift (load, time of day): observations within a bucket are
    # correlated, which an i.i.d. interval would ignore; the bucket variance does not.
    rng = np.random.default_rng(9)

    def side(mu: float) -> list[tuple[float, float]]:
        out = []
        for _ in range(24):
            n = int(rng.integers(5, 60))
            out.append((float(rng.normal(mu + rng.normal(0, 1.0), 3, n).sum()), float(n)))
        return out

    hits = naive_hits = 0
    for _ in range(SIMS):
        pa, pb = side(30.0), side(30.5)
        ea, eb = ratio_mean(pa), ratio_mean(pb)
        assert ea is not None and eb is not None
        ci = welch_diff(ea, eb)
        hits += ci.low <= 0.5 <= ci.high
        # The same estimate with a variance of 3²/n (independent requests) covers far less.
        naive = replace(ea, var_of_mean=9 / ea.n, df=ea.n - 1.0)
        naive_b = replace(eb, var_of_mean=9 / eb.n, df=eb.n - 1.0)
        n_ci = welch_diff(naive, naive_b)
        naive_hits += n_ci.low <= 0.5 <= n_ci.high
    assert 0.92 <= _covered(hits) <= 0.98
    assert _covered(naive_hits) < 0.85


def test_ratio_mean_needs_two_buckets() -> None:
    assert ratio_mean([(10.0, 4.0)]) is None
    assert ratio_mean([(10.0, 4.0), (0.0, 0.0)]) is None
    est = ratio_mean([(10.0, 4.0), (30.0, 6.0)])
    assert est is not None and est.mean == 4.0 and est.n == 10 and est.df == 1.0
    # Cost of a bucket whose requests all failed (USD, 0 images) still adds to the ratio.
    cost = ratio_mean([(1.0, 10.0), (1.0, 10.0), (0.5, 0.0)])
    assert cost is not None and cost.mean == pytest.approx(2.5 / 20) and cost.df == 2.0


@pytest.mark.parametrize(("q", "mu_b"), [(0.95, 6.2), (0.5, 6.05)])
def test_histogram_quantile_intervals_cover_the_binned_truth(q: float, mu_b: float) -> None:
    # The histogram reports a bin's value, so the estimable truth is the binned quantile;
    # with bins 4 % wide the intervals are conservative (coverage at least nominal).
    rng = np.random.default_rng(10)
    z = {0.95: 1.6448536269514722, 0.5: 0.0}[q]
    qa, qb = math.exp(6 + 0.4 * z), math.exp(mu_b + 0.4 * z)
    truth = value_of(bin_of(qb)) - value_of(bin_of(qa))
    hits = single = 0
    for _ in range(SIMS // 2):
        ha, hb = _hist(rng.lognormal(6, 0.4, 1500)), _hist(rng.lognormal(mu_b, 0.4, 1000))
        ci = quantile_diff(ha, hb, q, value_of, draws=500)
        one = quantile_interval(ha, q, value_of)
        assert ci is not None and one is not None
        hits += ci.low <= truth <= ci.high
        single += one.low <= value_of(bin_of(qa)) <= one.high
    assert hits / (SIMS // 2) >= 0.93
    assert single / (SIMS // 2) >= 0.93


def test_quantile_difference_is_deterministic_and_detects_a_shift() -> None:
    rng = np.random.default_rng(3)
    ha, hb = _hist(rng.lognormal(6, 0.3, 3000)), _hist(rng.lognormal(6.1, 0.3, 3000))
    first, second = quantile_diff(ha, hb, 0.95, value_of), quantile_diff(ha, hb, 0.95, value_of)
    assert first == second
    assert first is not None and first.low > 0  # a 10 % shift, 3000 a side: clearly slower
    assert quantile_diff({}, hb, 0.95, value_of) is None


# -- verdicts --------------------------------------------------------------------------------


def _side(
    label: str,
    *,
    seed: int,
    n: int = 4000,
    lat_mu: float = 6.2,  # ≈ 490 ms median
    err: float = 0.02,
    clip: float = 30.0,
    nsfw: float = 0.02,
    usd: float = 0.002,
    buckets: int = 24,
) -> VersionStats:
    rng = np.random.default_rng(seed)
    per = n // buckets
    clip_pairs = tuple(
        (float(rng.normal(clip + rng.normal(0, 0.2), 4, per).sum()), float(per))
        for _ in range(buckets)
    )
    cost_pairs = tuple((usd * per * float(rng.normal(1, 0.02)), float(per)) for _ in range(buckets))
    return VersionStats(
        label=label,
        requests=n,
        images=n,
        errors=Proportion(int(rng.binomial(n, err)), n),
        latency_hist=_hist(rng.lognormal(lat_mu, 0.3, n)),
        cost=BucketSums(cost_pairs),
        clip=BucketSums(clip_pairs),
        clip_scorer_version="c1",
        nsfw=Proportion(int(rng.binomial(n, nsfw)), n),
        nsfw_scorer_version="n1",
    )


def test_verdict_on_a_clear_latency_regression_holds_the_rollout() -> None:
    v = verdict(_side("stable v1", seed=1), _side("canary v2", seed=2, lat_mu=6.45))
    assert v.recommendation == "hold"
    by = {c.metric.key: c for c in v.comparisons}
    assert by["p95_ms"].status == "regressed" and by["p50_ms"].status == "regressed"
    assert by["p95_ms"].sentence.startswith("P95 latency: slower, +")
    assert " ms [95% CI +" in by["p95_ms"].sentence and by["p95_ms"].sentence.endswith(" ms].")
    assert v.summary == (
        "Verdict: hold the rollout of canary v2 — p50 latency and p95 latency regressed."
    )
    assert by["rating_mean"].sentence == "Human rating: not measured on both sides."
    assert v.text.endswith(v.summary) and by["clip_mean"].sentence in v.text


def test_verdict_on_a_clear_improvement_promotes() -> None:
    # 20 000 a side: enough to rule out a 0.5 pp rise of a 2 % error or NSFW rate.
    v = verdict(
        _side("stable v1", seed=1, n=20000),
        _side("canary v2", seed=2, n=20000, lat_mu=5.9, clip=32.0, usd=0.0015),
    )
    by = {c.metric.key: c for c in v.comparisons}
    assert v.recommendation == "promote"
    assert by["p95_ms"].status == "improved" and by["p95_ms"].sentence.startswith(
        "P95 latency: faster, −"
    )
    assert by["clip_mean"].status == "improved"
    assert by["cost_per_image_usd"].sentence == (
        "Cost per image: cheaper, −0.00051 USD [95% CI −0.00053 USD, −0.00049 USD]."
    )
    assert v.summary.startswith("Verdict: promote canary v2 — no metric regressed")
    assert "cost per image" in v.summary and "CLIP score improved" in v.summary


def test_verdict_with_no_difference_promotes_and_says_so() -> None:
    v = verdict(_side("stable v1", seed=1, n=20000), _side("canary v2", seed=2, n=20000))
    by = {c.metric.key: c for c in v.comparisons}
    measured = [c for c in v.comparisons if c.status != "not_measured"]
    assert {c.status for c in measured} == {"no_difference"}
    assert "no difference that matters" in by["clip_mean"].sentence
    assert "less than 0.50)" in by["clip_mean"].sentence
    assert v.recommendation == "promote"


def test_verdict_with_too_little_data_asks_for_more() -> None:
    v = verdict(_side("stable v1", seed=1), _side("canary v2", seed=2, n=120, buckets=3))
    by = {c.metric.key: c for c in v.comparisons}
    assert v.recommendation == "not_enough_data"
    assert by["p95_ms"].sentence == (
        "P95 latency: not enough data (canary v2 has 120 of the 400 needed)."
    )
    assert "canary v2 has data in 3 of the 5 time buckets needed" in by["clip_mean"].sentence
    # 120 requests are enough to compute an error-rate interval, far too few to judge it.
    assert by["error_rate"].status == "inconclusive"
    assert v.summary == (
        "Verdict: not enough data — p95 latency, error rate, cost per image, CLIP score and"
        " NSFW rate cannot be judged yet; keep canary v2 running and look again."
    )


def test_a_wide_interval_is_inconclusive_not_a_pass() -> None:
    # 120 images a side in 6 buckets whose means spread ±3 points: the CLIP interval is
    # several points wide, so a change of 0.5 points can be neither shown nor ruled out.
    a = _side("stable v1", seed=1, n=120, buckets=6)
    spread = tuple((m * 20.0, 20.0) for m in (27.0, 33.0, 28.0, 32.0, 29.0, 31.0))
    b = replace(_side("canary v2", seed=2, n=120, buckets=6), clip=BucketSums(spread))
    c = compare_metric(CLIP, a, b)
    assert c.status == "inconclusive"
    assert "is not ruled out" in c.sentence
    assert compare_metric(P95, a, b).status == "not_enough_data"
