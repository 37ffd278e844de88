"""Public prompt sets (``tests/data/prompts``) and the drift splits built from them.

A split is a (reference, current) pair of prompt lists, disjoint in rows. The null split
halves one random draw; the shifted splits draw the reference from the set's natural mix and
the current window with one realistic change:

- **topic share** (``mix_split`` on PartiPrompts' Category): one category's share raised;
- **source mix** (``mix_split`` on TIFA's source): the share of one source set;
- **style suffix** (``suffix_split``): a share of the current prompts gets a style suffix of
  the kind image-generation users paste after a subject.

Used by the unit tests and by ``bench/prompt_drift.py``; the sources and licences are in
``tests/data/prompts/README.md``.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROMPTS_DIR = Path(__file__).resolve().parent / "data" / "prompts"

# Style modifiers as users stack them (written for these tests, after common usage).
STYLE_SUFFIXES = (
    "highly detailed, digital painting, trending on artstation",
    "cinematic lighting, 8k, octane render",
    "concept art, sharp focus, illustration",
    "unreal engine 5, volumetric lighting, ultra realistic",
    "studio ghibli style, soft pastel colors",
    "by greg rutkowski, matte painting, epic composition",
    "photorealistic, 35mm film, bokeh",
    "intricate, elegant, smooth, fantasy art",
)


@dataclass(frozen=True)
class PromptSet:
    """A public prompt set: its prompts and, per label (e.g. "category"), one value a prompt."""

    name: str
    prompts: tuple[str, ...]
    labels: Mapping[str, tuple[str, ...]]

    def label(self, name: str) -> np.ndarray:
        """The values of label ``name``, one a prompt (numpy array of str)."""
        return np.asarray(self.labels[name])


@functools.cache
def partiprompts() -> PromptSet:
    """PartiPrompts (1,632 prompts; labels "category" (12 values) and "challenge" (11))."""
    with (PROMPTS_DIR / "PartiPrompts.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return PromptSet(
        "PartiPrompts",
        tuple(r["Prompt"] for r in rows),
        {
            "category": tuple(r["Category"] for r in rows),
            "challenge": tuple(r["Challenge"] for r in rows),
        },
    )


@functools.cache
def tifa() -> PromptSet:
    """TIFA v1.0's text inputs, duplicates dropped (4,079 prompts; label "source": coco,
    partiprompt, paintskill, drawbench)."""
    items = json.loads((PROMPTS_DIR / "tifa_v1.0_text_inputs.json").read_text("utf-8"))
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item["caption"], item["id"].rsplit("_", 1)[0])
    return PromptSet("TIFA v1.0", tuple(seen), {"source": tuple(seen.values())})


Split = tuple[list[str], list[str]]


def null_split(prompts: tuple[str, ...], n: int, rng: np.random.Generator) -> Split:
    """Two disjoint random windows of ``n`` prompts each from one population (no drift)."""
    _enough(len(prompts), 2 * n, "a null split")
    order = rng.permutation(len(prompts))[: 2 * n]
    return [prompts[i] for i in order[:n]], [prompts[i] for i in order[n:]]


def mix_split(
    ps: PromptSet, label: str, shares: Mapping[str, float], n: int, rng: np.random.Generator
) -> Split:
    """Reference: ``n`` prompts of the natural mix. Current: ``n`` other prompts in which
    each value of ``label`` in ``shares`` has that share (rounded to whole prompts); the rest
    come from the other values in their natural proportions."""
    values = ps.label(label)
    order = rng.permutation(len(ps.prompts))
    reference, rest = order[:n], order[n:]
    current: list[int] = []
    for value, share in shares.items():
        pool = rest[values[rest] == value]
        k = round(share * n)
        _enough(pool.size, k, f"{k} current prompts of {label} {value!r}")
        current.extend(pool[:k].tolist())
    others = rest[~np.isin(values[rest], list(shares))]
    _enough(others.size, n - len(current), "the rest of the current window")
    current.extend(others[: n - len(current)].tolist())
    rng.shuffle(current)
    return [ps.prompts[i] for i in reference], [ps.prompts[i] for i in current]


def suffix_split(prompts: tuple[str, ...], n: int, share: float, rng: np.random.Generator) -> Split:
    """A null split whose current window has a style suffix on ``share`` of its prompts
    (each prompt's suffix is ``styled(prompt)``, so a prompt always gets the same one)."""
    reference, current = null_split(prompts, n, rng)
    k = round(share * n)
    chosen = set(rng.choice(n, size=k, replace=False).tolist())
    return reference, [styled(p) if i in chosen else p for i, p in enumerate(current)]


def styled(prompt: str) -> str:
    """``prompt`` with its style suffix: one of ``STYLE_SUFFIXES``, fixed per prompt."""
    digest = sum(ord(c) * (i + 1) for i, c in enumerate(prompt))  # stable across processes
    return f"{prompt.rstrip(' .')}, {STYLE_SUFFIXES[digest % len(STYLE_SUFFIXES)]}"


def _enough(have: int, need: int, what: str) -> None:
    if need > have:
        raise ValueError(
            f"{what} needs {need} prompts but only {have} are left; lower n or the share"
        )
