"""CLIP scores that can be wrong: the trained demo CLIP, through the worker's CPU path.

Matching prompts must score above garbled ones for every garbling kind, and matching pairs
must score as high as the model scores them outside the worker. A preprocessing bug (wrong
mean or std, channels swapped, no normalisation) fails these tests; docs/clip.md lists which
test each deliberate break failed.
"""

from __future__ import annotations

import numpy as np
import pytest

from diffwatch.demo.scenes import MUTATIONS
from tests.clip_truth import (
    MIN_MATCHING_MEAN,
    MIN_WIN_RATE,
    gaps,
    matching_mean,
    reference_scores,
    score_with_demo_clip,
    seed_truth,
    stored_scores,
)


@pytest.fixture
def scored_on_cpu(tmp_path, conninfo, demo_clip):
    seeded = seed_truth(conninfo, tmp_path / "truth")
    score_with_demo_clip(conninfo, demo_clip, device="cpu")
    return seeded, stored_scores(conninfo)


def test_matching_prompts_beat_garbled_ones_for_every_kind(scored_on_cpu):
    seeded, scores = scored_on_cpu
    assert len(scores) == len(seeded.ids)
    found = gaps(seeded, scores)
    print("matching minus garbled CLIPScore, matching wins:", found)
    for kind in MUTATIONS:
        gap, wins = found[kind]
        assert gap > 0 and wins >= MIN_WIN_RATE[kind], (kind, gap, wins)


def test_matching_pairs_score_as_high_as_the_model_scores_them(scored_on_cpu, demo_clip):
    seeded, scores = scored_on_cpu
    print("mean CLIPScore of matching pairs:", matching_mean(seeded, scores))
    assert matching_mean(seeded, scores) > MIN_MATCHING_MEAN
    # The trainer's own held-out evaluation (the scorer's API, no worker) sees the same level.
    assert abs(matching_mean(seeded, scores) - demo_clip.quality.matching_mean) < 5.0


def test_the_workers_scores_match_a_reference_computed_apart_from_its_input_path(
    scored_on_cpu, conninfo, demo_clip
):
    # The reference decodes with Pillow and preprocesses with open_clip's own transform;
    # the worker decodes and preprocesses in batches with its own code. They agree within
    # one uint8 level of resizing, far inside this tolerance; a wrong mean or std, a channel
    # swap or a missing normalisation moves scores by whole points.
    seeded, scores = scored_on_cpu
    ref = reference_scores(conninfo, demo_clip)
    diff = np.array([abs(scores[g] - ref[g]) for g in seeded.ids.values()])
    print(f"|worker - reference| CLIPScore: max {diff.max():.3f}, mean {diff.mean():.3f}")
    assert diff.max() <= 0.5 and diff.mean() <= 0.1


def test_the_demo_clip_has_learned_the_scenes(demo_clip):
    q = demo_clip.quality
    assert q.heldout == 500 and q.retrieval_pool == 100
    assert q.retrieval_top1 > 0.5  # chance is 0.01
    assert all(q.gap(k).gap > 0 for k in MUTATIONS)
    assert np.isfinite(demo_clip.final_loss)
