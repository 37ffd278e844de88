"""Parameter drift: sampler mix and cfg shifts are found, unchanged traffic is left alone."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from diffwatch.analytics.param_drift import _merged_table, parameter_drift


def _rows(
    n: int,
    rng: np.random.Generator,
    *,
    samplers: tuple[tuple[str, float], ...] = (("euler_a", 0.5), ("dpmpp_2m", 0.3), ("ddim", 0.2)),
    cfg_mean: float = 7.0,
    steps: tuple[int, ...] = (20, 25, 30),
) -> list[dict]:
    names = [s for s, _ in samplers]
    p = np.array([w for _, w in samplers])
    return [
        {
            "sampler": str(rng.choice(names, p=p / p.sum())),
            "steps": int(rng.choice(steps)),
            "cfg_scale": float(np.round(rng.normal(cfg_mean, 1.0), 1)),
            "width": 1024,
            "height": int(rng.choice([1024, 768])),
        }
        for _ in range(n)
    ]


def _by_name(tests: list) -> dict:
    return {t.parameter: t for t in tests}


def test_identical_distributions_are_not_flagged() -> None:
    rng = np.random.default_rng(0)
    tests = _by_name(parameter_drift(_rows(400, rng), _rows(400, rng)))
    assert set(tests) == {"sampler", "steps", "cfg_scale", "resolution"}
    assert not any(t.drifted for t in tests.values())
    assert tests["sampler"].test == "chi2" and tests["cfg_scale"].test == "ks"
    assert tests["steps"].test == "chi2"  # three distinct values: categorical
    assert all(t.alpha_corrected == pytest.approx(0.05 / 4) for t in tests.values())


def test_a_sampler_mix_change_is_detected() -> None:
    rng = np.random.default_rng(1)
    new_mix = (("euler_a", 0.2), ("dpmpp_2m", 0.6), ("ddim", 0.2))
    tests = _by_name(parameter_drift(_rows(400, rng), _rows(400, rng, samplers=new_mix)))
    s = tests["sampler"]
    assert s.drifted and s.p_value < 1e-6
    assert s.effect_size_name == "cramers_v" and 0.2 < s.effect_size < 0.5
    assert s.current_summary["dpmpp_2m"] > s.reference_summary["dpmpp_2m"] + 0.2
    assert not tests["cfg_scale"].drifted


def test_a_cfg_shift_is_detected() -> None:
    rng = np.random.default_rng(2)
    tests = _by_name(parameter_drift(_rows(300, rng), _rows(300, rng, cfg_mean=8.0)))
    c = tests["cfg_scale"]
    assert c.test == "ks" and c.effect_size_name == "ks_d"
    assert c.drifted and c.p_value < 1e-6
    assert c.effect_size == c.statistic and 0.25 < c.effect_size < 0.6
    assert c.current_summary["median"] == pytest.approx(8.0, abs=0.3)
    assert c.reference_summary["median"] == pytest.approx(7.0, abs=0.3)
    assert not tests["sampler"].drifted


def test_many_step_values_use_ks() -> None:
    rng = np.random.default_rng(3)
    ref = _rows(200, rng, steps=tuple(range(10, 50)))
    cur = _rows(200, rng, steps=tuple(range(30, 70)))
    s = _by_name(parameter_drift(ref, cur))["steps"]
    assert s.test == "ks" and s.drifted


def test_missing_values_are_a_category_and_an_absent_parameter_is_skipped() -> None:
    rng = np.random.default_rng(4)
    ref = _rows(300, rng)
    cur = _rows(300, rng)
    for r in cur[:150]:  # half the current traffic stopped logging its sampler
        r["sampler"] = None
    for r in ref + cur:
        r["cfg_scale"] = None  # nobody logs cfg
        r.pop("height")
    tests = _by_name(parameter_drift(ref, cur))
    assert set(tests) == {"sampler", "steps"}  # cfg_scale and resolution have no values
    s = tests["sampler"]
    assert s.drifted
    assert s.current_summary["(none)"] == pytest.approx(0.5)
    assert "(none)" not in s.reference_summary
    assert tests["steps"].alpha_corrected == pytest.approx(0.05 / 2)


def test_one_category_on_both_sides_gives_p_value_one() -> None:
    rows = [{"sampler": "euler", "steps": 30, "cfg_scale": 7.0, "width": 512, "height": 512}] * 50
    tests = _by_name(parameter_drift(rows, rows[:20]))
    for name in ("sampler", "steps", "resolution"):
        assert tests[name].p_value == 1.0 and tests[name].effect_size == 0.0
        assert not tests[name].drifted
    assert tests["cfg_scale"].p_value == pytest.approx(1.0)


def test_rare_categories_are_merged_and_summaries_are_capped() -> None:
    rng = np.random.default_rng(5)
    ref, cur = _rows(300, rng), _rows(300, rng)
    for i in range(6):  # twelve one-off samplers, six a side: far too rare for chi-square
        ref[i]["sampler"], cur[i]["sampler"] = f"custom_{i}", f"other_{i}"
    s = _by_name(parameter_drift(ref, cur))["sampler"]
    assert math.isfinite(s.statistic) and not s.drifted
    assert len(s.reference_summary) <= 9 and "(other)" in s.reference_summary
    assert sum(s.reference_summary.values()) == pytest.approx(1.0)
    table = _merged_table(Counter(r["sampler"] for r in ref), Counter(r["sampler"] for r in cur))
    assert table.shape == (2, 4)  # euler_a, dpmpp_2m, ddim and one merged column
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    assert expected.min() >= 5


def test_merging_folds_small_categories_until_the_merged_one_is_big_enough() -> None:
    # Expected counts need a pooled count >= 5·102/45 = 11.3: b and c together have 12.
    table = _merged_table(Counter(a=50, b=4, c=3), Counter(a=40, b=3, c=2))
    assert table.tolist() == [[50, 7], [40, 5]]
    table = _merged_table(Counter(a=50, b=12, c=1), Counter(a=50, b=12, c=1))
    assert table.tolist() == [[50, 13], [50, 13]]  # c alone (2 < 10) is too small: b joins


def test_to_dict_is_json_and_nan_becomes_none() -> None:
    rng = np.random.default_rng(6)
    ref, cur = _rows(50, rng), _rows(50, rng)
    ref[0]["cfg_scale"] = float("nan")  # pandas' missing value
    tests = parameter_drift(ref, cur)
    for t in tests:
        d = t.to_dict()
        assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert _by_name(tests)["cfg_scale"].n_reference == 49


def test_bad_values_name_the_row_and_the_key() -> None:
    rows = [{"sampler": "euler", "steps": 30}] * 10
    with pytest.raises(ValueError, match=r"current row 2: 'steps' must be an integer"):
        parameter_drift(rows, [*rows[:2], {"steps": "thirty"}])
    with pytest.raises(ValueError, match=r"reference row 0: 'sampler' must be a string"):
        parameter_drift([{"sampler": 3}], rows)
