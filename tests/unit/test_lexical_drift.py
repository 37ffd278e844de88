"""The lexical (TF-IDF) prompt-drift test on public prompt sets: calibrated over null splits,
powerful on topical and style shifts, its statistic and effect size what the docs say, and
clear errors. The figures are printed (pytest -s)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from scipy.stats import binom

from diffwatch.analytics.lexical_drift import lexical_test, tfidf_vectors
from diffwatch.analytics.prompt_drift import MIN_ROWS
from tests.public_prompts import mix_split, null_split, partiprompts, suffix_split, tifa

ALPHA = 0.05
NULL_SPLITS = 100
# A calibrated test exceeds the 0.999 quantile of Binomial(splits, alpha) 1 time in 1000.
FPR_LIMIT = binom.ppf(0.999, NULL_SPLITS, ALPHA) / NULL_SPLITS  # 13/100


def _rates(make, splits: int, n: int, permutations: int = 100) -> tuple[float, float]:
    """(share of splits flagged at ALPHA, mean effect size) over seeded splits."""
    rng = np.random.default_rng(2026)
    flagged, effects = [], []
    for i in range(splits):
        reference, current = make(rng, n)
        r = lexical_test(reference, current, permutations=permutations, seed=i, alpha=ALPHA)
        flagged.append(r.drifted)
        effects.append(r.effect_size)
    return float(np.mean(flagged)), float(np.mean(effects))


@functools.cache
def figures() -> dict[str, tuple[float, float]]:
    parti, tifa_set = partiprompts(), tifa()
    return {
        "null PartiPrompts": _rates(lambda g, n: null_split(parti.prompts, n, g), NULL_SPLITS, 80),
        "null TIFA": _rates(lambda g, n: null_split(tifa_set.prompts, n, g), NULL_SPLITS, 80),
        "People 11% -> 50%": _rates(
            lambda g, n: mix_split(parti, "category", {"People": 0.5}, n, g), 40, 150
        ),
        "style suffix on 20%": _rates(lambda g, n: suffix_split(parti.prompts, n, 0.2, g), 40, 100),
    }


def test_figures_are_printed() -> None:
    for name, (rate, effect) in figures().items():
        print(
            f"\nlexical test, {name}: flagged {rate:.3f} at alpha {ALPHA}, mean effect {effect:.3f}"
        )


@pytest.mark.parametrize("name", ["null PartiPrompts", "null TIFA"])
def test_false_positive_rate_over_null_splits_of_public_sets_is_within_the_binomial_bound(
    name: str,
) -> None:
    rate, effect = figures()[name]
    assert rate <= FPR_LIMIT
    assert abs(effect - 0.5) < 0.03  # the chance-corrected effect size reads "no difference"


def test_a_topical_category_shift_is_detected() -> None:
    rate, effect = figures()["People 11% -> 50%"]
    assert rate >= 0.85
    assert effect > 0.58


def test_a_style_suffix_on_a_fifth_of_the_prompts_is_detected() -> None:
    rate, effect = figures()["style suffix on 20%"]
    assert rate >= 0.7
    assert effect > 0.55


def test_statistic_is_the_unbiased_squared_distance_between_the_mean_tfidf_vectors() -> None:
    reference = ["red fox in snow", "red fox at dusk", "grey wolf in snow", "snow owl", "fox den"]
    current = ["neon city street", "neon sign at night", "city at night", "red neon", "rain"]
    r = lexical_test(reference, current, permutations=50)
    t = tfidf_vectors(reference + current)[0].toarray()
    k = t @ t.T
    np.fill_diagonal(k, 0.0)
    n = m = 5
    within_r, within_c, cross = k[:n, :n].sum(), k[n:, n:].sum(), k[:n, n:].sum()
    expected = within_r / (n * (n - 1)) + within_c / (m * (m - 1)) - 2 * cross / (n * m)
    assert r.statistic == pytest.approx(expected)
    assert r.terms == len({w for p in reference + current for w in p.split()} - {"in", "at"})
    # Rows are unit vectors (TF-IDF, L2-normalised).
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0)


def test_same_seed_same_result_and_plain_json() -> None:
    ref, cur = null_split(partiprompts().prompts, 40, np.random.default_rng(1))
    a = lexical_test(ref, cur, permutations=99, seed=4)
    assert a == lexical_test(ref, cur, permutations=99, seed=4)
    d = a.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["method"] == "tfidf-cosine-mmd-permutation" and d["effect_size_name"] == "centroid_auc"
    assert 0.0 < a.p_value <= 1.0


def test_prompts_without_words_weigh_nothing_and_do_not_break_the_test() -> None:
    r = lexical_test(["a", "the", "42", "!!", "of"] * 2, ["an", "7", "...", "it", "is"] * 2)
    assert r.empty_prompts == 20 and r.terms == 0
    assert r.p_value == 1.0 and not r.drifted and r.effect_size == pytest.approx(0.5)


def test_large_windows_are_subsampled_per_side() -> None:
    ref, cur = null_split(partiprompts().prompts, 300, np.random.default_rng(2))
    r = lexical_test(ref, cur[:60], max_samples=100, permutations=50)
    assert (r.n_reference, r.n_current) == (100, 60)


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("a single string", "reference must be a sequence of prompt strings"),
        (["ok"] * 5 + [3], "reference has 1 items that are not strings"),
        (["ok"] * (MIN_ROWS - 1), f"needs at least {MIN_ROWS}"),
    ],
)
def test_bad_input_names_the_input_the_problem_and_the_fix(reference, fragment) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        lexical_test(reference, ["fine prompt"] * 10)
    assert ";" in str(info.value)
