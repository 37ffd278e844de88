"""How many torch threads the demo CLIP trains with."""

from __future__ import annotations

import os

import pytest

from diffwatch.demo.demo_clip import THREADS_ENV, TrainOptions, default_train_threads


def test_the_suite_trains_on_one_thread_and_a_lone_demo_on_up_to_two(monkeypatch) -> None:
    assert os.environ[THREADS_ENV] == "1"  # set by tests/conftest.py for the whole run
    assert default_train_threads() == 1
    monkeypatch.delenv(THREADS_ENV)
    assert default_train_threads() == max(1, min(2, os.cpu_count() or 1))
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_train_threads() == 3
    # threads is not part of the recipe: the same weights, whatever the threads
    assert TrainOptions(threads=1).key() == TrainOptions(threads=2).key() == TrainOptions().key()


@pytest.mark.parametrize("raw", ["0", "two", "-1", "1.5"])
def test_a_bad_thread_count_is_refused_with_the_variable_named(monkeypatch, raw: str) -> None:
    monkeypatch.setenv(THREADS_ENV, raw)
    with pytest.raises(
        ValueError, match=f"DIFFWATCH_DEMO_CLIP_THREADS must be a whole number .*{raw!r}"
    ):
        default_train_threads()
