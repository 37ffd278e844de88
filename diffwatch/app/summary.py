"""Reading a stored run's summary (JSONB written by a drift job, shown by the Drift page):
each value is checked for its type before a page uses it, so a malformed or hostile summary
renders as missing, never as an error or as markup."""

from __future__ import annotations

from typing import Any


def as_dict(v: Any) -> dict[str, Any]:
    """``v`` if it is a dict, else {}."""
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    """``v`` if it is a list, else []."""
    return v if isinstance(v, list) else []


def as_number(v: Any) -> float | None:
    """``v`` as a float if it is a number (not a bool), else None."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def cluster_id(v: Any) -> str:
    """A cluster's id for labels, reduced to letters and digits (labels render Markdown)."""
    return "".join(ch for ch in str(v) if ch.isalnum())[:12] or "?"
