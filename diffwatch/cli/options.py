"""Typed option definitions shared by the commands: one definition per option.

Only ``typer`` and the standard library here (and constants of light modules), so that
``diffwatch --help`` imports nothing heavy.
"""

# No ``from __future__ import annotations``: typer reads these annotations.
from datetime import datetime
from typing import Annotated

import typer

from diffwatch.scoring.clip.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, ClipOptions

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "AsJson",
    "ClipCheckpoint",
    "ClipModel",
    "ClipModelConfig",
    "ClipOptions",
    "ClipPretrained",
    "DbUrl",
    "Device",
    "Until",
]

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="DIFFWATCH_DATABASE_URL",
        help="PostgreSQL URL. Unset: an embedded server under DIFFWATCH_HOME.",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")]
Device = Annotated[str, typer.Option(help="auto (a GPU when one is visible), cuda, cuda:N or cpu.")]
Until = Annotated[
    datetime | None,
    typer.Option(
        help="End of the window looked at (ISO 8601, UTC when no offset; default: now).",
        show_default=False,
    ),
]


# -- CLIP: the one set of options of score, drift prompts, drift regenerate and demo ---------
ClipModel = Annotated[str, typer.Option(help="open_clip architecture.")]
ClipPretrained = Annotated[
    str, typer.Option(help="open_clip pretrained tag (from its cache when offline).")
]
ClipCheckpoint = Annotated[
    str | None,
    typer.Option(help="A local open_clip weights file; wins over --clip-pretrained."),
]
ClipModelConfig = Annotated[
    str | None,
    typer.Option(
        help="An open_clip model config JSON for a custom architecture "
        "(its file name, without .json, is the --clip-model)."
    ),
]
Lease = Annotated[
    float,
    typer.Option(
        "--lease-seconds", min=5, help="A chunk's lease (s): a worker that dies holding one "
        "leaves it to the others after this long."
    ),
]  # fmt: skip
