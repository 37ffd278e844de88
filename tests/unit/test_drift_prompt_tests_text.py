"""How the Drift page names a stored run's combination of its two prompt tests."""

from __future__ import annotations

from diffwatch.analytics.drift_combine import ORDERS
from diffwatch.app.views.drift_prompt_tests import COMBINED_HELP, METHOD_TEXTS, method_text
from diffwatch.cli.drift import Combine
from diffwatch.drift.prompts import COMBINE_CHOICES, ClipTextEmbedder, combine_order


def test_every_stored_method_has_words_and_old_runs_read_as_min_p() -> None:
    assert set(METHOD_TEXTS) == set(ORDERS.values())
    seq = method_text({"combined": {"method": "fixed-sequence-lexical-first"}})
    assert seq.startswith("fixed sequence: the lexical test at α first")
    assert "{how}" in COMBINED_HELP and seq in COMBINED_HELP.format(how=seq)
    # a run stored before the choice existed was combined by min-p
    assert method_text({"combined": {"p_value": 0.2}}) == METHOD_TEXTS["westfall-young-minp"]
    assert method_text({"combined": {"method": "<b>x</b>"}}) == "<b>x</b>"  # shown as stored


def test_auto_is_lexical_first_for_the_demos_embedders_and_min_p_for_a_given_clip() -> None:
    assert tuple(c.value for c in Combine) == COMBINE_CHOICES  # the CLI offers every choice
    assert set(COMBINE_CHOICES) - {"auto"} == set(ORDERS)
    given, demo = ClipTextEmbedder(None, "a CLIP"), ClipTextEmbedder(None, "d", general=False)
    assert combine_order("auto", given) == "min-p"
    assert combine_order("auto", demo) == "lexical-first"
    assert combine_order("min-p", demo) == "min-p"  # an explicit choice wins
