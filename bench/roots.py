"""Benchmarks write their images to temporary directories: name those as image roots."""

from __future__ import annotations

import os


def allow_images(directory: str | os.PathLike[str]) -> None:
    """Let this process (and its children) read images under ``directory``.

    Image reads are confined to ``DIFFWATCH_IMAGE_ROOTS`` (docs/scoring.md); a benchmark
    names its own scratch directory there, as an operator names their image storage.
    """
    roots = [r for r in os.environ.get("DIFFWATCH_IMAGE_ROOTS", "").split(",") if r.strip()]
    os.environ["DIFFWATCH_IMAGE_ROOTS"] = ",".join([*roots, os.path.realpath(directory)])
