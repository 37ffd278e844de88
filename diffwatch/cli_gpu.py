"""``diffwatch collect gpu`` (registered on the collect group by diffwatch.cli)."""

from __future__ import annotations

import typer


def register(collect_app: typer.Typer) -> None:
    """Add the ``gpu`` command to ``collect_app``."""
