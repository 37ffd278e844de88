"""The shared filters, as they live in the URL: parse query parameters, write them back.

Pure: no Streamlit here. A view is a link: ``?range=7d&version=sd15/canary&gpu=H100``.
Time ranges are presets ending now (rounded to the minute) or an explicit
``from=2026-11-01T00:00&to=2026-11-02T00:00`` (UTC), clamped to ``EARLIEST`` .. a day from
now. Anyone can craft a link, so nothing here trusts it: a bad value is dropped with a
message that never repeats the value (a message is Markdown; a value could be a link or an
image), and ids are 1 to 18 ASCII digits (``url_id``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from diffwatch.model.filters import Filters

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "24h"
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""The earliest time a link may ask for; earlier ``from``/``to`` are clamped to it."""
LATEST_AHEAD = timedelta(days=1)
"""How far past now a link may ask for; later times are clamped to now plus this."""
MAX_VALUES = 50  # values of one list parameter (model, version, ...) that are kept
MAX_VALUE_CHARS = 200  # longer values are dropped: no model or GPU name is this long
_ID = re.compile(r"[0-9]{1,18}")
_ISO = re.compile(r"[0-9T:+\-. Z]{4,35}")  # ASCII only: fromisoformat takes other digits
_LISTS = {"model": "models", "version": "versions", "deployment": "deployments", "gpu": "gpu_types"}
KEYS = frozenset({"range", "from", "to", *_LISTS})
"""The query parameters the filters own; pages keep their own (the explorer's ``q``)."""


@dataclass(frozen=True)
class View:
    """What the sidebar shows: a range preset (or 'custom' with start/end) and filters."""

    range: str = DEFAULT_RANGE
    start: datetime | None = None
    end: datetime | None = None
    models: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()
    gpu_types: tuple[str, ...] = ()

    def filters(self, now: datetime | None = None) -> Filters:
        """The query filters for this view, a preset's end being ``now`` to the minute."""
        if self.range == "custom" and self.start and self.end:
            start, end = self.start, self.end
        else:
            end = (now or datetime.now(UTC)).replace(second=0, microsecond=0) + timedelta(minutes=1)
            start = end - RANGES.get(self.range, RANGES[DEFAULT_RANGE])
        return Filters(
            start=start,
            end=end,
            models=self.models,
            versions=self.versions,
            deployments=self.deployments,
            gpu_types=self.gpu_types,
        )


def url_id(value: str | list[str] | None) -> tuple[int | None, bool]:
    """An id from a URL parameter: (the id, or None; whether a value was there but was not
    an id). Ids are 1 to 18 ASCII digits, so they fit Postgres' bigint."""
    text = value[0] if isinstance(value, list) and value else value
    if not isinstance(text, str) or text == "":
        return None, False
    if _ID.fullmatch(text):
        return int(text), False
    return None, True


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [v for item in items for v in item.split(",") if v]


def _time(value: str | list[str] | None) -> datetime | None:
    text = (_as_list(value) or [None])[0]
    if not text or not _ISO.fullmatch(text):
        return None
    try:
        t = datetime.fromisoformat(text)
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _clamp(t: datetime, latest: datetime) -> datetime:
    # Compare in UTC: an offset near year 1 or 9999 must not overflow later arithmetic.
    try:
        t = t.astimezone(UTC)
    except OverflowError:
        return EARLIEST if t.year < 2000 else latest
    return min(max(t, EARLIEST), latest)


def _names(value: str | list[str] | None) -> tuple[tuple[str, ...], bool]:
    """The values of a list parameter that are kept, and whether any were dropped."""
    items = _as_list(value)
    kept = [v for v in items if len(v) <= MAX_VALUE_CHARS and v.isprintable()][:MAX_VALUES]
    return tuple(dict.fromkeys(kept)), len(kept) < len(items)


def parse(
    params: Mapping[str, str | list[str]], now: datetime | None = None
) -> tuple[View, list[str]]:
    """A View from query parameters, and a plain message for each value that was ignored
    or clamped (no message repeats a value from the URL)."""
    problems: list[str] = []
    latest = (now or datetime.now(UTC)).replace(second=0, microsecond=0) + LATEST_AHEAD
    rng = (_as_list(params.get("range")) or [DEFAULT_RANGE])[0]
    start, end = _time(params.get("from")), _time(params.get("to"))
    if rng == "custom" or ("from" in params or "to" in params):
        if start and end:
            clamped = _clamp(start, latest), _clamp(end, latest)
            if clamped != (start, end):
                problems.append(
                    f"from/to in the address were outside the times diffwatch shows "
                    f"({EARLIEST:%Y-%m-%d} to a day from now); they were moved inside them"
                )
            start, end = clamped
        if start and end and start < end:
            rng = "custom"
        else:
            problems.append("from/to must be two ISO times, from before to; showing the last 24h")
            rng, start, end = DEFAULT_RANGE, None, None
    elif rng not in RANGES:
        problems.append(
            f"unknown time range in the address; choose one of {', '.join(RANGES)} "
            "(showing the last 24h)"
        )
        rng = DEFAULT_RANGE
    lists: dict[str, tuple[str, ...]] = {}
    for key, field in _LISTS.items():
        lists[field], dropped = _names(params.get(key))
        if dropped:
            problems.append(
                f"some {key} values in the address were dropped: at most {MAX_VALUES} values "
                f"of at most {MAX_VALUE_CHARS} printable characters each"
            )
    return View(range=rng, start=start, end=end, **lists), problems


def to_params(view: View) -> dict[str, str]:
    """Query parameters for ``view`` (lists comma-separated, defaults left out)."""
    out: dict[str, str] = {}
    if view.range == "custom" and view.start and view.end:
        out["from"] = view.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
        out["to"] = view.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    elif view.range != DEFAULT_RANGE:
        out["range"] = view.range
    for key, field in _LISTS.items():
        values = getattr(view, field)
        if values:
            out[key] = ",".join(values)
    return out


def bad_id(key: str, instead: str) -> str:
    """The message for a ``?key=`` that is not an id (the value itself is not repeated)."""
    return (
        f"The {key} in the address (?{key}=) is not a valid id: ids are whole numbers of 1 to "
        f"18 digits. Showing {instead} instead."
    )
