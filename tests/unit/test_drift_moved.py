"""What moved between prompt windows: growing clusters and their words, grown/shrunk terms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffwatch.analytics.drift_moved import cluster_shifts, default_k, term_shifts, tokens

DIM = 32
TOPICS = ("cat", "mountain", "portrait", "city")
ADJECTIVES = ("bright", "moody", "detailed", "soft", "vivid", "misty", "golden", "quiet")
PLACES = ("at dawn", "in winter", "under rain", "at night", "in summer", "by the sea")


def _windows(
    ref_counts: tuple[int, ...], cur_counts: tuple[int, ...], seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str], list[str], list[int], list[int]]:
    """Embeddings and prompts where topic t's embedding sits near centre t on the sphere.

    Current "city" prompts say "cyberpunk"; some reference prompts say "watercolor" and no
    current prompt does.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(TOPICS), DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def window(counts: tuple[int, ...], current: bool) -> tuple[np.ndarray, list[str], list[int]]:
        topics = [t for t, c in enumerate(counts) for _ in range(c)]
        prompts = []
        for i, t in enumerate(topics):
            words = [ADJECTIVES[rng.integers(len(ADJECTIVES))], TOPICS[t]]
            words.append(PLACES[rng.integers(len(PLACES))])
            if current and TOPICS[t] == "city":
                words.insert(0, "cyberpunk")
            if not current and i % 3 == 0:
                words.append("watercolor")
            prompts.append(f"a {' '.join(words)}, #{i}")
        x = centres[topics] + rng.normal(scale=0.05, size=(len(topics), DIM))
        return x / np.linalg.norm(x, axis=1, keepdims=True), prompts, topics

    ref, ref_prompts, ref_topics = window(ref_counts, current=False)
    cur, cur_prompts, cur_topics = window(cur_counts, current=True)
    return ref, cur, ref_prompts, cur_prompts, ref_topics, cur_topics


def test_the_grown_cluster_is_ranked_first_with_its_words_and_examples() -> None:
    ref, cur, ref_p, cur_p, _, _ = _windows((50, 50, 50, 50), (30, 30, 30, 110))
    shifts = cluster_shifts(ref, cur, ref_p, cur_p, k=4)
    assert len(shifts) == 4
    top = shifts[0]
    assert top.delta == pytest.approx(110 / 200 - 50 / 200)
    assert top.delta > 0 and top.share_current > top.share_reference
    assert "city" in top.terms and "cyberpunk" in top.terms
    assert len(top.examples) == 3
    # It grew, so its examples are current-window prompts of the city topic.
    assert all(e in cur_p and "city" in e for e in top.examples)
    for s in shifts[1:]:
        assert s.delta == pytest.approx(30 / 200 - 50 / 200)
        assert s.examples and all(e in ref_p for e in s.examples)  # shrank: reference
    assert sum(s.share_reference for s in shifts) == pytest.approx(1.0)
    assert sum(s.share_current for s in shifts) == pytest.approx(1.0)
    assert [abs(s.delta) for s in shifts] == sorted((abs(s.delta) for s in shifts), reverse=True)
    d = top.to_dict()
    assert json.loads(json.dumps(d)) == d


def test_examples_are_deduplicated() -> None:
    ref, cur, ref_p, cur_p, _, cur_topics = _windows((40, 40, 40, 40), (20, 20, 20, 100))
    # The same city prompt, logged many times with different case and spacing.
    cur_p = [
        ("A  CYBERPUNK city " if i % 2 else "a cyberpunk city") if t == 3 else p
        for i, (p, t) in enumerate(zip(cur_p, cur_topics, strict=True))
    ]
    top = cluster_shifts(ref, cur, ref_p, cur_p, k=4, examples=3)[0]
    assert len(top.examples) == 1


def test_default_k_and_determinism() -> None:
    assert default_k(8) == 2 and default_k(200) == 10 and default_k(10_000) == 12
    ref, cur, ref_p, cur_p, _, _ = _windows((50, 50, 50, 50), (30, 30, 30, 110))
    a = cluster_shifts(ref, cur, ref_p, cur_p, seed=3)
    b = cluster_shifts(ref, cur, ref_p, cur_p, seed=3)
    assert a == b
    assert 2 <= len(a) <= default_k(400)
    assert a[0].delta > 0.05  # a piece of the city topic still leads


def test_cluster_shifts_refuses_mismatched_prompts() -> None:
    ref, cur, ref_p, cur_p, _, _ = _windows((5, 5, 5, 5), (5, 5, 5, 5))
    with pytest.raises(ValueError, match="current has 20 embedding rows but 19 prompts"):
        cluster_shifts(ref, cur, ref_p, cur_p[:-1])
    with pytest.raises(ValueError, match="width 32 but current has width 31"):
        cluster_shifts(ref, cur[:, :-1], ref_p, cur_p)


def test_term_shifts_finds_the_injected_and_the_removed_term() -> None:
    _, _, ref_p, cur_p, _, _ = _windows((50, 50, 50, 50), (50, 50, 50, 50))
    grew, shrank = term_shifts(ref_p, cur_p)
    assert grew[0].term == "cyberpunk"
    assert grew[0].z > 2
    assert (grew[0].count_reference, grew[0].count_current) == (0, 50)
    assert grew[0].rate_current == pytest.approx(0.25)
    assert shrank[0].term == "watercolor"
    assert shrank[0].z < -2 and shrank[0].count_current == 0
    # Topic words did not move, so they must not look significant.
    everything = {s.term: s for s in grew + shrank}
    assert all(abs(everything[t].z) < 2 for t in TOPICS if t in everything)
    assert all(s.z > 0 for s in grew) and all(s.z < 0 for s in shrank)
    assert [s.z for s in grew] == sorted((s.z for s in grew), reverse=True)
    assert json.loads(json.dumps(grew[0].to_dict())) == grew[0].to_dict()


def test_term_counting_rules() -> None:
    assert tokens("The cat, THE cat and a dog; 4k 8 x") == {"cat", "dog", "4k"}
    ref = ["a red fox"] * 10
    cur = ["a red fox"] * 8 + ["a red fox, zebra zebra zebra", "zebra stripes"]
    grew, _ = term_shifts(ref, cur, min_count=3)
    assert "zebra" not in {s.term for s in grew}  # once per prompt: 2 prompts < min_count 3
    grew, _ = term_shifts(ref, cur, min_count=2)
    assert grew[0].term == "zebra" and grew[0].count_current == 2
    with pytest.raises(ValueError, match="needs prompts in both windows"):
        term_shifts([], cur)
