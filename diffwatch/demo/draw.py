"""Draw a scene as a flat-colour image (pure: returns a Pillow image, writes nothing)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from diffwatch.demo.scenes import COLOURS, Group, Scene

MAX_SIDE = 256  # px: images are the logged size scaled down to this long side

Box = tuple[float, float, float, float]  # left, top, right, bottom (px)


def image_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The logged ``width`` x ``height`` (px) scaled so the long side is ``max_side`` px."""
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _regions(scene: Scene, w: int, h: int) -> list[Box]:
    if len(scene.groups) == 1:
        return [(0, 0, w, h)]
    top, bottom = (0, 0, w, h / 2), (0, h / 2, w, h)
    left, right = (0, 0, w / 2, h), (w / 2, 0, w, h)
    return {
        "above": [top, bottom],
        "below": [bottom, top],
        "to the left of": [left, right],
        "next to": [left, right],
        "to the right of": [right, left],
    }[scene.relation or "next to"]


def _grid(count: int, wide: bool) -> tuple[int, int]:
    cols, rows = {1: (1, 1), 2: (2, 1), 3: (3, 1), 4: (2, 2)}[count]
    return (cols, rows) if wide else (rows, cols)


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    pts = []
    for k in range(10):
        rad = r if k % 2 == 0 else r * 0.45
        a = -math.pi / 2 + k * math.pi / 5
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def _shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        s = r * 0.85
        d.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    elif shape == "triangle":
        d.regular_polygon((cx, cy + r * 0.2, r), 3, fill=fill)
    elif shape == "star":
        d.polygon(_star(cx, cy, r), fill=fill)
    elif shape == "hexagon":
        d.regular_polygon((cx, cy, r), 6, fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of circle, square, ...")


def _group(d: ImageDraw.ImageDraw, g: Group, box: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = box
    cols, rows = _grid(g.count, wide=(x1 - x0) >= (y1 - y0))
    cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
    fill = COLOURS[g.colour]
    for k in range(g.count):
        cx = x0 + (k % cols + 0.5) * cw
        cy = y0 + (k // cols + 0.5) * ch
        cell = min(cw, ch)
        # Size and position jitter stay inside the cell, so shapes never touch.
        r = cell * 0.36 * float(rng.uniform(0.8, 1.0))
        jx, jy = rng.uniform(-0.06, 0.06, size=2) * cell
        _shape(d, g.shape, cx + jx, cy + jy, r, fill)


def render(scene: Scene, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Draw ``scene`` at ``size`` (px): flat colours, no anti-aliasing, shapes in a grid."""
    w, h = size
    img = Image.new("RGB", size, COLOURS[scene.background])
    d = ImageDraw.Draw(img)
    for g, box in zip(scene.groups, _regions(scene, w, h), strict=True):
        _group(d, g, box, rng)
    return img
