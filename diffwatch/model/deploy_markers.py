"""Deploy markers: "version V went out (to deployment D) at time T", drawn on the time-series
charts so that a change in production can be read against the release that caused it.

Pure and frozen: the validation of what a person or a CI job passes, and the marker itself.
Names come from people and pipelines we do not control: they are checked here and rendered
inert wherever they are shown (``diffwatch.app.text``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

SOURCES = ("cli", "gate")  # who put the marker: `diffwatch deploy mark`, or a gate run
MAX_NAME = 200  # characters of a version or deployment name
MAX_NOTE = 500  # characters of a note
FUTURE_SLACK = timedelta(minutes=5)  # clocks differ: a marker this far ahead is accepted


@dataclass(frozen=True, slots=True)
class DeployMarker:
    """One rollout: ``version`` (of any model) reached ``deployment`` (None: everywhere)."""

    at: datetime
    version: str
    deployment: str | None = None
    note: str | None = None
    source: str = "cli"
    created_by: str | None = None
    id: int | None = None

    @property
    def label(self) -> str:
        """Short text for a chart: ``v1.5 → canary`` (not yet made inert)."""
        return f"{self.version} → {self.deployment}" if self.deployment else self.version


def _name(value: str, what: str, limit: int, *, required: bool) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise ValueError(f"{what} must not be empty")
        return None
    if len(text) > limit:
        raise ValueError(f"{what} is {len(text)} characters long; at most {limit} are allowed")
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cs", "Cf")), None)
    if bad is not None:
        raise ValueError(
            f"{what} contains the control or format character U+{ord(bad):04X}; "
            "write it as plain text"
        )
    return text


def make_marker(
    version: str,
    *,
    at: datetime,
    now: datetime,
    deployment: str | None = None,
    note: str | None = None,
    source: str = "cli",
    created_by: str | None = None,
) -> DeployMarker:
    """A validated marker, or ValueError saying which field is wrong and why.

    ``at`` must be timezone-aware and not after ``now`` (plus a few minutes of clock skew).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"the time {at.isoformat()} has no UTC offset; add one, e.g. +00:00")
    if at > now + FUTURE_SLACK:
        raise ValueError(f"the time {at.isoformat()} is in the future (now {now.isoformat()})")
    return DeployMarker(
        at=at,
        version=_name(version, "the version", MAX_NAME, required=True) or "",
        deployment=_name(deployment or "", "the deployment", MAX_NAME, required=False),
        note=_name(note or "", "the note", MAX_NOTE, required=False),
        source=source,
        created_by=created_by,
    )
