"""Near-duplicate images: which count, how many, the closest pairs, and the blockwise search."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from diffwatch.analytics.duplicates import near_duplicates
from diffwatch.analytics.intervals import wilson


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _planted(
    rng: np.random.Generator, n: int = 200, copies: int = 10, width: int = 64
) -> tuple[np.ndarray, list[int], list[str], list[int | None]]:
    """n random unit vectors (cosines near 0) and near-copies of the first ``copies``, made
    from the same prompts with other seeds: rows n + i copies row i."""
    base = _unit(rng.standard_normal((n, width)))
    near = _unit(base[:copies] + 0.02 * rng.standard_normal((copies, width)))
    emb = np.concatenate([base, near]).astype(np.float32)
    ids = list(range(1000, 1000 + n + copies))
    prompts = [f"prompt {i}" for i in range(n)] + [f"prompt {i}" for i in range(copies)]
    seeds: list[int | None] = list(range(n)) + [10_000 + i for i in range(copies)]
    return emb, ids, prompts, seeds


def test_planted_near_copies_are_found_exactly() -> None:
    emb, ids, prompts, seeds = _planted(np.random.default_rng(1))
    rep = near_duplicates(emb, ids, prompts, seeds)
    assert (rep.n, rep.n_duplicates) == (210, 20)
    assert rep.share == pytest.approx(20 / 210)
    ci = wilson(20, 210)
    assert (rep.ci_low, rep.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert rep.ci_low < rep.share < rep.ci_high
    assert len(rep.examples) == 8  # max_examples
    assert {(a, b) for a, b, _ in rep.examples} <= {(1000 + i, 1200 + i) for i in range(10)}
    assert json.loads(json.dumps(rep.to_dict()))["examples"][0][:2] == list(rep.examples[0][:2])


def test_examples_are_the_closest_pairs_each_image_once() -> None:
    rng = np.random.default_rng(2)
    width = 32
    hub = _unit(rng.standard_normal((1, width)))[0]

    # Three images close to one hub image at decreasing cosines, and an independent pair.
    def at(cos: float) -> np.ndarray:
        other = _unit(rng.standard_normal((1, width)))[0]
        other = _unit((other - (other @ hub) * hub)[None])[0]
        return cos * hub + math.sqrt(1 - cos**2) * other

    far = _unit(rng.standard_normal((1, width)))[0]
    far = _unit((far - (far @ hub) * hub)[None])[0]  # orthogonal to the hub and its partners
    emb = np.stack([hub, at(0.999), at(0.998), at(0.997), far, 0.985 * far + 0.1726 * hub])
    ids = [1, 2, 3, 4, 5, 6]
    prompts = ["a", "b", "c", "d", "e", "f"]
    rep = near_duplicates(emb, ids, prompts, [None] * 6, threshold=0.95, max_examples=8)
    assert rep.n_duplicates == 6
    pairs = [(a, b) for a, b, _ in rep.examples]
    # (1, 2) first; then 1 and 2 are used, so (3, 4) — their cosine about 0.995 — then (5, 6).
    assert pairs == [(1, 2), (3, 4), (5, 6)]
    cosines = [c for _, _, c in rep.examples]
    assert cosines == sorted(cosines, reverse=True)
    assert cosines[0] == pytest.approx(0.999, abs=1e-9)
    used = [i for a, b, _ in rep.examples for i in (a, b)]
    assert len(used) == len(set(used))
    assert len(near_duplicates(emb, ids, prompts, [None] * 6, max_examples=1).examples) == 1
    assert near_duplicates(emb, ids, prompts, [None] * 6, max_examples=0).examples == ()


def test_same_prompt_and_seed_is_a_deliberate_repeat() -> None:
    emb, ids, prompts, seeds = _planted(np.random.default_rng(3))
    repeats = seeds[:200] + seeds[:10]  # the copies now share their originals' seeds
    rep = near_duplicates(emb, ids, prompts, repeats)
    assert rep.n_duplicates == 0 and rep.examples == ()
    # Five of the ten copies get a seed of their own again: those five pairs count.
    mixed = seeds[:200] + seeds[:5] + seeds[205:]
    assert near_duplicates(emb, ids, prompts, mixed).n_duplicates == 10


def test_an_unknown_seed_with_the_same_prompt_does_not_count() -> None:
    emb, ids, prompts, seeds = _planted(np.random.default_rng(4))
    one_unknown = seeds[:200] + [None] * 10
    assert near_duplicates(emb, ids, prompts, one_unknown).n_duplicates == 0
    both_unknown = [None] * 210
    assert near_duplicates(emb, ids, prompts, both_unknown).n_duplicates == 0
    # Another prompt counts whatever the seeds: unknown seeds do not hide it.
    other_prompts = prompts[:200] + [f"other {i}" for i in range(10)]
    assert near_duplicates(emb, ids, other_prompts, both_unknown).n_duplicates == 20


def test_the_threshold_is_inclusive_and_exact() -> None:
    width = 16
    a = np.eye(width)[0]
    pair = []
    for cos in (0.95 + 1e-9, 0.95 - 1e-9):
        pair.append(np.stack([a, cos * a + math.sqrt(1 - cos**2) * np.eye(width)[1]]))
    above = near_duplicates(pair[0], [1, 2], ["x", "y"], [1, 2], threshold=0.95)
    below = near_duplicates(pair[1], [1, 2], ["x", "y"], [1, 2], threshold=0.95)
    assert above.n_duplicates == 2 and below.n_duplicates == 0
    assert above.examples[0][2] == pytest.approx(0.95, abs=1e-8)
    # Identical directions at threshold 1 (cosine exactly 1 in float64 for these rows).
    same = np.stack([a, 3.0 * a])
    assert near_duplicates(same, [1, 2], ["x", "y"], [None, None], threshold=1.0).n_duplicates == 2


def test_rows_are_normalised_whatever_their_length() -> None:
    emb, ids, prompts, seeds = _planted(np.random.default_rng(5))
    scaled = emb * np.random.default_rng(6).uniform(0.1, 50.0, size=(emb.shape[0], 1))
    assert near_duplicates(scaled, ids, prompts, seeds).n_duplicates == 20


def test_blocks_give_what_one_block_gives() -> None:
    rng = np.random.default_rng(7)
    n, width = 900, 24
    base = _unit(rng.standard_normal((n, width)))
    # Clusters of near-copies across block boundaries, some of them repeats, some unknown.
    for start in range(0, n, 37):
        base[start + 1 : start + 4] = _unit(base[start] + 0.03 * rng.standard_normal((3, width)))
    prompts = [f"p{i % 50}" for i in range(n)]
    seeds = [None if i % 11 == 0 else i % 7 for i in range(n)]
    ids = list(range(n))
    whole = near_duplicates(base, ids, prompts, seeds, block=n, max_examples=20)
    assert 0 < whole.n_duplicates < n
    for block in (1, 64, 100, 257):
        part = near_duplicates(base, ids, prompts, seeds, block=block, max_examples=20)
        assert (part.n_duplicates, part.ci_low, part.ci_high) == (
            whole.n_duplicates,
            whole.ci_low,
            whole.ci_high,
        )
        # The same pairs; their cosines agree to round-off (BLAS sums other block shapes in
        # another order).
        assert [e[:2] for e in part.examples] == [e[:2] for e in whole.examples]
        np.testing.assert_allclose(
            [e[2] for e in part.examples], [e[2] for e in whole.examples], rtol=1e-12
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ids": [1, 2]}, r"ids has 2 entries but its embeddings have 3 rows"),
        ({"prompts": ["a"]}, r"prompts has 1 entries but embeddings has 3 rows"),
        ({"prompts": ["a", None, "c"]}, r"prompts\[1\] must be the prompt text"),
        ({"seeds": [1, 2]}, r"seeds has 2 entries"),
        ({"seeds": [1, "2", 3]}, r"seeds\[1\] must be an integer seed or None"),
        ({"threshold": 0.0}, r"threshold must be a cosine in \(0, 1\]"),
        ({"max_examples": -1}, r"max_examples must be a count"),
        ({"block": 0}, r"block must be a positive number of rows"),
        ({"embeddings": np.zeros((3, 4))}, r"row 0 is all zeros"),
        ({"embeddings": np.full((3, 4), np.nan)}, r"embeddings has NaN"),
        ({"embeddings": np.zeros((0, 4))}, r"embeddings has 0 images"),
    ],
)
def test_errors_name_the_input_and_the_fix(kwargs: dict, message: str) -> None:
    args = {
        "embeddings": np.eye(4)[:3],
        "ids": [1, 2, 3],
        "prompts": ["a", "b", "c"],
        "seeds": [1, 2, None],
    } | kwargs
    with pytest.raises(ValueError, match=message):
        near_duplicates(**args)


def _brute_force(emb: np.ndarray, prompts: list[str], seeds: list, threshold: float, limit: int):
    unit = _unit(emb.astype(np.float64))
    n = len(prompts)
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            cos = float(unit[i] @ unit[j])
            repeat = prompts[i] == prompts[j] and (
                seeds[i] is None or seeds[j] is None or seeds[i] == seeds[j]
            )
            if cos >= threshold and not repeat:
                pairs.append((-cos, i, j))
    dup = {i for _, a, b in pairs for i in (a, b)}
    used: set[int] = set()
    picked = []
    for _, i, j in sorted(pairs):
        if i not in used and j not in used and len(picked) < limit:
            used |= {i, j}
            picked.append((i, j))
    return len(dup), picked


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_counts_and_examples_match_a_brute_force_search(limit: int) -> None:
    """A tight cluster of 30 images (many partners each) and scattered pairs, some repeats."""
    rng = np.random.default_rng(8)
    width = 16
    emb = _unit(rng.standard_normal((120, width)))
    emb[:30] = _unit(emb[0] + 0.04 * rng.standard_normal((30, width)))
    emb[60:90:2] = _unit(emb[61:91:2] + 0.1 * rng.standard_normal((15, width)))
    prompts = [f"p{i % 40}" for i in range(120)]
    seeds = [None if i % 9 == 0 else i % 4 for i in range(120)]
    rep = near_duplicates(emb, list(range(120)), prompts, seeds, max_examples=limit, block=17)
    n_dup, picked = _brute_force(emb, prompts, seeds, 0.95, limit)
    assert rep.n_duplicates == n_dup > 30
    assert [e[:2] for e in rep.examples] == picked
