"""Re-generated vs reference images through CLIP, and the same-seed tolerance calibration."""

from __future__ import annotations

import pytest

from diffwatch.drift.compare import calibrate, compare
from diffwatch.scoring.clip.scorer import ClipScorer, load_clip
from tests.tinymodels import photo_like, save_tiny_clip, tiny_clip_settings


def test_tolerance_is_the_floor_or_factor_times_the_largest_repeat_distance():
    assert calibrate([], floor=0.03, factor=3).tolerance == 0.03  # nothing measured
    small = calibrate([0.001, 0.004, 0.002], floor=0.03, factor=3)
    assert small.tolerance == 0.03 and small.max_distance == 0.004
    large = calibrate([0.001, 0.02], floor=0.03, factor=3)
    assert large.tolerance == pytest.approx(0.06) and large.median_distance == 0.0105
    assert large.to_dict()["tolerance"] == pytest.approx(0.06) and large.to_dict()["pairs"] == 2


def test_same_image_is_cosine_one_and_another_is_further(tmp_path):
    clip = ClipScorer(load_clip(tiny_clip_settings(save_tiny_clip(tmp_path))))
    a, b = photo_like(96, 96, seed=1), photo_like(96, 96, seed=2)
    same, other = compare(clip, [a, b], [a, a], ["a red fox", "a red fox"])
    assert same.cosine == pytest.approx(1.0, abs=1e-5) and same.delta == pytest.approx(0, abs=1e-3)
    assert other.distance > same.distance and 0 <= other.clip_regen <= 100
    with pytest.raises(ValueError, match="must pair up"):
        compare(clip, [a], [a, b], ["x"])
