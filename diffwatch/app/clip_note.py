"""Which CLIP made the scores a page shows: a line under them, so the demo's CLIP (trained on
the demo's synthetic scenes) is never read as a real CLIP's verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from diffwatch.app.text import md
from diffwatch.model.clip_labels import describe_clip, is_demo_clip


def text(versions: Sequence[Any], what: str = "scores") -> str:
    """The note as plain text: each CLIP scorer version (``.version``, ``.n``) described."""
    named = [f"{describe_clip(v.version)} ({v.n:,} {what})" for v in versions]
    if len(named) == 1:
        return f"CLIP scores by {named[0]}."
    return "CLIP scores by several CLIP versions, mixed in these figures: " + "; ".join(named)


def show(versions: Sequence[Any], what: str = "scores") -> None:
    """Write the note (nothing when there are no CLIP scores): the demo CLIP as a notice,
    a real CLIP as a caption. Versions come from the scoring workers: shown inert."""
    if not versions:
        return
    note = md(text(versions, what))
    if any(is_demo_clip(v.version) for v in versions):
        st.info(note, icon=":material/science:")
    else:
        st.caption(note)
