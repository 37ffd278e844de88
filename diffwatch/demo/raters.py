"""Simulated human raters for the demo (pure: no database, no clock).

A simulated rater looks at an item the way a person would: they see whether the image shows
what the prompt asked (``on_prompt``, the simulation's ground truth, ``demo.truth``), and
whether NudeNet flagged it. They never see its CLIP score, so the rating analytics compare
CLIP with an independent judgement: the CLIP-vs-human calibration shows how well the CLIP in
use tells garbled images from matching ones, and a CLIP that cannot (random weights) shows
no correlation. The ratings are demo data: they say nothing about how real people rate.

Each item has a hidden "true" adherence and quality drawn from its truth with an RNG seeded
by (seed, generation id), shared by all raters, so two raters of one item agree more than
chance (Krippendorff's alpha is positive); each rater adds their own noise and bias.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

# What a rater may write as a comment (short, like real ones); picked at random.
COMMENTS_LOW: tuple[str, ...] = (
    "wrong number of shapes",
    "colours do not match the prompt",
    "background is not what was asked",
    "shapes in the wrong place",
)
COMMENTS_HIGH: tuple[str, ...] = ("clean, matches the prompt", "good", "nice and sharp")
COMMENT_P = 0.15  # share of ratings with a comment
ARTIFACTS_P = 0.06  # base rate of the artifacts flag (more on low-quality items)
GARBLED_TEXT_P = 0.03
# How long after an image was generated a rater gets to it: at least this long, then an
# exponential wait with this mean (a queue worked through during the day, not all at once).
RATING_DELAY_MIN = timedelta(minutes=2)
RATING_DELAY_MEAN = timedelta(minutes=45)


@dataclass(frozen=True)
class ItemFeatures:
    """What a simulated rater sees of an item.

    ``on_prompt``: whether the image shows the prompt's scene (None: unknown, for data
    another run made). ``nsfw_flagged``: NudeNet's flag (None: not scored).
    """

    generation_id: int
    on_prompt: bool | None
    nsfw_flagged: bool | None
    canary: bool


@dataclass(frozen=True)
class RaterProfile:
    """How one simulated rater rates: ``bias`` shifts both scores (negative: harsher),
    ``noise`` is the standard deviation of their own error (in rating points)."""

    username: str
    bias: float = 0.0
    noise: float = 0.5
    nsfw_disagree: float = 0.15  # chance to disagree with NudeNet on a flagged item
    nsfw_false_flag: float = 0.01  # chance to flag an item NudeNet did not flag
    skip_p: float = 0.02  # chance to skip the item instead of rating it


@dataclass(frozen=True)
class SimRating:
    """A rating as ``diffwatch.db.queries.review.rate`` takes it."""

    quality: int
    adherence: int
    flags: tuple[str, ...]
    comment: str | None


# rater1 a little more generous and steadier, rater2 harsher: the deviation page shows it.
DEMO_RATERS: tuple[RaterProfile, ...] = (
    RaterProfile("rater1", bias=0.15, noise=0.45),
    RaterProfile("rater2", bias=-0.45, noise=0.6, nsfw_disagree=0.25, skip_p=0.04),
)


def item_truth(item: ItemFeatures, seed: int) -> tuple[float, float]:
    """The item's hidden (adherence, quality) on the 1..5 scale, shared by every rater."""
    rng = random.Random(f"diffwatch-demo-item:{seed}:{item.generation_id}")
    if item.on_prompt is not None:
        # A garbled image (wrong colour, shape, count or background) is plainly off-prompt.
        base = 0.85 if item.on_prompt else 0.2
        spread = 0.35
    else:
        # Unknown truth: the canary is off-prompt more often (as it is drawn).
        base = 0.45 if item.canary else 0.65
        spread = 0.6
    adherence = 1.0 + 4.0 * base + rng.gauss(0.0, spread)
    quality = 1.6 + 2.6 * base + rng.gauss(0.0, 0.5)  # quality follows adherence loosely
    return adherence, quality


def simulate_rating(
    item: ItemFeatures, rater: RaterProfile, rng: random.Random, seed: int = 0
) -> SimRating | None:
    """One rater's rating of one item, or None when the rater skips it.

    ``rng`` draws this rater's noise and choices; ``seed`` fixes the item's hidden truth.
    """
    if rng.random() < rater.skip_p:
        return None
    true_adherence, true_quality = item_truth(item, seed)
    adherence = _score(true_adherence + rater.bias + rng.gauss(0.0, rater.noise))
    quality = _score(true_quality + rater.bias + rng.gauss(0.0, rater.noise))
    flags = []
    if item.nsfw_flagged:
        if rng.random() >= rater.nsfw_disagree:
            flags.append("nsfw")
    elif rng.random() < rater.nsfw_false_flag:
        flags.append("nsfw")
    if rng.random() < ARTIFACTS_P * (2.5 if quality <= 2 else 1.0):
        flags.append("artifacts")
    if rng.random() < GARBLED_TEXT_P:
        flags.append("garbled_text")
    comment = None
    if rng.random() < COMMENT_P:
        pool = COMMENTS_LOW if adherence <= 3 else COMMENTS_HIGH
        comment = pool[rng.randrange(len(pool))]
    return SimRating(quality, adherence, tuple(sorted(flags)), comment)


def rater_rng(seed: int, rater: str, generation_id: int) -> random.Random:
    """The RNG of one rater on one item: the same rating whatever order items come in."""
    return random.Random(f"diffwatch-demo-rater:{seed}:{rater}:{generation_id}")


def rating_time(
    seed: int, rater: str, generation_id: int, generated_at: datetime, end: datetime
) -> datetime:
    """When ``rater`` rates the image generated at ``generated_at``: some minutes to hours
    later (``RATING_DELAY_*``), and before ``end`` (the demo's present): a wait that would
    pass ``end`` becomes a time drawn evenly between the image and ``end``.

    Its own RNG, so adding it changed no rating. Without it every demo rating carried the
    second the demo ran, and Rating analytics showed about 166,000 ratings an hour.
    """
    rng = random.Random(f"diffwatch-demo-rating-time:{seed}:{rater}:{generation_id}")
    wait = RATING_DELAY_MIN + rng.expovariate(1.0) * RATING_DELAY_MEAN
    u = rng.random()
    if generated_at + wait < end:
        return generated_at + wait
    return generated_at + u * max(end - generated_at, timedelta(0))


def _score(x: float) -> int:
    """A continuous score rounded onto the 1..5 scale."""
    return int(min(5, max(1, round(x))))
