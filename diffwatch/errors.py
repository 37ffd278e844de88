"""Turning exceptions into the one line a person reads."""

from __future__ import annotations


def first_line(exc: BaseException | None) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    if exc is None:
        return "unknown error"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
