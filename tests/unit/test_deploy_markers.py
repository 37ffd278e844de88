"""Deploy markers (pure): what a person or a CI job may pass, and the clear errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from diffwatch.model.deploy_markers import MAX_NAME, MAX_NOTE, make_marker

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_marker_keeps_what_was_given_trimmed_and_labels_itself():
    m = make_marker("  v1.5-rc1 ", at=NOW, now=NOW, deployment="canary", note=" JIRA-12 ")
    assert (m.version, m.deployment, m.note, m.source) == ("v1.5-rc1", "canary", "JIRA-12", "cli")
    assert m.label == "v1.5-rc1 → canary"
    everywhere = make_marker("v2", at=NOW, now=NOW, deployment="  ", note="")
    assert everywhere.deployment is None and everywhere.note is None and everywhere.label == "v2"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"version": " "}, "the version must not be empty"),
        ({"version": "v" * (MAX_NAME + 1)}, f"at most {MAX_NAME}"),
        ({"version": "v1\x1b[31m"}, "U+001B"),
        ({"version": "v1\u202egnp.exe"}, "U+202E"),  # right-to-left override: spoofing
        ({"deployment": "can\nary"}, "the deployment contains the control or format"),
        ({"note": "n" * (MAX_NOTE + 1)}, f"at most {MAX_NOTE}"),
        ({"at": NOW.replace(tzinfo=None)}, "has no UTC offset"),
        ({"at": NOW + timedelta(hours=1)}, "is in the future"),
        ({"source": "ui"}, "source must be one of cli, gate"),
    ],
)
def test_bad_input_is_a_clear_error(kw, message):
    args = {"version": "v1", "at": NOW} | kw
    version = args.pop("version")
    with pytest.raises(ValueError, match=re.escape(message)):
        make_marker(version, now=NOW, **args)


def test_a_few_minutes_of_clock_skew_are_accepted():
    assert make_marker("v1", at=NOW + timedelta(minutes=4), now=NOW).at > NOW
