"""The review queue's sampling policy: which generations raters see, and how many ratings each.

Pure: no database. ``diffwatch.db.queries.review.enqueue`` turns a policy into SQL. The policy
mixes an unbiased random sample per model version (for estimates that generalise) with targeted
picks (low CLIP scores, NSFW-flagged images, canary versions) that find problems faster but
must never be used for unbiased averages: every item keeps *why* it was picked.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# Why an item entered the queue. An item picked for several reasons keeps all of them.
REASONS: tuple[str, ...] = ("random", "low_clip", "nsfw_flagged", "canary")

# Salt of the K hash: changing it reshuffles which items need extra ratings.
_K_SALT = b"diffwatch-review-k:"


class PolicyError(ValueError):
    """A review policy value or file is invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class ReviewPolicy:
    """How ``enqueue`` picks review items, and how many ratings (K) each one needs.

    Counts are items per enqueue call; ``window_h`` is hours of generations looked at.
    """

    random_per_version: int = 20  # unbiased sample per model version, each enqueue
    low_clip_quantile: float = 0.05  # items strictly below this quantile of CLIP scores…
    low_clip_max: int = 20  # …at most this many, lowest first
    nsfw_flagged_max: int = 20  # NSFW-flagged images, newest first
    canary_max: int = 20  # random sample of deployment = 'canary'
    window_h: float = 24.0  # generations with ts in [now - window_h, now)
    k_default: int = 1  # ratings an item needs
    k2_share: float = 0.1  # share of items that need k_high ratings instead (agreement)
    k_high: int = 2

    def __post_init__(self) -> None:
        for name in ("random_per_version", "low_clip_max", "nsfw_flagged_max", "canary_max"):
            _int(name, getattr(self, name), minimum=0)
        _int("k_default", self.k_default, minimum=1)
        _int("k_high", self.k_high, minimum=1)
        q = _number("low_clip_quantile", self.low_clip_quantile)
        if not 0.0 <= q < 1.0:
            raise PolicyError(
                f"review policy: low_clip_quantile must be in [0, 1), got {q}; "
                "use for example 0.05 for the lowest 5 % (0 turns the reason off)"
            )
        share = _number("k2_share", self.k2_share)
        if not 0.0 <= share <= 1.0:
            raise PolicyError(
                f"review policy: k2_share must be in [0, 1], got {share}; "
                "use for example 0.1 for one item in ten"
            )
        window = _number("window_h", self.window_h)
        if not window > 0:
            raise PolicyError(
                f"review policy: window_h must be a positive number of hours, got {window}"
            )

    def required_ratings(self, generation_id: int) -> int:
        """K for one generation: ``k_high`` for a ``k2_share`` of ids, else ``k_default``.

        Chosen by a hash of the id, not by ``random()``: re-enqueueing, another worker or a
        re-run of the demo assigns the same K, and the share is unrelated to time or version.
        """
        return self.k_high if k_draw(generation_id) < self.k2_share else self.k_default

    @classmethod
    def from_toml(cls, path: str | Path) -> ReviewPolicy:
        """Load a policy from a TOML file: top-level keys, or a ``[review]`` table.

        Missing keys take their defaults; unknown keys and wrong types raise PolicyError.
        """
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PolicyError(
                f"review policy file {p}: not found; create it or leave the option out "
                "to use the defaults"
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(
                f"review policy file {p}: not valid TOML ({e}); fix the syntax"
            ) from e
        if isinstance(data.get("review"), dict):
            data = data["review"]
        return cls.from_mapping(data, source=str(p))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "review policy") -> ReviewPolicy:
        """Build a policy from a dict (parsed TOML), naming ``source`` in errors."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise PolicyError(
                f"{source}: unknown key(s) {', '.join(unknown)}; "
                f"the known keys are {', '.join(known)}"
            )
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            want_float = known[key].type in ("float", float)
            # TOML writes 24 for 24.0; accept ints where a float is wanted, never bools.
            if want_float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except PolicyError as e:
            raise PolicyError(f"{source}: {e}") from None


def k_draw(generation_id: int) -> float:
    """A uniform number in [0, 1) fixed by the generation id (the K assignment's coin)."""
    digest = hashlib.blake2b(_K_SALT + str(int(generation_id)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(
            f"review policy: {name} must be a whole number, got {value!r} "
            f"({type(value).__name__}); write it without quotes or decimals"
        )
    if value < minimum:
        raise PolicyError(f"review policy: {name} must be at least {minimum}, got {value}")
    return value


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(
            f"review policy: {name} must be a number, got {value!r} ({type(value).__name__})"
        )
    return float(value)
