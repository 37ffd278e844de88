"""Reading an HTTP ``Retry-After`` header (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.

Pure: the caller passes the current time for the date form. Servers we do not control send
it, so anything unreadable, negative or absurd is ignored rather than trusted: a value comes
back as seconds in ``[0, MAX_RETRY_AFTER_S]`` or as None.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 7 * 86400.0  # a week: beyond that the header is not taken at its word
_MAX_LEN = 64


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when absent or unreadable.

    ``now`` (aware) is when the answer came, for the HTTP-date form (default: the wall
    clock). A date in the past gives 0. Fractional seconds are accepted (some servers send
    them) and capped at ``MAX_RETRY_AFTER_S``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_LEN:
        return None
    if text[0].isdigit():
        try:
            seconds = float(text)
        except ValueError:
            return None
        if not math.isfinite(seconds):
            return None
        return min(seconds, MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's unknown zone; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)
