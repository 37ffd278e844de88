"""Image-embedding drift: CMMD of two windows, its permutation test, the paired test, what moved,
and the attribution to the model or the traffic."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from diffwatch.analytics import image_drift as idr
from diffwatch.analytics.gate_stats import cmmd, cmmd_test
from diffwatch.analytics.image_drift import (
    BOTH_CHANGED,
    MODEL_CHANGED,
    NO_CHANGE,
    TRAFFIC_CHANGED,
    ImageDriftResult,
    NumpyBackend,
    attribute,
    clusters_moved,
    cmmd_unpaired,
    image_drift_test,
    paired_image_drift_test,
)
from diffwatch.analytics.prompt_drift import mmd_test, permutation_weights


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _around(direction: np.ndarray, n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors scattered around a unit direction (spread: noise per coordinate)."""
    return _unit(direction + spread * rng.standard_normal((n, direction.size)))


def _random_unit(n: int, width: int, rng: np.random.Generator) -> np.ndarray:
    return _unit(rng.standard_normal((n, width)))


def _fire_bound(trials: int, alpha: float) -> int:
    """Smallest count c with P(Binomial(trials, alpha) >= c) < 0.01."""
    c = 0
    while stats.binom.sf(c - 1, trials, alpha) >= 0.01:
        c += 1
    return c


# --- CMMD ---------------------------------------------------------------------------------


def _double_loop_cmmd(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> float:
        d2 = sum((float(p) - float(q)) ** 2 for p, q in zip(a, b, strict=True))
        return math.exp(-d2 / (2 * sigma**2))

    xx = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    yy = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    xy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return 1000.0 * (xx + yy - 2 * xy)


@pytest.mark.parametrize("sigma", [10.0, 1.5])
def test_cmmd_of_unpaired_sets_is_the_double_loop_definition(sigma: float) -> None:
    rng = np.random.default_rng(3)
    x = 2.0 * rng.standard_normal((7, 5))
    y = 2.0 * rng.standard_normal((11, 5)) + 0.7
    expected = _double_loop_cmmd(x, y, sigma)
    assert expected > 0
    assert cmmd_unpaired(x, y, sigma=sigma) == pytest.approx(expected, rel=1e-9)
    res = image_drift_test(x, y, permutations=20, sigma=sigma)
    assert res.cmmd == pytest.approx(expected, rel=1e-9)
    assert (res.n_reference, res.n_current, res.sigma) == (7, 11, sigma)


def test_cmmd_of_equal_sizes_is_the_gate_cmmd_whatever_the_pairing() -> None:
    """Both are the V-statistic over the full kernel matrices: the pairing does not enter it."""
    rng = np.random.default_rng(4)
    x, y = _random_unit(40, 32, rng), _around(np.eye(32)[0], 40, 0.3, rng)
    ours = cmmd_unpaired(x, y)
    assert ours == pytest.approx(cmmd(x, y), rel=1e-10)
    assert ours == pytest.approx(cmmd(x, y[rng.permutation(40)]), rel=1e-10)


def test_float32_permutation_statistics_match_float64() -> None:
    """The float32 kernel path gives every split's MMD² to ~1e-6 of the null's spread."""
    rng = np.random.default_rng(5)
    x, y = _random_unit(150, 64, rng), _random_unit(130, 64, rng)
    pooled = np.concatenate([x, y])
    weights = permutation_weights(150, 130, 50, rng)
    got, _ = idr._split_statistics(pooled, weights, 10.0, NumpyBackend())
    kernel = np.exp(-idr.squared_distances(pooled, pooled) / 200.0)
    v = weights / 150 - (1 - weights) / 130
    exact = np.einsum("ij,ij->j", v, kernel @ v)
    assert np.max(np.abs(got - exact)) < 1e-4 * np.ptp(exact)
    assert got[0] * 1000 == pytest.approx(cmmd_unpaired(x, y), rel=1e-4)


# --- the unpaired test ----------------------------------------------------------------------


def test_a_planted_shift_drifts_with_a_clear_effect() -> None:
    rng = np.random.default_rng(6)
    width = 64
    a, b = np.eye(width)[0], (np.eye(width)[0] + np.eye(width)[1]) / math.sqrt(2)
    ref, cur = _around(a, 150, 0.15, rng), _around(b, 120, 0.15, rng)
    res = image_drift_test(ref, cur, permutations=99, seed=1)
    assert res.drifted and res.p_value == pytest.approx(1 / 100)
    assert res.effect_size > 0.8 and res.effect_size_name == "knn_auc"
    assert res.cmmd > 1.0  # the two windows' CMMD, × 1000
    assert res.method == idr.METHOD and res.scope == "all"
    assert json.loads(json.dumps(res.to_dict())) == res.to_dict()


def test_no_shift_gives_no_effect_and_identical_windows_give_p_one() -> None:
    rng = np.random.default_rng(7)
    pool = _random_unit(300, 32, rng)
    res = image_drift_test(pool[:150], pool[150:], permutations=99)
    assert abs(res.effect_size - 0.5) < 0.1
    same = image_drift_test(pool[:40], pool[:40], permutations=99)
    assert same.p_value == 1.0 and not same.drifted
    assert same.cmmd == pytest.approx(0.0, abs=1e-9)
    # Repeated rows make many relabellings tie the observed split exactly: ties count.
    repeated = np.repeat(pool[:3], 2, axis=0)
    assert image_drift_test(repeated, repeated, permutations=99).p_value == 1.0


def test_false_positive_rate_stays_within_the_binomial_bound() -> None:
    """Random halves of one sample: at α = 0.05 the test may fire only about 5 % of the time."""
    trials, alpha = 60, 0.05
    fires = 0
    for i in range(trials):
        rng = np.random.default_rng(1000 + i)
        sample = _around(np.eye(16)[0], 40, 0.5, rng)
        half = rng.permutation(40)
        res = image_drift_test(
            sample[half[:20]], sample[half[20:]], permutations=99, alpha=alpha, seed=i
        )
        fires += res.drifted
    assert fires < _fire_bound(trials, alpha), f"{fires} of {trials} fired at α = {alpha}"


def test_effect_size_is_prompt_drifts_knn_auc() -> None:
    """Same rows, same seed: the same relabellings and the same neighbours, so the same AUC."""
    rng = np.random.default_rng(8)
    ref, cur = _random_unit(60, 24, rng), _around(np.eye(24)[2], 50, 0.4, rng)
    ours = image_drift_test(ref, cur, permutations=150, seed=3)
    theirs = mmd_test(ref, cur, permutations=150, seed=3)
    assert ours.effect_size == theirs.effect_size
    assert (ours.knn_auc_raw, ours.knn_auc_null, ours.knn) == (
        theirs.knn_auc_raw,
        theirs.knn_auc_null,
        theirs.knn,
    )


def test_subsampling_is_seeded_and_capped() -> None:
    rng = np.random.default_rng(9)
    ref, cur = _random_unit(80, 16, rng), _random_unit(30, 16, rng)
    a = image_drift_test(ref, cur, permutations=30, max_samples=25, seed=2)
    b = image_drift_test(ref, cur, permutations=30, max_samples=25, seed=2)
    assert (a.n_reference, a.n_current) == (25, 25)
    assert a == b
    assert image_drift_test(ref, cur, permutations=30, max_samples=None).n_reference == 80


def test_torch_backend_on_cpu_matches_numpy() -> None:
    pytest.importorskip("torch")
    from diffwatch.drift.image_backend import TorchBackend

    rng = np.random.default_rng(10)
    ref, cur = _random_unit(90, 48, rng), _around(np.eye(48)[0], 70, 0.6, rng)
    pooled = np.concatenate([ref, cur])
    torch_backend, numpy_backend = TorchBackend("cpu"), NumpyBackend()
    k_torch = torch_backend.rbf_kernel(pooled, 10.0)
    k_numpy = numpy_backend.rbf_kernel(pooled, 10.0)
    assert k_torch.dtype == k_numpy.dtype == np.float32
    np.testing.assert_allclose(k_torch, k_numpy, rtol=1e-5, atol=1e-9)
    weights = permutation_weights(90, 70, 40, rng)
    np.testing.assert_allclose(
        torch_backend.quadratic_forms(k_numpy, weights),
        numpy_backend.quadratic_forms(k_numpy, weights),
        rtol=1e-5,
    )
    a = image_drift_test(ref, cur, permutations=99, backend=torch_backend)
    b = image_drift_test(ref, cur, permutations=99, backend=numpy_backend)
    assert a.cmmd == pytest.approx(b.cmmd, rel=1e-5)
    assert (a.p_value, a.effect_size, a.drifted) == (b.p_value, b.effect_size, b.drifted)


def test_torch_backend_refuses_a_gpu_it_does_not_have() -> None:
    from diffwatch.drift.image_backend import TorchBackend

    # No machine has a hundredth GPU: refused with or without CUDA, each with its reason.
    with pytest.raises(ValueError, match=r"no CUDA device here|sees \d+ CUDA device"):
        TorchBackend("cuda:99")


@pytest.mark.gpu
def test_torch_backend_on_cuda_matches_numpy() -> None:
    from diffwatch.drift.image_backend import TorchBackend

    rng = np.random.default_rng(11)
    ref, cur = _random_unit(400, 64, rng), _around(np.eye(64)[0], 300, 0.6, rng)
    a = image_drift_test(ref, cur, permutations=199, backend=TorchBackend("cuda"))
    b = image_drift_test(ref, cur, permutations=199)
    assert a.cmmd == pytest.approx(b.cmmd, rel=1e-5)
    assert (a.p_value, a.effect_size) == (b.p_value, b.effect_size)


# --- the paired test ------------------------------------------------------------------------


def test_paired_test_finds_a_per_pair_shift() -> None:
    rng = np.random.default_rng(12)
    ref = _random_unit(60, 32, rng)
    cur = _unit(ref + 0.25 * np.eye(32)[0] + 0.05 * rng.standard_normal(ref.shape))
    res = paired_image_drift_test(ref, cur, permutations=199, seed=4)
    assert res.drifted and res.p_value == pytest.approx(1 / 200)
    assert res.effect_size > 0.6
    assert res.method == idr.PAIRED_METHOD and (res.n_reference, res.n_current) == (60, 60)
    gate = cmmd_test(ref, cur, permutations=199, seed=4)
    assert (res.cmmd, res.p_value) == (pytest.approx(gate.estimate, rel=1e-12), gate.p_value)


def test_paired_test_keeps_its_false_positive_rate() -> None:
    """Each pair's two sides from one distribution (and close to each other, as a re-render
    of the same prompt and seed is): fires stay within the binomial bound at α = 0.05."""
    trials, alpha = 50, 0.05
    fires, effects = 0, []
    for i in range(trials):
        rng = np.random.default_rng(2000 + i)
        base = _random_unit(25, 16, rng)
        ref = _unit(base + 0.3 * rng.standard_normal(base.shape))
        cur = _unit(base + 0.3 * rng.standard_normal(base.shape))
        res = paired_image_drift_test(ref, cur, permutations=99, alpha=alpha, seed=i)
        fires += res.drifted
        effects.append(res.effect_size)
    assert fires < _fire_bound(trials, alpha), f"{fires} of {trials} fired at α = {alpha}"
    assert abs(float(np.mean(effects)) - 0.5) < 0.03  # chance-corrected: no effect is 0.5


# --- what moved -----------------------------------------------------------------------------


def test_a_planted_cluster_is_the_top_move_with_its_own_examples() -> None:
    rng = np.random.default_rng(13)
    width = 32
    centres = np.eye(width)[:4]
    ref = np.concatenate([_around(c, 100, 0.05, rng) for c in centres[:3]])
    cur = np.concatenate(
        [_around(c, 60, 0.05, rng) for c in centres[:3]] + [_around(centres[3], 120, 0.05, rng)]
    )
    ref_ids = np.arange(300) + 10_000
    cur_ids = np.arange(300) + 20_000
    planted = set(cur_ids[180:].tolist())
    moves = clusters_moved(ref, cur, ref_ids, cur_ids, k=4, seed=1)
    top = moves[0]
    assert top.delta == pytest.approx(0.4) and top.share_reference == 0.0
    assert (top.size_reference, top.size_current) == (0, 120)
    assert top.examples_from == "current" and len(top.example_ids) == 4
    assert set(top.example_ids) <= planted
    assert all(isinstance(i, int) for i in top.example_ids)
    deltas = [abs(m.delta) for m in moves]
    assert deltas == sorted(deltas, reverse=True)
    for shrunk in moves[1:]:  # the old clusters shrank from 1/3 to 1/5: reference examples
        assert shrunk.delta == pytest.approx(0.2 - 1 / 3)
        assert shrunk.examples_from == "reference"
        assert all(10_000 <= i < 10_300 for i in shrunk.example_ids)
    assert sum(m.share_current for m in moves) == pytest.approx(1.0)
    assert json.loads(json.dumps(top.to_dict()))["example_ids"] == list(top.example_ids)


def test_clusters_moved_subsamples_with_the_ids() -> None:
    rng = np.random.default_rng(14)
    ref, cur = _random_unit(50, 8, rng), _random_unit(40, 8, rng)
    moves = clusters_moved(ref, cur, range(50), range(100, 140), k=3, max_samples=20, examples=50)
    assert sum(m.size_reference for m in moves) == 20
    assert sum(m.size_current for m in moves) == 20
    for m in moves:
        side = range(100, 140) if m.examples_from == "current" else range(50)
        assert set(m.example_ids) <= set(side)


# --- attribution ----------------------------------------------------------------------------


def _result(p: float, scope: str = "x", alpha: float = 0.05) -> ImageDriftResult:
    return ImageDriftResult(
        scope=scope, method=idr.METHOD, n_reference=100, n_current=100, cmmd=0.1,
        p_value=p, alpha=alpha, drifted=p <= alpha, effect_size=0.5,
        effect_size_name="knn_auc", permutations=200, seed=0, sigma=10.0, knn=10,
        knn_auc_raw=0.5, knn_auc_null=0.5,
    )  # fmt: skip


DRIFT, STILL = _result(0.005), _result(0.6)


@pytest.mark.parametrize(
    ("overall", "per_version", "same_prompts", "expected"),
    [
        (STILL, [STILL, STILL], [STILL], NO_CHANGE),
        (None, [], [], NO_CHANGE),
        (DRIFT, [STILL], [DRIFT], MODEL_CHANGED),  # same prompts render differently
        (STILL, [STILL], [DRIFT], MODEL_CHANGED),
        (DRIFT, [DRIFT, STILL], [STILL], TRAFFIC_CHANGED),  # one version's own images moved
        (STILL, [DRIFT], [], TRAFFIC_CHANGED),  # pooled test missed a one-version shift
        (DRIFT, [STILL, STILL], [STILL], TRAFFIC_CHANGED),  # only the pooled test sees it
        (DRIFT, [], [], TRAFFIC_CHANGED),
        (DRIFT, [DRIFT], [DRIFT], BOTH_CHANGED),
        (None, [STILL, DRIFT], [STILL, DRIFT], BOTH_CHANGED),
    ],
)
def test_attribute_branches(overall, per_version, same_prompts, expected) -> None:
    assert attribute(overall, per_version, same_prompts) == expected


def test_attribute_corrects_for_many_versions() -> None:
    """p = 0.03 in one of ten versions is what chance gives; p = 0.003 is not (0.05 / 10)."""
    marginal = [STILL] * 9 + [_result(0.03)]
    assert marginal[-1].drifted
    assert attribute(STILL, marginal, []) == NO_CHANGE
    assert attribute(STILL, [STILL] * 9 + [_result(0.003)], []) == TRAFFIC_CHANGED
    assert attribute(STILL, [], [STILL, _result(0.03)]) == NO_CHANGE
    assert attribute(STILL, [], [STILL, _result(0.02)]) == MODEL_CHANGED


def test_attribute_rejects_what_is_not_a_result() -> None:
    with pytest.raises(ValueError, match="per_version must be a sequence of ImageDriftResult"):
        attribute(None, DRIFT, [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overall must be an ImageDriftResult or None"):
        attribute({"p_value": 0.01}, [], [])  # type: ignore[arg-type]
    assert replace(DRIFT, scope="v2").scope == "v2"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: image_drift_test(x[:1], x), r"reference has 1 images, .* at least 2"),
        (lambda x: image_drift_test(x, x[:, :4]), r"width 8 but current has width 4; embed both"),
        (
            lambda x: image_drift_test(x, np.where(x == x[3, 1], np.inf, x)),
            r"current has NaN .* in 1 rows \(rows 3\)",
        ),
        (lambda x: image_drift_test(x[0], x), r"reference must be a 2-D array"),
        (lambda x: image_drift_test([["a"]], x), r"reference must be a numeric array"),
        (lambda x: image_drift_test(x, x, permutations=0), r"permutations must be a positive"),
        (lambda x: image_drift_test(x, x, alpha=1.0), r"alpha must lie strictly between"),
        (lambda x: image_drift_test(x, x, sigma=0.0), r"sigma must be a positive RBF bandwidth"),
        (lambda x: image_drift_test(x, x, max_samples=1), r"max_samples must be None or an"),
        (lambda x: paired_image_drift_test(x, x[:5]), r"one current image per reference image"),
        (lambda x: paired_image_drift_test(x[:1], x[:1]), r"at least 2"),
        (lambda x: clusters_moved(x, x, [1, 2], range(10)), r"reference_ids has 2 entries"),
        (lambda x: clusters_moved(x, x, ["a"] * 10, range(10)), r"integer generation ids"),
        (lambda x: clusters_moved(x, x, range(10), range(10), k=0), r"k must be a positive"),
        (lambda x: cmmd_unpaired(x, x, sigma=float("nan")), r"sigma must be a positive"),
    ],
)
def test_errors_name_the_input_and_the_fix(call, message) -> None:
    x = _random_unit(10, 8, np.random.default_rng(15))
    with pytest.raises(ValueError, match=message):
        call(x)
