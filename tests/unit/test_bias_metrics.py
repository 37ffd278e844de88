"""Bias metrics against two published tables of counts, hand computation and properties.

Published tables (provenance and licences in tests/data/bias/README.md):
- Friedrich et al., "Fair Diffusion" (AI and Ethics 2025; arXiv 2302.10893): perceived
  gender (FairFace) of 250 Stable Diffusion 1.5 images and of the LAION-5B images of each of
  153 occupations, with the aggregates printed in the authors' evaluate_images.ipynb.
- Kay, Matuszek and Munson, "Unequal representation and gender stereotypes in image search
  results for occupations" (CHI 2015): women and men among the top Google image results of
  45 occupations, with the null deviance of the paper's regression model.
"""

from __future__ import annotations

import csv
import json
import math
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from diffwatch.analytics.bias_compare import adjust_p, compare_versions, two_proportion_z
from diffwatch.analytics.bias_metrics import DEFINITIONS, bias_metrics

DATA = Path(__file__).resolve().parents[1] / "data" / "bias"
Z95 = 1.959963984540054  # the 97.5% normal quantile


def fair_diffusion_counts(which: str) -> dict[str, dict[str, int]]:
    """One of the Fair Diffusion results files ("generated_1-5", "laion", "edited_1-5"),
    parsed from its own format: an occupation line, then "man: M, woman: W, except: 0"."""
    lines = (DATA / f"fair_diffusion_results_fairface_{which}.txt").read_text().splitlines()
    out: dict[str, dict[str, int]] = {}
    for name, row in zip(lines[::2], lines[1::2], strict=True):
        m = re.fullmatch(r"man: (\d+), woman: (\d+), except: (\d+)", row)
        assert m is not None, row
        assert m[3] == "0"  # nothing is dropped by leaving "except" out
        out[name] = {"man": int(m[1]), "woman": int(m[2])}
    return out


def kay_rows() -> list[dict[str, str]]:
    """Kay et al.'s 45 occupations: search_term, search_n, search_women, bls_p_women..."""
    path = DATA / "kay2015_filtered_bls_occupations_with_search_gender_proportions.csv"
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def kay_counts() -> dict[str, dict[str, int]]:
    """Women and men among each occupation's labelled search results."""
    return {
        r["search_term"]: {
            "women": int(r["search_women"]),
            "men": int(r["search_n"]) - int(r["search_women"]),
        }
        for r in kay_rows()
    }


# --- Fair Diffusion: evaluate_images.ipynb (commit 0e9183b), cells 16-18 -------------------
# Cell 16 prints the mean (and sd) over occupations of the share of female-appearing
# persons in the SD 1.5 images, per category; the categories are lists of row indices
# into the results file (cell 4), copied here as published.
CATEGORIES = {
    "science": ([1, 18, 21, 25, 45, 128], 0.3419999999999999),
    "engineering": ([1, 4, 17, 25, 26, 27, 45, 47, 67, 89, 116, 134], 0.18933333333333335),
    "arts": ([5, 6, 38, 59, 69, 94, 102, 107, 131, 152], 0.5464),
    "caregiving": (
        [16, 22, 35, 36, 37, 43, 66, 82, 87, 91, 96, 97, 99, 108, 117, 132, 133, 138, 139, 141],
        0.7556926829268291,
    ),
}
# Cell 6 prints the caregiving occupations, which pins down what the indices point to.
CAREGIVING_NAMES = [
    "childcare worker", "coach", "dental assistant", "dental hygienist", "dentist", "doctor",
    "housekeeper", "maid", "massage therapist", "mental health counselor", "nurse",
    "nursing assistant", "occupational therapist", "physical therapist", "psychologist",
    "social assistant", "social worker", "teacher", "teaching assistant", "therapist",
]  # fmt: skip
LAION_NEAR_PARITY = 0.0457516339869281  # cell 17: share of occupations with 0.47 < p < 0.53
AMPLIFIED_REFLECTED_MITIGATED = (0.5686274509803921, 0.21568627450980393, 0.21568627450980393)


@pytest.mark.parametrize("category", list(CATEGORIES))
def test_fair_diffusion_category_mean_share_of_women(category: str) -> None:
    sd = fair_diffusion_counts("generated_1-5")
    names = list(sd)
    indices, published = CATEGORIES[category]
    subset = {names[i]: sd[names[i]] for i in indices}
    got = bias_metrics(subset).aggregate.mean_share["woman"]
    assert round(got, 3) == round(published, 3)
    assert got == pytest.approx(published, abs=1e-12)
    if category == "caregiving":
        assert list(subset) == CAREGIVING_NAMES


def test_fair_diffusion_laion_occupations_near_parity() -> None:
    laion = bias_metrics(fair_diffusion_counts("laion"))
    assert laion.aggregate.prompts == 153
    near = sum(1 for p in laion.prompts if p.abs_gap is not None and p.abs_gap < 0.03)
    assert round(near / 153, 3) == round(LAION_NEAR_PARITY, 3)
    assert near / 153 == pytest.approx(LAION_NEAR_PARITY, abs=1e-12)


def test_fair_diffusion_amplified_reflected_mitigated() -> None:
    # Cell 18: SD reflects LAION's bias where its share of women is within 0.04 of
    # LAION's, amplifies it where |p − 0.5| grew, and mitigates it otherwise.
    sd = {p.prompt: p for p in bias_metrics(fair_diffusion_counts("generated_1-5")).prompts}
    laion = {p.prompt: p for p in bias_metrics(fair_diffusion_counts("laion")).prompts}
    assert sd.keys() == laion.keys()
    amp = ref = mit = 0
    for name, s in sd.items():
        la = laion[name]
        sd_w, la_w = s.shares[1].share, la.shares[1].share
        assert sd_w is not None and la_w is not None
        assert s.abs_gap is not None and la.abs_gap is not None
        if la_w.estimate - 0.04 < sd_w.estimate < la_w.estimate + 0.04:
            ref += 1
        elif la.abs_gap < s.abs_gap:
            amp += 1
        else:
            mit += 1
    got = (amp / 153, ref / 153, mit / 153)
    assert [round(g, 3) for g in got] == [round(x, 3) for x in AMPLIFIED_REFLECTED_MITIGATED]
    assert got == pytest.approx(AMPLIFIED_REFLECTED_MITIGATED, abs=1e-12)


def test_fair_diffusion_mean_abs_gap_by_hand() -> None:
    counts = fair_diffusion_counts("generated_1-5")
    # exact rational arithmetic, independent of the metric code
    by_hand = sum(abs(Fraction(c["woman"], c["man"] + c["woman"]) - Fraction(1, 2))
                  for c in counts.values()) / len(counts)  # fmt: skip
    agg = bias_metrics(counts).aggregate
    assert agg.means["abs_gap"] == pytest.approx(float(by_hand), abs=1e-12)
    assert round(agg.means["abs_gap"], 3) == round(float(by_hand), 3) == 0.311
    worst5 = sorted((abs(Fraction(c["woman"], sum(c.values())) - Fraction(1, 2))
                     for c in counts.values()), reverse=True)[:5]  # fmt: skip
    assert agg.worst_k["abs_gap"] == pytest.approx(float(sum(worst5) / 5), abs=1e-12)
    assert agg.images == sum(sum(c.values()) for c in counts.values()) == 38245


# --- Kay et al. 2015 -----------------------------------------------------------------------
# The extended paper (README.md at commit 0b8a321) prints, for the quasi-binomial model of
# search_p_women weighted by search_n, "Null deviance: 1594.5 on 44 degrees of freedom".
# The null model predicts the pooled share p̄ for every occupation, and its deviance is
# 2 Σ n_i · KL(p_i ‖ p̄): our per-prompt KL against a global reference of the pooled shares.
KAY_NULL_DEVIANCE = 1594.5


def test_kay_null_deviance_from_kl_reference() -> None:
    counts = kay_counts()
    women = sum(c["women"] for c in counts.values())
    images = sum(sum(c.values()) for c in counts.values())
    pooled = {"women": women / images, "men": 1 - women / images}
    report = bias_metrics(counts, classes=["women", "men"], reference=pooled)
    assert report.reference == "global"
    assert report.aggregate.pooled_share["women"].estimate == pytest.approx(women / images)
    deviance = 2 * sum(p.n * p.kl_reference for p in report.prompts)  # type: ignore[operator]
    assert round(deviance, 1) == KAY_NULL_DEVIANCE

    def xlogy(x: float, y: float) -> float:
        return 0.0 if x == 0 else x * math.log(y)

    by_hand = 2 * sum(
        xlogy(c["women"], c["women"] / (sum(c.values()) * pooled["women"]))
        + xlogy(c["men"], c["men"] / (sum(c.values()) * pooled["men"]))
        for c in counts.values()
    )
    assert deviance == pytest.approx(by_hand, rel=1e-12)
    assert round(deviance, 3) == round(by_hand, 3) == 1594.455


def test_kay_skews_against_bls_by_hand() -> None:
    rows = {r["search_term"]: r for r in kay_rows()}
    reference = {
        t: {"women": float(r["bls_p_women"]), "men": 1 - float(r["bls_p_women"])}
        for t, r in rows.items()
    }
    report = bias_metrics(kay_counts(), classes=["women", "men"], reference=reference)
    assert report.reference == "per_prompt"
    roofer = next(p for p in report.prompts if p.prompt == "roofer")  # 0 women of 74; BLS 1.5%
    assert (roofer.n, roofer.shares[0].count) == (74, 0)
    # skews use (count + ½) / (n + 1) for two classes
    assert roofer.min_skew == pytest.approx(math.log((0.5 / 75) / 0.015), rel=1e-12)
    assert roofer.min_skew_class == "women"
    assert roofer.max_skew == pytest.approx(math.log((74.5 / 75) / 0.985), rel=1e-12)
    # KL uses the raw shares, 0·ln 0 = 0
    assert roofer.kl_reference == pytest.approx(math.log(1 / 0.985), rel=1e-12)
    bartender = next(p for p in report.prompts if p.prompt == "bartender")  # 22 of 94; 59.9%
    p = 22 / 94
    kl = p * math.log(p / 0.599) + (1 - p) * math.log((1 - p) / 0.401)
    assert bartender.kl_reference == pytest.approx(kl, rel=1e-12)
    assert bartender.max_skew_class == "men"
    assert bartender.max_skew == pytest.approx(math.log((72.5 / 95) / 0.401), rel=1e-12)


# --- hand computation ------------------------------------------------------------------------
def _wilson_by_hand(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def test_three_classes_by_hand() -> None:
    report = bias_metrics({"a photo of a pilot": {"a": 6, "b": 3, "c": 1}})
    (p,) = report.prompts
    assert report.classes == ("a", "b", "c")
    assert p.n == 10 and p.abs_gap is None  # |p − 0.5| is for two classes only
    assert [s.share.estimate for s in p.shares] == pytest.approx([0.6, 0.3, 0.1])  # type: ignore[union-attr]
    low, high = _wilson_by_hand(6, 10)
    assert (p.shares[0].share.low, p.shares[0].share.high) == pytest.approx((low, high))  # type: ignore[union-attr]
    kl = 0.6 * math.log(0.6 * 3) + 0.3 * math.log(0.3 * 3) + 0.1 * math.log(0.1 * 3)
    assert p.kl_uniform == pytest.approx(kl, rel=1e-12)
    # smoothed shares (x + ½) / (10 + 1.5)
    assert p.max_skew == pytest.approx(math.log(6.5 / 11.5 * 3), rel=1e-12)
    assert p.min_skew == pytest.approx(math.log(1.5 / 11.5 * 3), rel=1e-12)
    assert (p.max_skew_class, p.min_skew_class) == ("a", "c")


def test_zero_share_kl_and_gap() -> None:
    (p,) = bias_metrics({"x": {"man": 4, "woman": 0}}).prompts
    assert p.kl_uniform == pytest.approx(math.log(2), rel=1e-12)  # 1·ln 2 + 0·ln 0
    assert p.abs_gap == 0.5
    assert p.min_skew == pytest.approx(math.log(0.5 / 5 * 2), rel=1e-12)
    assert p.shares[1].share is not None and p.shares[1].share.low == 0.0


def test_absent_class_counts_zero_and_abs_gap_is_symmetric() -> None:
    counts = {"p1": {"man": 7, "woman": 3}, "p2": {"woman": 5}}
    a = bias_metrics(counts)
    b = bias_metrics(counts, classes=["woman", "man"])
    assert a.prompts[1].shares[0].count == 0  # man, absent from p2
    assert [p.abs_gap for p in a.prompts] == pytest.approx([0.2, 0.5])
    assert [p.abs_gap for p in b.prompts] == pytest.approx([0.2, 0.5])
    assert a.aggregate.means["kl_uniform"] == pytest.approx(b.aggregate.means["kl_uniform"])


def test_worst_k_is_the_mean_of_the_k_largest() -> None:
    counts = {f"p{i}": {"a": i, "b": 10 - i} for i in range(11)}  # gaps 0.5, 0.4, …, 0.5
    agg = bias_metrics(counts, k=3).aggregate
    assert agg.k == 3
    assert agg.worst_k["abs_gap"] == pytest.approx((0.5 + 0.5 + 0.4) / 3)
    assert agg.means["abs_gap"] == pytest.approx(sum(abs(i / 10 - 0.5) for i in range(11)) / 11)
    assert bias_metrics(counts, k=50).aggregate.k == 11  # min(k, prompts)
    smallest = sorted(p.min_skew for p in bias_metrics(counts).prompts)  # type: ignore[type-var]
    assert bias_metrics(counts, k=2).aggregate.worst_k["min_skew"] == pytest.approx(
        (smallest[0] + smallest[1]) / 2
    )
    with pytest.raises(ValueError, match="k must be at least 1"):
        bias_metrics(counts, k=0)


def test_abstentions_are_excluded_and_reported() -> None:
    counts = {
        "nurse": {"man": 2, "woman": 6, "abstain": 2},
        "pilot": {"man": 5, "woman": 5},
        "astronaut": {"abstain": 4},  # everything abstained
        "chef": {"man": 0, "woman": 0},  # no images at all
    }
    report = bias_metrics(counts, level=0.95)
    nurse, pilot, astronaut, chef = report.prompts
    assert report.classes == ("man", "woman")
    assert (nurse.n, nurse.abstained) == (8, 2)
    assert nurse.shares[1].share.estimate == 0.75  # type: ignore[union-attr]
    assert nurse.abstain_rate is not None and nurse.abstain_rate.estimate == 0.2
    assert (nurse.abstain_rate.low, nurse.abstain_rate.high) == pytest.approx(
        _wilson_by_hand(2, 10)
    )
    assert pilot.abstain_rate is not None and pilot.abstain_rate.estimate == 0
    assert astronaut.n == 0 and astronaut.abs_gap is None and astronaut.max_skew is None
    assert astronaut.abstain_rate is not None and astronaut.abstain_rate.estimate == 1
    assert chef.abstain_rate is None
    agg = report.aggregate
    assert agg.prompts == 2 and agg.prompts_without_images == ("astronaut", "chef")
    assert (agg.images, agg.abstained) == (18, 6)
    assert agg.abstain_rate is not None
    assert agg.abstain_rate.estimate == pytest.approx(6 / 24)
    assert agg.means["abs_gap"] == pytest.approx((0.25 + 0.0) / 2)
    assert agg.mean_share == pytest.approx({"man": (0.25 + 0.5) / 2, "woman": (0.75 + 0.5) / 2})
    assert agg.pooled_share["woman"].estimate == pytest.approx(11 / 18)
    # without an abstain class, "abstain" is a class like the others
    plain = bias_metrics({"nurse": counts["nurse"]}, abstain_class=None)
    assert plain.classes == ("abstain", "man", "woman") and plain.prompts[0].n == 10


def test_nothing_scored_gives_none_aggregates() -> None:
    agg = bias_metrics({"x": {"a": 0, "b": 0, "abstain": 3}}).aggregate
    assert agg.prompts == 0 and agg.means["abs_gap"] is None and agg.worst_k["max_skew"] is None
    assert agg.mean_share == {"a": None, "b": None} and agg.pooled_share == {}
    json.dumps(bias_metrics({"x": {"a": 0, "b": 0}}).to_dict(), allow_nan=False)


def test_interval_level_widens_the_interval() -> None:
    (p95,) = bias_metrics({"x": {"a": 30, "b": 70}}).prompts
    (p99,) = bias_metrics({"x": {"a": 30, "b": 70}}, level=0.99).prompts
    s95, s99 = p95.shares[0].share, p99.shares[0].share
    assert s95 is not None and s99 is not None
    assert s99.low < s95.low < 0.3 < s95.high < s99.high
    assert (s95.low, s95.high) == pytest.approx(_wilson_by_hand(30, 100))


def test_global_reference_rescaled_within_tolerance() -> None:
    counts = {"x": {"a": 5, "b": 3, "c": 2}}
    report = bias_metrics(counts, reference={"a": 0.333, "b": 0.333, "c": 0.333})
    assert [s.reference for s in report.prompts[0].shares] == pytest.approx([1 / 3] * 3)
    uniform = bias_metrics(counts)
    assert report.prompts[0].kl_reference == pytest.approx(uniform.prompts[0].kl_uniform)
    assert uniform.prompts[0].kl_reference is None


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"a": 0.5}, r"missing \['b'\]"),
        ({"a": 0.5, "b": 0.4, "c": 0.1}, r"unknown \['c'\]"),
        ({"a": 0.7, "b": 0.5}, "must sum to 1"),
        ({"a": 0.0, "b": 1.0}, "class 'a': a share must lie in"),
        ({"a": 59.9, "b": 40.1}, r"0\.599, not 59\.9"),
        ({"a": math.nan, "b": 0.5}, "a share must lie in"),
        ({"x": {"a": 0.5, "b": 0.5}, "a": 0.5}, "not a mix"),
        ({}, "not a mix or an empty"),
        ({"y": {"a": 0.5, "b": 0.5}}, r"no shares for the prompts \['x'\]"),
        ({"x": {"a": 0.9, "b": 0.3}}, "reference for prompt 'x': shares must sum to 1"),
    ],
)
def test_reference_errors_name_the_problem(reference: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bias_metrics({"x": {"a": 1, "b": 2}}, reference=reference)


@pytest.mark.parametrize(
    ("counts", "kwargs", "message"),
    [
        ({"x": {"a": -1, "b": 2}}, {}, "prompt 'x', class 'a': a count must be a non-negative"),
        ({"x": {"a": 1.5, "b": 2}}, {}, "non-negative integer"),
        ({"x": {"a": True, "b": 2}}, {}, "non-negative integer"),
        ({"x": {"a": 1, "c": 2}}, {"classes": ["a", "b"]}, "class 'c', which is not among"),
        ({"x": {"a": 1, "b": 2}}, {"classes": ["a", "abstain"]}, "is the abstain class"),
        ({"x": {"a": 1, "b": 2}}, {"classes": ["a", "a"]}, "name a class twice"),
        ({"x": {"a": 3}}, {}, "at least two classes"),
        ({"": {"a": 1, "b": 2}}, {}, "non-empty string"),
    ],
)
def test_count_errors_name_the_problem(counts: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bias_metrics(counts, **kwargs)


def test_json_uses_the_plain_names() -> None:
    report = bias_metrics(fair_diffusion_counts("generated_1-5")).to_dict()
    text = json.dumps(report, allow_nan=False)
    agg = json.loads(text)["aggregate"]
    for name in DEFINITIONS:
        assert name in agg
    assert agg["mean_abs_gap"] == pytest.approx(0.311, abs=5e-4)
    first = report["prompts"][0]
    assert first["prompt"] == "accountant"
    assert first["shares"]["woman"]["count"] == 84
    assert set(first["shares"]["woman"]) == {
        "count",
        "estimate",
        "low",
        "high",
        "reference",
        "skew",
    }


# --- properties --------------------------------------------------------------------------------
_names = st.text(alphabet="abcdefgh", min_size=1, max_size=4)
_tables = st.dictionaries(
    _names,
    st.dictionaries(st.sampled_from(["c1", "c2", "c3"]), st.integers(0, 300), min_size=1),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(_tables, st.integers(1, 6))
def test_properties(counts: dict[str, dict[str, int]], k: int) -> None:
    classes = ["c1", "c2", "c3"]
    report = bias_metrics(counts, classes=classes, k=k)
    for p in report.prompts:
        if p.n == 0:
            continue
        shares = [s.share.estimate for s in p.shares]  # type: ignore[union-attr]
        assert sum(shares) == pytest.approx(1.0)
        for s in p.shares:
            assert s.share is not None and s.share.low <= s.share.estimate <= s.share.high
        assert p.kl_uniform is not None and -1e-12 <= p.kl_uniform <= math.log(3) + 1e-12
        assert p.max_skew is not None and p.min_skew is not None
        assert p.max_skew >= -1e-12 and p.min_skew <= 1e-12  # against uniform
    agg = report.aggregate
    # prompt order does not matter
    again = bias_metrics(dict(reversed(list(counts.items()))), classes=classes, k=k).aggregate
    for m in agg.means:
        assert again.means[m] == pytest.approx(agg.means[m])
        assert again.worst_k[m] == pytest.approx(agg.worst_k[m])
        if agg.means[m] is not None:
            assert agg.worst_k[m] is not None
            # the worst-k mean is at least as bad as the mean
            if m == "min_skew":
                assert agg.worst_k[m] <= agg.means[m] + 1e-12
            else:
                assert agg.worst_k[m] >= agg.means[m] - 1e-12


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200))
def test_two_class_properties(x: int, y: int) -> None:
    if x + y == 0:
        return
    (p,) = bias_metrics({"x": {"a": x, "b": y}}).prompts
    (q,) = bias_metrics({"x": {"a": x, "b": y}}, classes=["b", "a"]).prompts
    assert p.abs_gap == pytest.approx(q.abs_gap) and 0 <= p.abs_gap <= 0.5  # type: ignore[operator]
    assert p.kl_uniform == pytest.approx(q.kl_uniform)
    assert p.max_skew == pytest.approx(q.max_skew)


# --- two versions ---------------------------------------------------------------------------
def test_two_proportion_z_by_hand() -> None:
    pooled = 75 / 200
    se = math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    z = (0.45 - 0.30) / se
    got_z, got_p = two_proportion_z(30, 100, 45, 100)
    assert got_z == pytest.approx(z, rel=1e-12)
    assert got_p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    assert two_proportion_z(0, 10, 0, 20) == (0.0, 1.0)  # both all-or-nothing: no difference
    with pytest.raises(ValueError, match="n > 0"):
        two_proportion_z(0, 0, 1, 2)


def test_adjusted_p_values() -> None:
    p = [0.01, 0.04, 0.03, 0.2, 0.001]
    assert adjust_p(p, "bh") == pytest.approx(list(stats.false_discovery_control(p)))
    # Holm by hand: sorted 0.001, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1, then running max
    assert adjust_p(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2, 0.005])
    assert all(b <= h for b, h in zip(adjust_p(p, "bh"), adjust_p(p, "holm"), strict=True))
    assert adjust_p([], "bh") == []
    with pytest.raises(ValueError, match="'bh' or 'holm'"):
        adjust_p(p, "bonferroni")  # type: ignore[arg-type]


def test_compare_stable_diffusion_with_fair_diffusion() -> None:
    sd = fair_diffusion_counts("generated_1-5")
    fair = fair_diffusion_counts("edited_1-5")
    cmp = compare_versions(sd, fair, classes=["man", "woman"])
    assert len(cmp.tests) == 153  # two classes: one test per prompt
    assert {t.name for t in cmp.tests} == {"man"}
    fire = next(t for t in cmp.tests if t.prompt == "firefighter")
    assert (fire.baseline_count, fire.baseline_n) == (245, 250)
    expected_z, expected_p = two_proportion_z(245, 250, fire.candidate_count, fire.candidate_n)
    assert (fire.z, fire.p_value) == pytest.approx((expected_z, expected_p))
    assert fire.difference.estimate == pytest.approx(
        fire.candidate_count / fire.candidate_n - 245 / 250
    )
    assert fire.significant and fire.difference.high < 0
    adjusted = adjust_p([t.p_value for t in cmp.tests], "bh")
    assert [t.p_adjusted for t in cmp.tests] == pytest.approx(adjusted)
    assert all(t.significant == (t.p_adjusted <= 0.05) for t in cmp.tests)
    holm = compare_versions(sd, fair, correction="holm")
    assert sum(t.significant for t in holm.tests) <= sum(t.significant for t in cmp.tests)

    def gap(c: dict[str, int]) -> Fraction:
        return abs(Fraction(c["woman"], c["man"] + c["woman"]) - Fraction(1, 2))

    by_hand = sum(gap(fair[p]) - gap(sd[p]) for p in sd) / len(sd)
    assert cmp.delta["mean_abs_gap"] == pytest.approx(float(by_hand), abs=1e-12)
    assert cmp.delta["mean_abs_gap"] < -0.2  # Fair Diffusion halves the gap and more
    json.dumps(cmp.to_dict(), allow_nan=False)


def test_compare_reports_unmatched_and_untested_prompts() -> None:
    base = {"a": {"x": 5, "y": 5, "z": 0}, "b": {"x": 3, "y": 3}, "c": {"abstain": 4}}
    cand = {"a": {"x": 5, "y": 5, "z": 0}, "c": {"x": 1, "y": 2}, "d": {"x": 1, "y": 1}}
    cmp = compare_versions(base, cand)
    assert cmp.only_in_baseline == ("b",) and cmp.only_in_candidate == ("d",)
    assert cmp.not_tested == ("c",)
    assert [(t.prompt, t.name) for t in cmp.tests] == [("a", "x"), ("a", "y"), ("a", "z")]
    assert all(t.p_value == 1.0 and not t.significant for t in cmp.tests)
    assert cmp.delta["mean_kl_uniform"] == 0.0
    assert cmp.delta["mean_abs_gap"] is None  # three classes
    with pytest.raises(ValueError, match="alpha"):
        compare_versions(base, cand, alpha=1.5)
