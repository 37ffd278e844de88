"""The command tree is built once per process: building it again registers nothing twice."""

from __future__ import annotations

import typer

from diffwatch.cli import build


def _count(app: typer.Typer) -> int:
    return len(app.registered_commands) + sum(
        1 + _count(g.typer_instance) for g in app.registered_groups if g.typer_instance
    )


def test_building_twice_adds_no_commands() -> None:
    first = _count(build())
    assert first > 20  # every command module registered
    assert build() is build()
    assert _count(build()) == first
    names = [g.name for g in build().registered_groups]
    assert len(names) == len(set(names)), names
