"""Time windows of the drift checks: ``24h``, ``7d``, ``90m`` or ``START..END`` (ISO 8601).

A duration names the span that ends where the next window starts: the current window ends
at the anchor (by default the newest logged generation, so a quiet or replayed log still
has data), and a reference duration is the span just before the current window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_S = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
FORMS = "a duration such as 90m, 24h, 7d or 2w, or START..END in ISO 8601"


@dataclass(frozen=True)
class Window:
    """A half-open time range [start, end), both timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(
                f"window {self.start.isoformat()}..{self.end.isoformat()}: the end must be "
                "after the start"
            )

    def label(self) -> str:
        """``2026-11-20 10:00..2026-11-21 10:00`` (UTC, minutes)."""
        f = "%Y-%m-%d %H:%M"
        return f"{self.start.astimezone(UTC):{f}}..{self.end.astimezone(UTC):{f}} UTC"


def ending_after(ts: datetime) -> datetime:
    """The end of a duration window that includes ``ts`` (windows are half-open)."""
    return ts.replace(microsecond=0) + timedelta(seconds=1)


def parse_duration(text: str) -> timedelta | None:
    """``24h`` → 24 hours; None when ``text`` is not a duration."""
    m = _DURATION.match(text)
    if not m:
        return None
    seconds = float(m.group(1)) * _UNIT_S[m.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"window {text!r}: a duration must be positive")
    return timedelta(seconds=seconds)


def _instant(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{option} {text!r}: {text.strip()!r} is not an ISO 8601 time; fix: use e.g. "
            "2026-11-20T00:00+00:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_window(text: str, end: datetime, option: str = "--current") -> Window:
    """A window from ``text``; a duration ends at ``end``. Naive times are UTC."""
    if ".." in text:
        a, b = text.split("..", 1)
        return Window(_instant(a, option), _instant(b, option))
    try:
        span = parse_duration(text)
    except ValueError as e:
        raise ValueError(f"{option}: {e}") from None
    if span is None:
        raise ValueError(f"{option} {text!r}: not a window; fix: give {FORMS}")
    return Window(end - span, end)


def windows(current: str, reference: str | None, anchor: datetime) -> tuple[Window, Window | None]:
    """(current, reference): the current window ends at ``anchor`` when it is a duration;
    a reference duration ends where the current window starts."""
    cur = parse_window(current, anchor, "--current")
    ref = parse_window(reference, cur.start, "--reference") if reference else None
    return cur, ref
