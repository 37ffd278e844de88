"""The combined prompt-drift verdict (Westfall–Young min-p over the embedding and the lexical
test on shared permutations): the documented rule, exact calibration where the uncorrected
union of the two tests is not, and on a public prompt set through the tiny test CLIP: the
false-positive rate at α, and a topical shift the embedder alone misses is found."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binom

from diffwatch.analytics.drift_combine import (
    combine,
    fixed_sequence_adjust,
    minp_adjust,
    prompt_drift_test,
)
from diffwatch.analytics.lexical_drift import lexical_test
from diffwatch.analytics.prompt_drift import mmd_test
from tests.public_prompts import mix_split, null_split, partiprompts

ALPHA = 0.05


def test_the_rule_on_a_small_worked_example() -> None:
    # Two tests, observed split + 4 permutations. Counts c_j(s) = #{s': stat_j(s') >= stat_j(s)}:
    # test 0: [9, 1, 2, 3, 4] -> [1, 5, 4, 3, 2]; test 1: [2, 8, 1, 3, 0] -> [3, 1, 4, 2, 5].
    m = minp_adjust(np.array([[9.0, 1, 2, 3, 4], [2.0, 8, 1, 3, 0]]))
    assert m.raw == (1 / 5, 3 / 5)
    # Smallest count per split: [1, 1, 4, 2, 2]; adjusted_j = #{s: smallest(s) <= c_j(0)} / 5.
    assert m.adjusted == (2 / 5, 4 / 5)  # splits 0, 1 | 0, 1, 3, 4
    assert m.combined == 2 / 5


def test_adjusted_p_values_lie_between_raw_and_bonferroni() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        stats = rng.normal(size=(2, 100))
        stats[:, 0] += rng.uniform(0, 3, size=2)
        m = minp_adjust(stats)
        for raw, adj in zip(m.raw, m.adjusted, strict=True):
            assert raw <= adj <= min(1.0, 2 * raw) + 1e-12
        assert m.combined == min(m.adjusted)


def test_identical_tests_pay_no_multiplicity_price() -> None:
    row = np.random.default_rng(1).normal(size=200)
    m = minp_adjust(np.vstack([row, 2 * row + 1]))  # the same ranking twice
    assert m.adjusted == m.raw and m.combined == m.raw[0]


def test_combined_rejects_at_alpha_where_the_uncorrected_union_of_two_tests_does_not() -> None:
    # Under "no drift" the observed column is exchangeable with the permuted ones: draw every
    # column from the same law. Two independent tests, 99 permutations, 4000 null runs.
    rng = np.random.default_rng(2)
    runs, combined, union = 4000, 0, 0
    for _ in range(runs):
        m = minp_adjust(rng.normal(size=(2, 100)))
        combined += m.combined <= ALPHA
        union += min(m.raw) <= ALPHA  # "drifted if either test says so", no correction
    limit = binom.ppf(0.999, runs, ALPHA) / runs  # 0.0634
    print(
        f"\nnull runs flagged: combined {combined / runs:.4f}, uncorrected union {union / runs:.4f}"
    )
    assert combined / runs <= limit
    assert union / runs > limit  # about 2 alpha - alpha^2 = 0.0975: the correction matters


def test_bad_stats_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="stats must be"):
        minp_adjust(np.ones(5))


# ------------------------------------------------------------------ on a public prompt set
@pytest.fixture(scope="module")
def tiny_embeddings(tmp_path_factory) -> dict[str, np.ndarray]:
    """Every PartiPrompts prompt embedded once by the tiny random-weight test CLIP."""
    from diffwatch.scoring.clip.scorer import ClipScorer, load_clip
    from tests.tinymodels import save_tiny_clip, tiny_clip_settings

    clip = ClipScorer(load_clip(tiny_clip_settings(save_tiny_clip(tmp_path_factory.mktemp("c")))))
    prompts = sorted(set(partiprompts().prompts))
    return dict(zip(prompts, clip.embed_texts(prompts), strict=True))


def _rates(emb: dict[str, np.ndarray], make, splits: int, order: str = "min-p") -> dict[str, float]:
    """Share of seeded splits flagged by each test alone and by the combined test."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(splits):
        ref, cur = make(rng)
        r = prompt_drift_test(
            np.stack([emb[p] for p in ref]), np.stack([emb[p] for p in cur]), ref, cur,
            permutations=100, seed=i, alpha=ALPHA, order=order,
        )  # fmt: skip
        rows.append((r.embedding.drifted, r.lexical.drifted, r.drifted))
    emb_rate, lex_rate, combined = np.mean(rows, axis=0)
    return {"embedding": emb_rate, "lexical": lex_rate, "combined": combined}


@pytest.mark.parametrize("order", ["min-p", "lexical-first"])
def test_combined_false_positive_rate_on_null_splits_is_within_the_binomial_bound(
    tiny_embeddings, order: str
) -> None:
    splits, parti = 60, partiprompts()
    f = _rates(tiny_embeddings, lambda g: null_split(parti.prompts, 80, g), splits, order)
    print(f"\ntiny CLIP, {order}, {splits} null splits of PartiPrompts (80 + 80): {f}")
    assert f["combined"] <= binom.ppf(0.999, splits, ALPHA) / splits  # 9/60


def test_a_topical_shift_the_tiny_embedder_misses_is_found_by_the_combined_test(
    tiny_embeddings,
) -> None:
    parti = partiprompts()
    f = _rates(tiny_embeddings, lambda g: mix_split(parti, "category", {"People": 0.5}, 150, g), 40)
    print(f"\ntiny CLIP, PartiPrompts People 11% -> 50% (150 + 150), 40 splits: {f}")
    assert f["embedding"] < 0.5  # the random-weight embedder alone barely sees it
    assert f["lexical"] >= 0.85
    assert f["combined"] >= 0.85


def test_lexical_first_keeps_the_lexical_tests_power_where_min_p_pays_for_the_embedder(
    tiny_embeddings,
) -> None:
    """The smaller shift of docs/drift.md's table (People 11 % -> 30 %): min-p over the tiny
    embedder's noise flags fewer runs than the lexical test alone; lexical-first, which the
    demo's embedders get, flags exactly the runs the lexical test flags."""
    parti = partiprompts()
    make = lambda g: mix_split(parti, "category", {"People": 0.35}, 120, g)  # noqa: E731
    minp = _rates(tiny_embeddings, make, 30, "min-p")
    seq = _rates(tiny_embeddings, make, 30, "lexical-first")
    print(f"\ntiny CLIP, People 11% -> 35% (120 + 120), 30 splits: {minp} / {seq}")
    assert seq["lexical"] == minp["lexical"] and 0.1 < seq["lexical"] < 1.0  # not saturated
    assert seq["combined"] == seq["lexical"]
    assert minp["combined"] < minp["lexical"]


def test_the_fixed_sequence_on_a_small_worked_example() -> None:
    # 1 observed + 4 permutations. Lexical (row 0) observed 5 is the largest: raw 1/5.
    # Embedding (row 1) observed 1 is the smallest: raw 5/5. Adjusted: running max.
    stats = np.array([[5.0, 1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    seq = fixed_sequence_adjust(stats)
    assert seq.raw == (0.2, 1.0) and seq.adjusted == (0.2, 1.0) and seq.combined == 0.2
    # The embedding decides nothing while the lexical test has not rejected, however small
    # its own p-value: swapped rows give the embedding raw 0.2 but adjusted 1.0.
    swapped = fixed_sequence_adjust(stats[::-1])
    assert swapped.raw == (1.0, 0.2) and swapped.adjusted == (1.0, 1.0) and swapped.combined == 1.0
    # combine() takes the rows in TESTS order (embedding, lexical) and answers in it.
    both = combine(stats[1], stats[0], "lexical-first")
    assert both.raw == (1.0, 0.2) and both.adjusted == (1.0, 0.2) and both.combined == 0.2
    assert combine(stats[1], stats[0], "min-p") == minp_adjust(stats[::-1])
    with pytest.raises(ValueError, match="unknown combination 'bonferroni'; choose one of min-p"):
        combine(stats[1], stats[0], "bonferroni")


def test_the_parts_equal_the_tests_run_alone_with_the_same_seed(tiny_embeddings) -> None:
    ref, cur = null_split(partiprompts().prompts, 60, np.random.default_rng(3))
    x = np.stack([tiny_embeddings[p] for p in ref])
    y = np.stack([tiny_embeddings[p] for p in cur])
    r = prompt_drift_test(x, y, ref, cur, permutations=99, seed=5)
    assert r.embedding == mmd_test(x, y, permutations=99, seed=5)
    assert r.lexical == lexical_test(ref, cur, permutations=99, seed=5)
    d = r.combined_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["p_value"] == min(d["adjusted_p_values"].values())
    assert d["drifted"] == (d["p_value"] <= ALPHA)
    assert d["p_values"] == {"embedding": r.embedding.p_value, "lexical": r.lexical.p_value}


def test_subsampling_keeps_prompts_and_embeddings_together(tiny_embeddings) -> None:
    ref, cur = null_split(partiprompts().prompts, 200, np.random.default_rng(4))
    x = np.stack([tiny_embeddings[p] for p in ref])
    y = np.stack([tiny_embeddings[p] for p in cur[:120]])
    r = prompt_drift_test(x, y, ref, cur[:120], max_samples=50, permutations=50, seed=2)
    # Each part is the test alone on the same subsample (the same rows of both windows).
    assert r.embedding == mmd_test(x, y, max_samples=50, permutations=50, seed=2)
    assert r.lexical == lexical_test(ref, cur[:120], max_samples=50, permutations=50, seed=2)
    assert (r.embedding.n_reference, r.lexical.n_current) == (50, 50)


def test_embeddings_and_prompts_must_match_row_for_row() -> None:
    x = np.eye(6)
    with pytest.raises(ValueError, match="current has 6 embeddings but 5 prompts"):
        prompt_drift_test(x, x, ["p"] * 6, ["p"] * 5)
