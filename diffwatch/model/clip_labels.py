"""How a CLIP scorer version reads to a person (pure; the dashboard and reports share it).

Scores carry the scorer version ``<open_clip model>/<weights>``. The demo's own CLIP, trained
on the demo's synthetic scenes (``diffwatch.demo.demo_clip``), must never pass for a real
CLIP, so every place that shows its scores says what it is.
"""

from __future__ import annotations

DEMO_CLIP_NAME = "diffwatch-demo-clip"
DEMO_CLIP_LABEL = (
    "demo CLIP trained on the demo's synthetic scenes (not a real CLIP: its scores mean "
    "something only on the demo's images)"
)
TINY_CLIP_NAME = "diffwatch-tiny-clip"


def is_demo_clip(version: str) -> bool:
    """Whether a CLIP scorer version is the demo CLIP's."""
    return version.split("/", 1)[0] == DEMO_CLIP_NAME


def describe_clip(version: str) -> str:
    """'ViT-B-32/laion2b_s34b_b79k', or the demo CLIP's label with its version."""
    if is_demo_clip(version):
        return f"{DEMO_CLIP_LABEL} [{version}]"
    if version.split("/", 1)[0] == TINY_CLIP_NAME:
        return f"tiny random-weight CLIP, its scores mean nothing [{version}]"
    return version
