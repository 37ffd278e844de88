"""MMD permutation test for prompt-embedding drift: detection, calibration, errors, speed."""

from __future__ import annotations

import functools
import json
import time

import numpy as np
import pytest

from diffwatch.analytics.prompt_drift import MIN_ROWS, mmd_test

DIM = 48
CLUSTERS = 6
ALPHA = 0.05
SPLITS = 40
# Binomial(40, 0.05): P(X <= 6) = 0.997, so a calibrated test exceeds 6/40 = 0.15 false
# positives less than 1 time in 300; 0.15 is the margin, not a licence for a loose test.
FPR_LIMIT = 0.15
BASE_WEIGHTS = np.full(CLUSTERS, 1 / CLUSTERS)


def _centres(seed: int = 7) -> np.ndarray:
    c = np.random.default_rng(seed).normal(size=(CLUSTERS, DIM))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _draw(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors from a mixture of Gaussian clusters on the sphere (like CLIP topics)."""
    labels = rng.choice(CLUSTERS, size=n, p=weights)
    x = _centres()[labels] + rng.normal(scale=0.12, size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _shifted(share: float) -> np.ndarray:
    """Cluster 0 raised to ``share``; the other clusters share the rest equally."""
    w = np.full(CLUSTERS, (1 - share) / (CLUSTERS - 1))
    w[0] = share
    return w


@functools.cache
def calibration(
    splits: int = SPLITS, n: int = 200, permutations: int = 200, shift: float = 0.35
) -> dict[str, float]:
    """False-positive rate over random halves of one pool, detection rate over shifted draws.

    Unshifted: one pool of 2n rows from the base mixture, split at random into two halves
    ``splits`` times. Shifted: ``splits`` fresh pairs, n rows from the base mixture against
    n rows where cluster 0 holds ``shift`` of the traffic instead of 1/6.
    """
    rng = np.random.default_rng(2026)
    pool = _draw(2 * n, BASE_WEIGHTS, rng)
    null = []
    for i in range(splits):
        order = rng.permutation(2 * n)
        null.append(mmd_test(pool[order[:n]], pool[order[n:]], permutations=permutations, seed=i))
    alt = [
        mmd_test(
            _draw(n, BASE_WEIGHTS, rng),
            _draw(n, _shifted(shift), rng),
            permutations=permutations,
            seed=i,
        )
        for i in range(splits)
    ]
    return {
        "fpr": float(np.mean([r.drifted for r in null])),
        "detection": float(np.mean([r.drifted for r in alt])),
        "null_auc": float(np.mean([r.effect_size for r in null])),
        "shift_auc": float(np.mean([r.effect_size for r in alt])),
        "splits": splits,
        "n": n,
        "permutations": permutations,
        "shift": shift,
    }


def test_calibration_figures_are_printed() -> None:
    c = calibration()
    print(
        f"\nFPR {c['fpr']:.3f} over {c['splits']} splits at alpha {ALPHA}; "
        f"detection {c['detection']:.3f} over {c['splits']} shifted splits "
        f"(n={c['n']} per side, dim {DIM}, {c['permutations']} permutations, cluster share "
        f"1/6 -> {c['shift']}); mean knn_auc null {c['null_auc']:.3f}, "
        f"shifted {c['shift_auc']:.3f}"
    )
    assert 0.0 <= c["fpr"] <= 1.0 and 0.0 <= c["detection"] <= 1.0


def test_false_positive_rate_over_unshifted_splits_is_near_alpha() -> None:
    assert calibration()["fpr"] <= FPR_LIMIT


def test_detection_rate_over_shifted_splits_is_high() -> None:
    assert calibration()["detection"] >= 0.9


def test_effect_size_reads_half_without_drift_and_more_with_it() -> None:
    c = calibration()
    assert abs(c["null_auc"] - 0.5) < 0.03
    assert c["shift_auc"] > c["null_auc"] + 0.05


def test_effect_size_is_corrected_for_chance_in_small_windows() -> None:
    # Leave-one-out biases the raw k-NN AUC of 20 + 20 rows to about 0.43 without drift.
    rng = np.random.default_rng(8)
    pool = _draw(40, BASE_WEIGHTS, rng)
    runs = []
    for i in range(60):
        order = rng.permutation(40)
        runs.append(mmd_test(pool[order[:20]], pool[order[20:]], permutations=100, seed=i))
    raw = np.mean([r.knn_auc_raw for r in runs])
    corrected = np.mean([r.effect_size for r in runs])
    assert raw < 0.47
    assert abs(corrected - 0.5) < 0.03


def test_a_grown_topic_is_detected_with_a_clear_effect_size() -> None:
    rng = np.random.default_rng(1)
    ref, cur = _draw(400, BASE_WEIGHTS, rng), _draw(400, _shifted(0.45), rng)
    r = mmd_test(ref, cur, permutations=300)
    assert r.drifted and r.p_value <= ALPHA
    assert r.p_value == pytest.approx(1 / 301)  # no permutation reached the observed MMD²
    assert r.effect_size > 0.6
    assert r.statistic > 0
    assert (r.n_reference, r.n_current, r.permutations) == (400, 400, 300)
    assert r.method == "mmd-rbf-permutation" and r.effect_size_name == "knn_auc"


def test_same_seed_gives_same_result_and_p_value_lies_in_0_1() -> None:
    rng = np.random.default_rng(3)
    ref, cur = _draw(150, BASE_WEIGHTS, rng), _draw(120, BASE_WEIGHTS, rng)
    a = mmd_test(ref, cur, permutations=199, seed=11)
    b = mmd_test(ref, cur, permutations=199, seed=11)
    assert a == b
    assert 0.0 < a.p_value <= 1.0
    # Identical windows: the observed split is as ordinary as any permutation.
    same = mmd_test(ref, ref.copy(), permutations=199)
    assert same.p_value > 0.5 and not same.drifted


def test_to_dict_is_plain_json() -> None:
    rng = np.random.default_rng(4)
    d = mmd_test(_draw(30, BASE_WEIGHTS, rng), _draw(30, BASE_WEIGHTS, rng)).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert all(type(v) in (str, int, float, bool) for v in d.values())


def test_large_windows_are_subsampled_per_side() -> None:
    rng = np.random.default_rng(5)
    r = mmd_test(
        _draw(300, BASE_WEIGHTS, rng), _draw(80, BASE_WEIGHTS, rng), max_samples=100, seed=1
    )
    assert (r.n_reference, r.n_current) == (100, 80)


@pytest.mark.parametrize(
    ("reference", "current", "fragment"),
    [
        (np.ones(10), np.ones((10, 4)), "reference must be a 2-D array"),
        (np.ones((10, 4)), np.ones((10, 5)), "width 4 but current has width 5"),
        (np.ones((10, 4)), np.ones((MIN_ROWS - 1, 4)), f"needs at least {MIN_ROWS} prompts"),
        (np.ones((10, 4)), np.full((10, 4), np.nan), "current has NaN or infinite values"),
        ([["a", "b"]] * 10, np.ones((10, 2)), "reference must be a numeric array"),
    ],
)
def test_bad_input_names_the_input_the_problem_and_the_fix(
    reference: object, current: object, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        mmd_test(reference, current)  # type: ignore[arg-type]
    assert ";" in str(info.value)  # the fix follows the problem


def test_bad_options_are_refused() -> None:
    x = np.eye(8)
    with pytest.raises(ValueError, match="permutations must be a positive integer"):
        mmd_test(x, x, permutations=0)
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
        mmd_test(x, x, alpha=1.5)


def test_2000_plus_2000_prompts_of_width_512_with_500_permutations_finish() -> None:
    rng = np.random.default_rng(6)
    ref = rng.normal(size=(2000, 512)).astype(np.float32)
    cur = rng.normal(size=(2000, 512)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cur /= np.linalg.norm(cur, axis=1, keepdims=True)
    start = time.perf_counter()
    r = mmd_test(ref, cur, permutations=500)
    elapsed = time.perf_counter() - start
    print(f"\nmmd_test 2000+2000 x 512, 500 permutations: {elapsed:.2f} s")
    assert (r.n_reference, r.n_current, r.permutations) == (2000, 2000, 500)
    assert 0.0 < r.p_value <= 1.0
