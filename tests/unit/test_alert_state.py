"""The alert state machine on a clock driven minute by minute (pure: no database)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from diffwatch.model.alert_rules import (
    Rule,
    RuleFileError,
    format_duration,
    parse_duration,
    rules_from_data,
)
from diffwatch.model.alert_state import State, step

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def rule(**kw) -> Rule:
    base = dict(
        id=1,
        name="errors",
        metric="error_rate",
        window="5m",
        comparison=">",
        threshold=0.2,
        recipients=["ops@example.com"],
    )
    return Rule.model_validate(base | kw)


def run(r: Rule, values: list[float | None], every_s: int = 60):
    """Step through ``values`` one per minute; return (states, notices with their minute)."""
    s, states, notices = State(), [], []
    for i, v in enumerate(values):
        s, change = step(r, s, v, T0 + timedelta(seconds=every_s * i))
        states.append(s.state)
        if change and change.notice:
            notices.append((i, change.notice))
    return states, notices


def test_fires_once_after_the_pending_period_and_resolves_after_it() -> None:
    r = rule(**{"for": "3m", "repeat": "1h"})
    states, notices = run(r, [0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert states[:5] == ["normal", "pending", "pending", "pending", "firing"]
    assert notices == [(4, "firing"), (10, "resolved")]
    assert states[7:10] == ["firing", "firing", "firing"]  # clearing for less than 3m
    assert states[10:] == ["resolved", "normal"]


def test_a_breach_shorter_than_the_pending_period_sends_nothing() -> None:
    r = rule(**{"for": "3m"})
    states, notices = run(r, [0.5, 0.5, 0.0] * 10)
    assert notices == [] and "firing" not in states


def test_repeat_emails_at_most_once_per_repeat_interval_while_flapping() -> None:
    r = rule(**{"for": "3m", "repeat": "20m"})
    pattern = ([0.5] * 4 + [0.0]) * 12  # brief clears shorter than the pending period
    _states, notices = run(r, pattern)
    assert notices[0] == (3, "firing")
    assert all(k in ("firing", "repeat") for _, k in notices)
    minutes = [m for m, _ in notices]
    assert all(b - a >= 20 for a, b in itertools.pairwise(minutes))
    assert len(notices) == 3  # minutes 3, 23, 43 of 60


def test_without_a_pending_period_a_flapping_metric_is_held_to_the_repeat_interval() -> None:
    r = rule(**{"for": 0, "repeat": "10m"})
    _, notices = run(r, [0.5, 0.0] * 15)
    firing = [m for m, k in notices if k in ("firing", "repeat")]
    assert firing == [0, 10, 20]  # a re-fire within 10 minutes of the last email is held
    resolved = [m for m, k in notices if k == "resolved"]
    assert resolved == [1, 11, 21]  # only episodes whose firing email went out resolve


def test_no_data_is_its_own_state_and_alerts_only_when_asked() -> None:
    quiet = rule(**{"for": "2m"})
    states, notices = run(quiet, [None] * 5)
    assert states == ["no_data"] * 5 and notices == []
    loud = rule(**{"for": "2m", "alert_on_no_data": True})
    states, notices = run(loud, [None] * 5)
    assert states[2] == "firing" and notices == [(2, "firing")]


def test_an_open_episode_survives_a_gap_in_the_data() -> None:
    r = rule(**{"for": 0, "repeat": "1h"})
    states, notices = run(r, [0.5, None, None, 0.5, 0.0])
    assert states == ["firing", "no_data", "no_data", "firing", "resolved"]
    assert notices == [(0, "firing"), (4, "resolved")]  # no 'resolved' on missing data


@pytest.mark.parametrize(
    ("cmp", "value", "breached"),
    [(">", 0.2, False), (">=", 0.2, True), ("<", 0.1, True), ("<=", 0.3, False)],
)
def test_comparisons(cmp: str, value: float, breached: bool) -> None:
    assert rule(comparison=cmp).breached(value) is breached


def test_durations_round_trip() -> None:
    assert [parse_duration(x) for x in ("90s", "15m", "2h", "1d", 30, "1.5h")] == [
        90, 900, 7200, 86400, 30, 5400,
    ]  # fmt: skip
    assert [format_duration(s) for s in (90, 900, 7200, 86400, 0)] == [
        "90s",
        "15m",
        "2h",
        "1d",
        "0s",
    ]
    with pytest.raises(ValueError, match="15m"):
        parse_duration("soon")


def test_rules_file_errors_name_the_rule_and_the_field() -> None:
    with pytest.raises(RuleFileError, match=r"rule 2 \('b'\): threshold"):
        rules_from_data(
            {
                "defaults": {"recipients": ["a@example.com"], "window": "5m"},
                "rules": [
                    {"name": "a", "metric": "error_rate", "comparison": ">", "threshold": 1},
                    {"name": "b", "metric": "error_rate", "comparison": ">", "threshold": "x"},
                ],
            },
            "rules.yaml",
        )
    with pytest.raises(RuleFileError, match="whole GPU fleet"):
        rules_from_data(
            {
                "rules": [
                    {
                        "name": "idle",
                        "metric": "gpu_idle_share",
                        "deployments": ["canary"],
                        "window": "1h",
                        "comparison": ">",
                        "threshold": 0.5,
                        "recipients": ["a@example.com"],
                    }
                ]
            }
        )
