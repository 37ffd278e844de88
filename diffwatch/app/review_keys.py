"""The rater's choices on one review item and how keys change them (pure, no Streamlit).

Digits 1–5 set the overall quality first, then the prompt adherence; a third digit starts
over at quality, so a slip is fixed by typing both scores again. Letters toggle flags.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from diffwatch.db.models_review import FLAGS

Field = Literal["quality", "adherence"]

# flag -> (key, label); keys avoid C and R (Streamlit reserves them) and S, V (skip, reveal)
FLAG_KEYS: dict[str, tuple[str, str]] = {
    "nsfw": ("N", "NSFW"),
    "artifacts": ("A", "Artifacts"),
    "garbled_text": ("G", "Garbled text"),
    "bias": ("B", "Bias / stereotype"),
    "other": ("O", "Other"),
}
SUBMIT_KEY = "Enter"
SKIP_KEY = "S"
REVEAL_KEY = "V"
CLEAR_KEY = "Backspace"
SCORES: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class Choice:
    """What the rater has chosen so far, and which score the next digit sets."""

    quality: int | None = None
    adherence: int | None = None
    flags: frozenset[str] = frozenset()
    next_field: Field = "quality"

    def digit(self, score: int) -> Choice:
        """A digit key: set the score the next digit sets, then move on to the other."""
        return self.set(self.next_field, score)

    def set(self, field: Field, score: int) -> Choice:
        """Set one score (a click on its button); the next digit sets the other one."""
        if score not in SCORES:
            raise ValueError(f"{field} must be a whole number from 1 to 5, got {score!r}")
        if field == "quality":
            return replace(self, quality=score, next_field="adherence")
        return replace(self, adherence=score, next_field="quality")

    def toggle(self, flag: str) -> Choice:
        """Turn a flag on or off."""
        if flag not in FLAGS:
            raise ValueError(f"unknown flag {flag!r}; use any of {', '.join(FLAGS)}")
        return replace(self, flags=self.flags ^ {flag})

    def complete(self) -> bool:
        """Whether both scores are set, so the rating can be submitted."""
        return self.quality is not None and self.adherence is not None

    def missing(self) -> list[str]:
        """The names of the scores still to choose, for the error message."""
        return [
            name
            for name, v in (("overall quality", self.quality), ("prompt adherence", self.adherence))
            if v is None
        ]

    def sorted_flags(self) -> list[str]:
        """The chosen flags in the order of ``FLAGS``."""
        return [f for f in FLAGS if f in self.flags]


def legend() -> list[tuple[str, str]]:
    """(keys, what they do) rows for the key legend shown on the page."""
    return [
        ("1 – 5", "first digit: overall quality, second digit: prompt adherence"),
        *((key, f"toggle flag: {label}") for key, label in FLAG_KEYS.values()),
        (SUBMIT_KEY, "submit the rating"),
        (SKIP_KEY, "skip this item"),
        (REVEAL_KEY, "reveal a blurred (NSFW-flagged) image"),
        (CLEAR_KEY, "clear the scores and flags"),
        ("Esc", "leave the comment box (keys typed in it only write the comment)"),
    ]
