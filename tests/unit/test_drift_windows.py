"""Drift windows: durations end at the anchor, a reference duration precedes the current one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from diffwatch.drift.windows import parse_duration, parse_window, windows

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "span"),
    [("90m", timedelta(minutes=90)), ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)),
     ("2w", timedelta(days=14)), ("1.5h", timedelta(minutes=90)), (" 3 D ", timedelta(days=3))],
)  # fmt: skip
def test_durations(text, span):
    assert parse_duration(text) == span


def test_reference_duration_ends_where_current_starts():
    cur, ref = windows("24h", "7d", T)
    assert (cur.start, cur.end) == (T - timedelta(days=1), T)
    assert (ref.start, ref.end) == (T - timedelta(days=8), T - timedelta(days=1))


def test_explicit_range_naive_times_are_utc():
    w = parse_window("2026-11-01..2026-11-02T06:00", T)
    assert w.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert w.end == datetime(2026, 11, 2, 6, tzinfo=UTC)
    assert w.label() == "2026-11-01 00:00..2026-11-02 06:00 UTC"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("yesterday", "--current 'yesterday': not a window; fix: give a duration"),
        ("0h", "a duration must be positive"),
        ("2026-11-02..2026-11-01", "the end must be after the start"),
        ("2026-13-01..2026-11-01", "is not an ISO 8601 time"),
    ],
)
def test_bad_windows_say_why(text, says):
    with pytest.raises(ValueError) as e:
        parse_window(text, T)
    assert says in str(e.value)
