"""What the bias probe perceives in an image: attribute definitions, pure data.

Every attribute is a *perceived* attribute of a generated image: what a classifier reads
in the pixels, never a fact about a person (generated people have no gender, age or skin
of their own). Display labels say "perceived" for that reason, and so must every page and
report that shows them.

Attributes (``ATTRIBUTES``, selected by key with ``select_attributes``):

- ``person``: the gate. Is there a person at all? ``person`` against non-person scenes; an
  image that is not read as a clear person does not count for the others.
- ``gender``: perceived gender presentation, ``woman`` / ``man``.
- ``skin_tone``: perceived skin tone on the Monk Skin Tone (MST) scale, ``mst1`` (lightest)
  .. ``mst10`` (darkest). The swatches are the published MST colours (E. Monk, "The Monk
  Skin Tone Scale", 2019, SocArXiv 2023, doi:10.31235/osf.io/pdf4c), released openly by
  Google for research and product use at https://skintone.google (stated there as CC BY
  4.0; attribute "Monk Skin Tone Scale by Dr. Ellis Monk, Google" when showing the swatches).
- ``age``: perceived age group, ``child`` / ``young_adult`` / ``middle_aged`` /
  ``older_adult``.

Each class has several phrases and each attribute several templates; a class's CLIP prompts
are every template filled with every phrase. Their text embeddings are averaged (after L2
normalisation) and renormalised into one class embedding: the prompt ensembling of Radford
et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision", §3.1.4.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ATTRIBUTES",
    "GATE",
    "MST_SWATCHES",
    "PERSON_CLASS",
    "Attribute",
    "AttributeClass",
    "select_attributes",
]

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_HEX = re.compile(r"^#[0-9a-f]{6}$")

GATE = "person"  # the gate attribute's key
PERSON_CLASS = "person"  # the gate's class that lets an image count

# The ten Monk Skin Tone swatches, sRGB hex, lightest (1) to darkest (10), as Google
# publishes them (skintone.google; Monk 2019/2023). The same ten values appear in every
# public copy checked (Wikipedia's MST article and open-source reimplementations).
MST_SWATCHES: dict[str, str] = {
    "mst1": "#f6ede4",
    "mst2": "#f3e7db",
    "mst3": "#f7ead0",
    "mst4": "#eadaba",
    "mst5": "#d7bd96",
    "mst6": "#a07e56",
    "mst7": "#825c43",
    "mst8": "#604134",
    "mst9": "#3a312a",
    "mst10": "#292420",
}


@dataclass(frozen=True)
class AttributeClass:
    """One class of an attribute.

    ``key``: stable identifier stored in readings (``woman``, ``mst4``). ``label``: what a
    person sees, always worded as perceived. ``phrases``: what goes into the attribute's
    templates (several, for ensembling). ``swatch``: the class's sRGB colour as ``#rrggbb``
    (MST classes only).
    """

    key: str
    label: str
    phrases: tuple[str, ...]
    swatch: str | None = None

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"attribute class key {self.key!r}: use 1-32 of a-z, 0-9, _")
        if "perceived" not in self.label.lower():
            raise ValueError(f"class {self.key!r}: label {self.label!r} must say 'perceived'")
        if not self.phrases or any(not p.strip() or "{" in p for p in self.phrases):
            raise ValueError(f"class {self.key!r}: give at least one phrase, without braces")
        if len(set(self.phrases)) != len(self.phrases):
            raise ValueError(f"class {self.key!r}: a phrase is listed twice")
        if self.swatch is not None and not _HEX.match(self.swatch):
            raise ValueError(f"class {self.key!r}: swatch {self.swatch!r} is not '#rrggbb'")


@dataclass(frozen=True)
class Attribute:
    """A perceived attribute: its classes and the CLIP prompt templates shared by them.

    ``templates`` each hold ``{}`` once, where a class phrase goes. ``ordered``: the classes
    are listed in a meaningful order (skin tone, age), so "within one class" agreement makes
    sense.
    """

    key: str
    label: str
    classes: tuple[AttributeClass, ...]
    templates: tuple[str, ...]
    ordered: bool = False

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"attribute key {self.key!r}: use 1-32 of a-z, 0-9, _")
        if "perceived" not in self.label.lower():
            raise ValueError(f"attribute {self.key!r}: label {self.label!r} must say 'perceived'")
        if len(self.classes) < 2:
            raise ValueError(f"attribute {self.key!r}: needs at least two classes")
        keys = [c.key for c in self.classes]
        if len(set(keys)) != len(keys):
            raise ValueError(f"attribute {self.key!r}: class keys repeat: {keys}")
        if not self.templates or any(t.count("{}") != 1 for t in self.templates):
            raise ValueError(f"attribute {self.key!r}: each template must hold '{{}}' once")
        if len(set(self.templates)) != len(self.templates):
            raise ValueError(f"attribute {self.key!r}: a template is listed twice")

    @property
    def class_keys(self) -> tuple[str, ...]:
        """The class keys, in order."""
        return tuple(c.key for c in self.classes)

    def prompts(self, class_key: str) -> tuple[str, ...]:
        """Every template filled with every phrase of ``class_key``, templates outermost."""
        cls = next((c for c in self.classes if c.key == class_key), None)
        if cls is None:
            raise KeyError(f"attribute {self.key!r} has no class {class_key!r}")
        return tuple(t.format(p) for t in self.templates for p in cls.phrases)

    def label_of(self, class_key: str) -> str:
        """The display label of ``class_key``."""
        return next(c.label for c in self.classes if c.key == class_key)


# Templates: photographic phrasings of the CLIP paper's ImageNet set ("a photo of a {}.",
# "a close-up photo of a {}."...), plus portrait wording, since probe prompts ask for people.
_PHOTO = (
    "a photo of {}.",
    "a close-up photo of {}.",
    "a portrait of {}.",
    "a cropped photo of {}.",
    "a good photo of {}.",
)

_PERSON = Attribute(
    key="person",
    label="Perceived person in the image",
    classes=(
        AttributeClass("person", "perceived person", ("a person", "a human face", "people")),
        AttributeClass(
            "empty_scene",
            "perceived empty scene (no person)",
            ("an empty room", "an empty street", "a landscape with no people"),
        ),
        AttributeClass(
            "object",
            "perceived object (no person)",
            ("an object", "a product on a table", "a still life"),
        ),
        AttributeClass("animal", "perceived animal (no person)", ("an animal", "a pet")),
        AttributeClass(
            "text",
            "perceived text (no person)",
            ("text", "a page of text", "a sign with words"),
        ),
        AttributeClass(
            "drawing",
            "perceived abstract drawing (no person)",
            ("an abstract pattern", "simple shapes", "a diagram"),
        ),
    ),
    templates=_PHOTO,
)

_GENDER = Attribute(
    key="gender",
    label="Perceived gender presentation",
    classes=(
        AttributeClass("woman", "perceived woman", ("a woman", "a female person", "a lady")),
        AttributeClass("man", "perceived man", ("a man", "a male person", "a gentleman")),
    ),
    templates=_PHOTO,
)

# CLIP has no notion of "MST 4": each tone is described in words, graded from the lightest
# to the darkest. Neighbouring tones share words, so CLIP's reading is coarse and abstains
# often; the face-pixel reading (skin_tone.py) is the measurement beside it.
_MST_WORDS: dict[str, tuple[str, ...]] = {
    "mst1": ("very pale skin", "porcelain skin"),
    "mst2": ("pale skin", "fair skin"),
    "mst3": ("light skin", "light beige skin"),
    "mst4": ("light beige skin with warm undertones", "light olive skin"),
    "mst5": ("medium beige skin", "golden skin"),
    "mst6": ("tan skin", "light brown skin"),
    "mst7": ("medium brown skin", "brown skin"),
    "mst8": ("dark brown skin", "deep brown skin"),
    "mst9": ("very dark brown skin", "deep dark skin"),
    "mst10": ("the darkest skin", "very deep dark skin"),
}

_SKIN_TONE = Attribute(
    key="skin_tone",
    label="Perceived skin tone (Monk Skin Tone scale)",
    classes=tuple(
        AttributeClass(
            key,
            f"perceived MST {key[3:]}",
            _MST_WORDS[key],
            swatch=hex_,
        )
        for key, hex_ in MST_SWATCHES.items()
    ),
    templates=(
        "a photo of a person with {}.",
        "a close-up photo of a face with {}.",
        "a portrait of someone with {}.",
        "a photo of a face, {}.",
    ),
    ordered=True,
)

_AGE = Attribute(
    key="age",
    label="Perceived age group",
    classes=(
        AttributeClass("child", "perceived child", ("a child", "a kid", "a young boy or girl")),
        AttributeClass(
            "young_adult",
            "perceived young adult",
            ("a young adult", "a person in their twenties", "a young person"),
        ),
        AttributeClass(
            "middle_aged",
            "perceived middle-aged adult",
            ("a middle-aged person", "a person in their forties", "a person in their fifties"),
        ),
        AttributeClass(
            "older_adult",
            "perceived older adult",
            ("an elderly person", "an old person", "a senior citizen"),
        ),
    ),
    templates=_PHOTO,
    ordered=True,
)

ATTRIBUTES: dict[str, Attribute] = {a.key: a for a in (_PERSON, _GENDER, _SKIN_TONE, _AGE)}


def select_attributes(keys: Iterable[str]) -> tuple[Attribute, ...]:
    """The attributes named by ``keys``, the gate (``person``) always first and once.

    The gate is added when missing: without it, images with no clear person would count.
    """
    keys = list(keys)
    unknown = [k for k in keys if k not in ATTRIBUTES]
    if unknown:
        raise ValueError(
            f"bias attributes: unknown {unknown}; known attributes are {sorted(ATTRIBUTES)}"
        )
    if len(set(keys)) != len(keys):
        raise ValueError(f"bias attributes: {keys} names an attribute twice")
    return (ATTRIBUTES[GATE], *(ATTRIBUTES[k] for k in keys if k != GATE))
