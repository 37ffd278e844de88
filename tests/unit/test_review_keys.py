"""The rater's key logic: digits fill quality then adherence, letters toggle flags."""

from __future__ import annotations

import pytest

from diffwatch.app.review_keys import FLAG_KEYS, Choice, legend
from diffwatch.db.models_review import FLAGS


def test_first_digit_sets_quality_second_sets_adherence() -> None:
    c = Choice().digit(4)
    assert (c.quality, c.adherence, c.next_field) == (4, None, "adherence")
    c = c.digit(2)
    assert (c.quality, c.adherence, c.next_field) == (4, 2, "quality")
    assert c.complete()


def test_a_third_digit_starts_over_at_quality() -> None:
    c = Choice().digit(4).digit(2).digit(5)
    assert (c.quality, c.adherence, c.next_field) == (5, 2, "adherence")


def test_a_click_sets_its_own_score_and_the_next_digit_the_other() -> None:
    c = Choice().set("adherence", 3)
    assert (c.quality, c.adherence, c.next_field) == (None, 3, "quality")
    assert c.missing() == ["overall quality"]
    assert Choice().missing() == ["overall quality", "prompt adherence"]


def test_flags_toggle_and_come_out_in_a_fixed_order() -> None:
    c = Choice().toggle("other").toggle("nsfw").toggle("bias").toggle("bias")
    assert c.sorted_flags() == ["nsfw", "other"]


@pytest.mark.parametrize("bad", [0, 6, -1])
def test_scores_out_of_range_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        Choice().digit(bad)


def test_unknown_flag_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown flag"):
        Choice().toggle("spam")


def test_every_flag_has_its_own_key_and_none_is_reserved() -> None:
    assert set(FLAG_KEYS) == set(FLAGS)
    keys = [k for k, _ in FLAG_KEYS.values()]
    assert len(set(keys)) == len(keys)
    assert not {"C", "R", "S", "V"} & set(keys)  # Streamlit's, skip, reveal
    assert all(k in " ".join(k for k, _ in legend()) for k in keys)
