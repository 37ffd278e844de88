"""The review policy: defaults, validation, TOML loading and the deterministic K share."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffwatch.model.review_policy import PolicyError, ReviewPolicy, k_draw


def test_defaults() -> None:
    p = ReviewPolicy()
    assert (p.random_per_version, p.low_clip_quantile, p.low_clip_max) == (20, 0.05, 20)
    assert (p.nsfw_flagged_max, p.canary_max, p.window_h) == (20, 20, 24.0)
    assert (p.k_default, p.k2_share, p.k_high) == (1, 0.1, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"random_per_version": -1}, "random_per_version must be at least 0"),
        ({"canary_max": 2.5}, "canary_max must be a whole number"),
        ({"nsfw_flagged_max": True}, "nsfw_flagged_max must be a whole number"),
        ({"low_clip_quantile": 1.0}, "low_clip_quantile must be in [0, 1)"),
        ({"low_clip_quantile": "0.05"}, "low_clip_quantile must be a number"),
        ({"k2_share": 1.5}, "k2_share must be in [0, 1]"),
        ({"k_default": 0}, "k_default must be at least 1"),
        ({"window_h": 0}, "window_h must be a positive number of hours"),
    ],
)
def test_invalid_values_name_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(PolicyError) as e:
        ReviewPolicy(**kwargs)
    assert message in str(e.value)


def test_from_toml_top_level_and_review_table(tmp_path: Path) -> None:
    top = tmp_path / "top.toml"
    top.write_text("random_per_version = 5\nwindow_h = 6\nk2_share = 0.25\n")
    p = ReviewPolicy.from_toml(top)
    assert (p.random_per_version, p.window_h, p.k2_share) == (5, 6.0, 0.25)
    assert isinstance(p.window_h, float)
    assert p.canary_max == 20  # missing keys keep their defaults
    table = tmp_path / "table.toml"
    table.write_text("[review]\nk_high = 3\nlow_clip_max = 0\n")
    p = ReviewPolicy.from_toml(table)
    assert (p.k_high, p.low_clip_max) == (3, 0)


def test_from_toml_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad_key.toml"
    bad_key.write_text("random_per_versoin = 5\n")
    with pytest.raises(PolicyError, match=r"bad_key.toml: unknown key\(s\) random_per_versoin"):
        ReviewPolicy.from_toml(bad_key)
    bad_value = tmp_path / "bad_value.toml"
    bad_value.write_text('canary_max = "many"\n')
    with pytest.raises(PolicyError, match=r"bad_value.toml: .*canary_max must be a whole"):
        ReviewPolicy.from_toml(bad_value)
    bad_syntax = tmp_path / "bad_syntax.toml"
    bad_syntax.write_text("window_h = = 3\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        ReviewPolicy.from_toml(bad_syntax)
    with pytest.raises(PolicyError, match="not found"):
        ReviewPolicy.from_toml(tmp_path / "missing.toml")


def test_k_assignment_is_deterministic_and_near_the_share() -> None:
    p = ReviewPolicy(k2_share=0.1, k_high=2)
    ks = [p.required_ratings(i) for i in range(1, 20_001)]
    assert ks == [ReviewPolicy(k2_share=0.1).required_ratings(i) for i in range(1, 20_001)]
    assert set(ks) == {1, 2}
    share = ks.count(2) / len(ks)
    assert 0.09 < share < 0.11  # binomial sd ≈ 0.002
    assert all(0.0 <= k_draw(i) < 1.0 for i in range(100))


def test_k_share_edges() -> None:
    assert {ReviewPolicy(k2_share=0.0).required_ratings(i) for i in range(500)} == {1}
    assert {ReviewPolicy(k2_share=1.0, k_high=3).required_ratings(i) for i in range(500)} == {3}
