"""Simple scenes of coloured shapes: sampled at random, described as prompts, and garbled.

A scene is what a prompt asks for; the image drawn from it (``draw.render``) shows exactly
that, so an image-text model such as CLIP scores matching pairs higher than garbled ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# Flat colours far enough apart that a pixel's colour names itself (RGB, 0-255).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "orange": (245, 140, 20),
    "yellow": (245, 215, 40),
    "green": (40, 160, 70),
    "blue": (40, 80, 210),
    "purple": (130, 60, 170),
    "pink": (240, 140, 190),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon")
COUNT_WORDS = {2: "two", 3: "three", 4: "four"}
# How the first group sits relative to the second, as the prompt says it.
RELATIONS: tuple[str, ...] = ("above", "below", "to the left of", "to the right of", "next to")
IMPLICIT_BACKGROUND = "white"  # what a prompt that names no background gets
STYLES: tuple[str, ...] = (
    "",
    "",
    ", flat illustration",
    ", simple vector art",
    ", minimalist poster",
    ", centered, high contrast",
    ", clean geometric design",
)
MUTATIONS: tuple[str, ...] = ("colour", "shape", "count", "background")


@dataclass(frozen=True, slots=True)
class Group:
    """``count`` shapes of one kind and colour."""

    count: int
    colour: str
    shape: str


@dataclass(frozen=True, slots=True)
class Scene:
    """One or two groups of shapes on a plain background."""

    background: str
    groups: tuple[Group, ...]
    relation: str | None = None  # set when there are two groups
    background_named: bool = True  # whether the prompt names the background
    style: str = ""


def noun_phrase(g: Group) -> str:
    """ "a red circle", "an orange star", "three green triangles"."""
    if g.count == 1:
        article = "an" if g.colour[0] in "aeiou" else "a"
        return f"{article} {g.colour} {g.shape}"
    return f"{COUNT_WORDS[g.count]} {g.colour} {g.shape}s"


def prompt_of(scene: Scene) -> str:
    """The prompt that asks for ``scene``."""
    if len(scene.groups) == 1:
        text = noun_phrase(scene.groups[0])
    else:
        first, second = scene.groups
        text = f"{noun_phrase(first)} {scene.relation} {noun_phrase(second)}"
    if scene.background_named:
        text += f" on a {scene.background} background"
    return text + scene.style


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _count(rng: np.random.Generator) -> int:
    return int(rng.choice(4, p=(0.55, 0.25, 0.12, 0.08))) + 1


def sample_scene(rng: np.random.Generator) -> Scene:
    """A random scene: one group (60%) or two groups in a spatial relation (40%)."""
    style = _pick(rng, STYLES)
    if rng.random() < 0.6:
        background = _pick(rng, list(COLOURS))
        colour = _pick(rng, [c for c in COLOURS if c != background])
        return Scene(background, (Group(_count(rng), colour, _pick(rng, SHAPES)),), style=style)
    named = rng.random() < 0.5
    background = _pick(rng, list(COLOURS)) if named else IMPLICIT_BACKGROUND
    c1, c2 = rng.choice([c for c in COLOURS if c != background], size=2, replace=False)
    s1, s2 = _pick(rng, SHAPES), _pick(rng, SHAPES)
    # Fewer shapes per group when there are two groups, so each stays recognisable.
    n1, n2 = min(_count(rng), 3), min(_count(rng), 3)
    return Scene(
        background,
        (Group(n1, str(c1), s1), Group(n2, str(c2), s2)),
        relation=_pick(rng, RELATIONS),
        background_named=named,
        style=style,
    )


# The demo's trending topic: a night sky (yellow or white stars on a dark background) whose
# share of prompts climbs over the last hours of the window, so prompt drift has a real shift
# to find and "what moved" a topic to name.
TREND_TOPIC = "starry night"
TREND_WORDS = ("star", "stars", "night")


def sample_trend_scene(rng: np.random.Generator) -> Scene:
    """A scene of the trending topic: one or two groups of stars on a black or blue sky."""
    background = _pick(rng, ["black", "blue"])
    style = _pick(rng, [", night sky", ", starry night", ", night sky, flat illustration"])
    if rng.random() < 0.6:
        group = Group(_count(rng), _pick(rng, ["yellow", "white"]), "star")
        return Scene(background, (group,), style=style)
    return Scene(
        background,
        (Group(min(_count(rng), 3), "yellow", "star"), Group(min(_count(rng), 3), "white", "star")),
        relation=_pick(rng, RELATIONS),
        style=style,
    )


def mutate(scene: Scene, rng: np.random.Generator, kind: str | None = None) -> Scene:
    """A scene unlike ``scene``'s prompt: one colour, shape, count or background changed.

    ``kind`` (one of ``MUTATIONS``) picks what changes; by default it is drawn from ``rng``.
    """
    if kind is None:
        kind = _pick(rng, MUTATIONS)
    elif kind not in MUTATIONS:
        raise ValueError(f"mutate: unknown kind {kind!r}; expected one of {', '.join(MUTATIONS)}")
    if kind == "background" and not scene.background_named:
        kind = "colour"  # an unnamed background is not part of the prompt
    groups = list(scene.groups)
    i = int(rng.integers(len(groups)))
    g = groups[i]
    used = {scene.background, *(x.colour for x in groups)}
    if kind == "colour":
        groups[i] = replace(g, colour=_pick(rng, [c for c in COLOURS if c not in used]))
    elif kind == "shape":
        groups[i] = replace(g, shape=_pick(rng, [s for s in SHAPES if s != g.shape]))
    elif kind == "count":
        groups[i] = replace(g, count=g.count + 1 if g.count < 3 else g.count - 1)
    else:
        return replace(scene, background=_pick(rng, [c for c in COLOURS if c not in used]))
    return replace(scene, groups=tuple(groups))
