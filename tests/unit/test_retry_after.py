"""Retry-After as servers send it, and as they should not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diffwatch.model.retry_after import MAX_RETRY_AFTER_S, retry_after_seconds

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Mon, 07 Dec 2026 12:02:00 GMT", 120.0),  # RFC 9110's IMF-fixdate
        ("Monday, 07-Dec-26 12:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Mon Dec  7 12:01:00 2026", 60.0),  # asctime form
        ("Mon, 07 Dec 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("99999999999", MAX_RETRY_AFTER_S),  # absurd: capped
    ],
)
def test_both_forms_are_read(value: str, want: float) -> None:
    assert retry_after_seconds(value, NOW) == pytest.approx(want)


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-5", "nan", "inf", "1e999", "12abc", "Mon, 99 Foo", "9" * 100]
)
def test_unreadable_values_are_ignored(value: str | None) -> None:
    assert retry_after_seconds(value, NOW) is None


@given(st.text(max_size=80))
def test_any_text_gives_none_or_a_bounded_delay(value: str) -> None:
    got = retry_after_seconds(value, NOW)
    assert got is None or 0.0 <= got <= MAX_RETRY_AFTER_S
