"""The shared filters, as they live in the URL: parse query parameters, write them back.

Pure: no Streamlit here. A view is a link: ``?range=7d&version=sd15/canary&gpu=H100``.
Time ranges are presets ending now (rounded to the minute) or an explicit
``from=2026-11-01T00:00&to=2026-11-02T00:00`` (UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from db.queries.dashboard_filters import Filters

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "24h"
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


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [v for item in items for v in item.split(",") if v]


def _time(value: str | list[str] | None) -> datetime | None:
    text = (_as_list(value) or [None])[0]
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse(params: Mapping[str, str | list[str]]) -> tuple[View, list[str]]:
    """A View from query parameters, and a message for each value that was ignored."""
    problems: list[str] = []
    rng = (_as_list(params.get("range")) or [DEFAULT_RANGE])[0]
    start, end = _time(params.get("from")), _time(params.get("to"))
    if rng == "custom" or ("from" in params or "to" in params):
        if start and end and start < end:
            rng = "custom"
        else:
            problems.append("from/to must be two ISO times, from before to; showing the last 24h")
            rng, start, end = DEFAULT_RANGE, None, None
    elif rng not in RANGES:
        problems.append(f"unknown range {rng!r}; choose one of {', '.join(RANGES)}")
        rng = DEFAULT_RANGE
    lists = {field: tuple(_as_list(params.get(key))) for key, field in _LISTS.items()}
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
