"""Demo scenes and drawing: the image shows what the prompt asks (colours, shapes, counts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from diffwatch.demo.draw import image_size, render
from diffwatch.demo.scenes import (
    COLOURS,
    IMPLICIT_BACKGROUND,
    Group,
    Scene,
    mutate,
    prompt_of,
    sample_scene,
)


@dataclass
class Blob:
    shape: str
    cy: float  # centroid row (px)
    cx: float  # centroid column (px)


def _shape_of(fill: float, aspect: float) -> str:
    """Name a blob by how much of its bounding box it fills, and the box's width/height."""
    if fill > 0.95:
        return "square"
    if fill > 0.7:
        # A circle's box is square; a hexagon's (flat sides left and right) is not.
        return "circle" if abs(aspect - 1) < 0.06 else "hexagon"
    return "triangle" if fill > 0.46 else "star"


def label(mask: np.ndarray) -> np.ndarray:
    """4-connected components of a boolean mask: each pixel gets its region's smallest index.

    Min-label propagation with pointer jumping (no scipy here); -1 outside the mask.
    """
    h, w = mask.shape
    n = h * w
    lab = np.where(mask.ravel(), np.arange(n), n)
    while True:
        grid = lab.reshape(h, w)
        new = grid.copy()
        new[1:] = np.minimum(new[1:], grid[:-1])
        new[:-1] = np.minimum(new[:-1], grid[1:])
        new[:, 1:] = np.minimum(new[:, 1:], grid[:, :-1])
        new[:, :-1] = np.minimum(new[:, :-1], grid[:, 1:])
        new = np.where(mask.ravel(), new.ravel(), n)
        ext = np.append(new, n)
        for _ in range(4):
            new = ext[new]
            ext = np.append(new, n)
        if np.array_equal(new, lab):
            return np.where(mask.ravel(), lab, -1).reshape(h, w)
        lab = new


def _packed(img: np.ndarray) -> np.ndarray:
    """RGB pixels as one int each (comparing one int is much faster than three)."""
    rgb = img.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _pack(rgb: tuple[int, int, int]) -> int:
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


def blobs(img: np.ndarray, colour: str) -> list[Blob]:
    """Connected regions of exactly ``colour`` in an RGB array, named by shape."""
    labels = label(_packed(img) == _pack(COLOURS[colour]))
    found = []
    for k in np.unique(labels[labels >= 0]):
        ys, xs = np.nonzero(labels == k)
        h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
        found.append(Blob(_shape_of(len(ys) / (h * w), w / h), ys.mean(), xs.mean()))
    return found


def colour_shares(img: np.ndarray) -> dict[str, float]:
    """Fraction of pixels of each named colour; anything else is counted as "other"."""
    values, counts = np.unique(_packed(img), return_counts=True)
    names = {_pack(rgb): name for name, rgb in COLOURS.items()}
    shares: dict[str, float] = {}
    for v, n in zip(values.tolist(), counts.tolist(), strict=True):
        name = names.get(v, "other")
        shares[name] = shares.get(name, 0) + n / img.shape[0] / img.shape[1]
    return shares


def matches(scene: Scene, img: np.ndarray) -> bool:
    """Whether the image shows exactly ``scene``: colours, background, shapes and counts."""
    shares = colour_shares(img)
    wanted = {scene.background, *(g.colour for g in scene.groups)}
    if set(shares) != wanted or max(shares, key=shares.get) != scene.background:
        return False
    for g in scene.groups:
        found = blobs(img, g.colour)
        if len(found) != g.count or any(b.shape != g.shape for b in found):
            return False
    return True


SIZES = [(256, 256), image_size(512, 768), image_size(768, 512)]


def test_prompts_read_like_requests():
    s = Scene("blue", (Group(1, "red", "circle"),))
    assert prompt_of(s) == "a red circle on a blue background"
    two = Scene(
        IMPLICIT_BACKGROUND,
        (Group(2, "green", "triangle"), Group(1, "yellow", "square")),
        relation="above",
        background_named=False,
    )
    assert prompt_of(two) == "two green triangles above a yellow square"
    assert prompt_of(
        Scene("black", (Group(1, "orange", "star"),), style=", flat illustration")
    ) == ("an orange star on a black background, flat illustration")


def test_a_single_shape_image_has_the_prompted_colours_with_the_background_dominant():
    scene = Scene("blue", (Group(1, "red", "circle"),))
    img = np.asarray(render(scene, (256, 256), np.random.default_rng(0)))
    shares = colour_shares(img)
    assert set(shares) == {"blue", "red"}
    assert shares["blue"] > shares["red"] > 0.05
    assert [b.shape for b in blobs(img, "red")] == ["circle"]


@pytest.mark.parametrize("size", SIZES)
def test_every_sampled_scene_is_drawn_as_prompted(size):
    rng = np.random.default_rng(11)
    for _ in range(120):
        scene = sample_scene(rng)
        img = np.asarray(render(scene, size, rng))
        assert img.shape == (size[1], size[0], 3)
        assert matches(scene, img), prompt_of(scene)


def test_relations_put_the_first_group_where_the_prompt_says():
    where = {
        "above": lambda a, b: a.cy < b.cy,
        "below": lambda a, b: a.cy > b.cy,
        "to the left of": lambda a, b: a.cx < b.cx,
        "to the right of": lambda a, b: a.cx > b.cx,
    }
    for relation, ok in where.items():
        scene = Scene(
            "white", (Group(2, "red", "square"), Group(3, "blue", "star")), relation=relation
        )
        img = np.asarray(render(scene, (256, 256), np.random.default_rng(3)))
        first, second = blobs(img, "red"), blobs(img, "blue")
        assert len(first) == 2 and len(second) == 3
        assert all(ok(a, b) for a in first for b in second), relation


def test_garbled_scenes_no_longer_match_their_prompt():
    rng = np.random.default_rng(5)
    kinds = set()
    for _ in range(200):
        scene = sample_scene(rng)
        wrong = mutate(scene, rng)
        assert prompt_of(wrong) != prompt_of(scene)
        img = np.asarray(render(wrong, (256, 256), rng))
        assert not matches(scene, img), prompt_of(scene)
        assert matches(wrong, img)
        if wrong.background != scene.background:
            kinds.add("background")
        for g, w in zip(scene.groups, wrong.groups, strict=True):
            kinds |= {
                k
                for k, a, b in [
                    ("colour", g.colour, w.colour),
                    ("shape", g.shape, w.shape),
                    ("count", g.count, w.count),
                ]
                if a != b
            }
    assert kinds == {"colour", "shape", "count", "background"}


def test_sampled_scenes_vary_and_never_hide_a_shape_in_the_background():
    rng = np.random.default_rng(2)
    scenes = [sample_scene(rng) for _ in range(500)]
    assert len({prompt_of(s) for s in scenes}) > 400
    assert {len(s.groups) for s in scenes} == {1, 2}
    assert {g.shape for s in scenes for g in s.groups} == {
        "circle",
        "square",
        "triangle",
        "star",
        "hexagon",
    }
    for s in scenes:
        colours = [g.colour for g in s.groups]
        assert s.background not in colours and len(set(colours)) == len(colours)


def test_image_size_keeps_the_aspect_ratio():
    assert image_size(512, 512) == (256, 256)
    assert image_size(512, 768) == (171, 256)
    assert image_size(1024, 1024) == (256, 256)
