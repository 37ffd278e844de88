"""Release-gate statistics against hand computations, scipy, the CMMD reference, simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from diffwatch.analytics.gate_stats import (
    cmmd,
    cmmd_test,
    paired_diff,
    quantile_ms,
    ratio_of_medians,
    win_rate,
)


def _cmmd_by_loops(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> float:
    # Straight from the definition in google-research cmmd/distance.py: means of the full
    # kernel matrices (diagonals included), k(a, b) = exp(−‖a − b‖² / (2σ²)), × 1000.
    def k(a: list[float], b: list[float]) -> float:
        return math.exp(-sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) / (2 * sigma**2))

    xs, ys = x.tolist(), y.tolist()

    def mean_k(u: list[list[float]], v: list[list[float]]) -> float:
        return sum(k(a, b) for a in u for b in v) / (len(u) * len(v))

    return 1000 * (mean_k(xs, xs) + mean_k(ys, ys) - 2 * mean_k(xs, ys))


def test_cmmd_matches_a_direct_double_loop() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 6, size=(7, 5))
    y = rng.normal(2, 6, size=(7, 5))
    assert cmmd(x, y) == pytest.approx(_cmmd_by_loops(x, y), rel=1e-12)
    assert cmmd(x, y, sigma=3.0, scale=1.0) == pytest.approx(
        _cmmd_by_loops(x, y, sigma=3.0) / 1000, rel=1e-12
    )


def test_cmmd_of_one_point_each_by_hand() -> None:
    # n = 1: k_xx = k_yy = 1 and k_xy = exp(−10² / (2·10²)) = exp(−0.5); the biased
    # estimator keeps the diagonal, so CMMD = 1000 · (2 − 2·exp(−0.5)) = 786.9387.
    assert cmmd(np.array([[0.0]]), np.array([[10.0]])) == pytest.approx(786.9387, abs=1e-4)


def test_cmmd_is_zero_for_identical_sets_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 5, size=(60, 16))
    assert cmmd(x, x.copy()) == pytest.approx(0.0, abs=1e-12)
    values = [cmmd(x, x + shift) for shift in (0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values)
    assert values[0] > 0
    y = rng.normal(1, 5, size=(60, 16))
    assert cmmd(x, y) == pytest.approx(cmmd(y, x), rel=1e-12)


@pytest.mark.parametrize(
    ("x", "y", "needle"),
    [
        (np.zeros((3, 4)), np.zeros((4, 4)), "equal sets"),
        (np.zeros((0, 4)), np.zeros((0, 4)), "images on both sides"),
        (np.zeros((3, 4)), np.zeros((3, 5)), "widths differ"),
        (np.zeros(3), np.zeros(3), "2-D"),
        (np.full((2, 2), np.nan), np.zeros((2, 2)), "NaN"),
    ],
)
def test_cmmd_rejects_sets_it_cannot_compare(x: np.ndarray, y: np.ndarray, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        cmmd(x, y)
    with pytest.raises(ValueError, match=needle):
        cmmd_test(x, y)


def test_cmmd_test_of_identical_sets_is_zero_with_p_one() -> None:
    x = np.random.default_rng(3).normal(0, 5, size=(30, 8))
    r = cmmd_test(x, x.copy(), permutations=200, draws=200)
    assert (r.estimate, r.low, r.high) == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)
    assert r.p_value == 1.0
    assert r.permutations == 200


def test_cmmd_test_estimate_is_cmmd_and_is_reproducible() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(0, 4, size=(25, 6)), rng.normal(0.5, 4, size=(25, 6))
    r = cmmd_test(x, y, permutations=300, draws=300)
    assert r.estimate == pytest.approx(cmmd(x, y), rel=1e-12)
    assert r.low <= r.estimate <= r.high
    assert cmmd_test(x, y, permutations=300, draws=300) == r
    assert cmmd_test(x, y, permutations=300, draws=300, seed=5) != r


def test_cmmd_test_p_values_are_calibrated_under_the_null() -> None:
    # Both sides drawn from one distribution: the swap of a pair's sides is exact under the
    # null, so about 5% of p-values fall below 0.05 (10 of 200; binomial sd ≈ 3).
    rng = np.random.default_rng(6)
    p = np.array(
        [
            cmmd_test(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), sigma=4.0, seed=i).p_value
            for i in range(200)
        ]
    )
    assert 0.01 <= np.mean(p < 0.05) <= 0.10
    assert 0.35 <= np.mean(p) <= 0.65  # uniform p-values average ½


def test_cmmd_test_detects_a_clear_shift() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(40, 8)), rng.normal(1.0, 1.0, size=(40, 8))
    r = cmmd_test(x, y, sigma=4.0)
    assert r.p_value < 0.01
    assert r.low > 0
    # No permutation beats the observed value, and the observed one counts: p = 1/(1 + 99).
    assert cmmd_test(x, y, sigma=4.0, permutations=99).p_value == pytest.approx(0.01)


def test_cmmd_test_uses_the_pairing() -> None:
    # A small shift within each pair, against a large spread between pairs: the paired
    # test sees it; with the pairs broken (same two sets, same CMMD) it cannot.
    rng = np.random.default_rng(8)
    x = rng.normal(0, 3, size=(40, 8))
    y = x + 0.3 + rng.normal(0, 0.05, size=(40, 8))
    paired = cmmd_test(x, y)
    broken = cmmd_test(x, y[rng.permutation(40)])
    assert broken.estimate == pytest.approx(paired.estimate, rel=1e-9)
    assert paired.p_value < 0.01
    assert broken.p_value > 0.05


def _population_cmmd(shift: float, noise: float, d: int, sigma: float) -> float:
    # x ~ N(0, I), y ~ N(shift, (1 + noise²) I): for a − b ~ N(m, s²I),
    # E exp(−‖a − b‖² / 2σ²) = (σ² / (σ² + s²))^(d/2) · exp(−‖m‖² / 2(σ² + s²)).
    def mean_k(m2: float, s2: float) -> float:
        return (sigma**2 / (sigma**2 + s2)) ** (d / 2) * math.exp(-m2 / (2 * (sigma**2 + s2)))

    vy = 1 + noise**2
    return 1000 * (mean_k(0, 2) + mean_k(0, 2 * vy) - 2 * mean_k(d * shift**2, 1 + vy))


@pytest.mark.parametrize("shift", [0.0, 0.15, 1.0])
def test_cmmd_test_interval_covers_the_population_cmmd(shift: float) -> None:
    # Pairs y = x + shift + noise. Plain bootstrap percentiles of the biased estimator
    # covered the true value 0%, 67% and 84% of the time here; 95% is the goal.
    true = _population_cmmd(shift, 0.3, 8, 4.0)
    rng = np.random.default_rng(11)
    hits = 0
    for i in range(200):
        x = rng.normal(size=(40, 8))
        y = x + shift + rng.normal(0, 0.3, size=(40, 8))
        r = cmmd_test(x, y, sigma=4.0, permutations=1, seed=i)
        hits += r.low <= true <= r.high
    assert 0.90 <= hits / 200 <= 1.0


@pytest.mark.parametrize("level", [0.95, 0.90])
def test_paired_diff_matches_scipy_ttest_rel(level: float) -> None:
    rng = np.random.default_rng(9)
    base = rng.normal(0.30, 0.05, 25)
    cand = base + rng.normal(0.01, 0.02, 25)
    ci = paired_diff(cand.tolist(), base.tolist(), level)
    ref = stats.ttest_rel(cand, base).confidence_interval(level)
    assert ci.estimate == pytest.approx(float(np.mean(cand - base)), rel=1e-12)
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), rel=1e-10)
    assert ci.level == level


def test_paired_diff_with_no_spread_collapses_to_the_point() -> None:
    ci = paired_diff([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
    assert (ci.estimate, ci.low, ci.high) == (2.0, 2.0, 2.0)


@pytest.mark.parametrize(
    ("candidate", "baseline", "needle"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "one baseline score per candidate"),
        ([1.0], [2.0], "at least 2 pairs"),
        ([1.0, float("nan")], [2.0, 1.0], "pair 1"),
    ],
)
def test_paired_diff_rejects_bad_pairs(
    candidate: list[float], baseline: list[float], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        paired_diff(candidate, baseline)


def _wilson_by_hand(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    # Wilson (1927): (p + z²/2n ± z·sqrt(p(1 − p)/n + z²/4n²)) / (1 + z²/n).
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_win_rate_counts_a_tie_as_half_a_win() -> None:
    # Pairs: win, tie, loss, tie → 1 + ½·2 = 2 of 4.
    ci = win_rate([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 5.0, 4.0])
    assert ci.estimate == 0.5
    assert (ci.low, ci.high) == pytest.approx(_wilson_by_hand(0.5, 4), rel=1e-12)


def test_win_rate_tie_tolerance_turns_near_wins_into_ties() -> None:
    cand, base = [1.0, 2.05, 3.0], [0.99, 2.0, 2.0]
    assert win_rate(cand, base).estimate == 1.0
    ci = win_rate(cand, base, tie_tol=0.1)  # 1 win + 2 ties → 2 of 3
    assert ci.estimate == pytest.approx(2 / 3)
    assert (ci.low, ci.high) == pytest.approx(_wilson_by_hand(2 / 3, 3), rel=1e-12)
    with pytest.raises(ValueError, match="tie_tol"):
        win_rate(cand, base, tie_tol=-1.0)
    with pytest.raises(ValueError, match="one baseline score per candidate"):
        win_rate(cand, base[:2])


def test_ratio_of_medians_on_known_data() -> None:
    ci = ratio_of_medians([110.0, 120.0, 130.0, 500.0, 125.0], [100.0, 98.0, 102.0, 95.0, 400.0])
    assert ci.estimate == pytest.approx(125.0 / 100.0)
    assert ci.low <= ci.estimate <= ci.high
    flat = ratio_of_medians([200.0] * 10, [100.0] * 12)
    assert (flat.estimate, flat.low, flat.high) == (2.0, 2.0, 2.0)
    assert ratio_of_medians([1.0, 3.0, 2.0], [1.0, 2.0]) == ratio_of_medians(
        [1.0, 3.0, 2.0], [1.0, 2.0]
    )


def test_ratio_of_medians_covers_the_true_ratio() -> None:
    # Log-normal latencies: the median is exp(μ), so the true ratio is exp(0.2).
    rng = np.random.default_rng(10)
    hits = 0
    for i in range(200):
        cand = rng.lognormal(math.log(100) + 0.2, 0.5, 150)
        base = rng.lognormal(math.log(100), 0.5, 120)
        ci = ratio_of_medians(cand.tolist(), base.tolist(), draws=500, seed=i)
        hits += ci.low <= math.exp(0.2) <= ci.high
    assert 0.90 <= hits / 200 <= 0.99


@pytest.mark.parametrize(
    ("candidate", "baseline", "needle"),
    [
        ([], [1.0], "candidate latencies"),
        ([1.0], [], "baseline latencies"),
        ([1.0], [0.0, 0.0, 5.0], "must be positive"),
    ],
)
def test_ratio_of_medians_rejects_bad_samples(
    candidate: list[float], baseline: list[float], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        ratio_of_medians(candidate, baseline)


def test_quantile_ms_interpolates_linearly() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert quantile_ms(values, 0.5) == 25.0
    assert quantile_ms(values, 0.95) == pytest.approx(38.5)  # rank 2.85: 30 + 0.85 · 10
    assert (quantile_ms(values, 0.0), quantile_ms(values, 1.0)) == (10.0, 40.0)
    with pytest.raises(ValueError, match="q must lie"):
        quantile_ms(values, 95)
    with pytest.raises(ValueError, match="at least one value"):
        quantile_ms([], 0.5)


def test_paired_ratio_cancels_load_shared_by_a_round_and_brackets_the_median() -> None:
    from diffwatch.analytics.gate_stats import paired_ratio

    load = np.array([1, 5, 1, 9, 1, 1, 3, 1, 1, 7], dtype=float)  # bursts hit both calls
    base = 100.0 * load
    cand = 150.0 * load
    r = paired_ratio(cand, base)
    assert r.estimate == pytest.approx(1.5) and r.low == pytest.approx(1.5)
    assert r.high == pytest.approx(1.5)
    # a ratio of the two medians would not cancel when bursts fall unevenly; this does
    noisy = paired_ratio(cand * np.linspace(0.9, 1.1, 10), base)
    assert noisy.low <= 1.5 <= noisy.high and noisy.low >= 1.35 and noisy.high <= 1.65
    with pytest.raises(ValueError, match="one baseline call per candidate call"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        paired_ratio([1.0, 2.0], [1.0, 0.0])
