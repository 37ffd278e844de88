"""Demographic skew of generated images, per prompt and over a probe suite (pure).

Input is a table of counts: for each prompt, how many of its images a classifier (or a
person) put in each class, for example perceived gender. Every share below is a fraction
in [0, 1]; divergences and skews are in nats (natural logarithms).

- Per prompt: n (images with a class; abstentions excluded), each class's share with a
  Wilson interval, the abstain rate with a Wilson interval, for exactly two classes
  ``abs_gap = |p − 0.5|`` (the same for either class, since the shares sum to 1),
  ``kl_uniform = KL(p ‖ uniform)``, with a reference also ``kl_reference = KL(p ‖ q)``,
  and Geyik et al.'s (KDD 2019) skews ``Skew_c = ln(p_c / q_c)``: ``max_skew``,
  ``min_skew`` and the classes that have them. q is uniform unless a reference is given.
- Over prompts: the mean and the worst-k mean (the mean of the k largest; of the k
  smallest for ``min_skew``) of each metric, the mean share of each class, and the pooled
  share of each class over all images. A prompt with n = 0 is reported but not counted.
- Two versions: a pooled two-proportion z test per prompt and class with Newcombe's
  interval of the difference, Benjamini–Hochberg or Holm over all tests, and the change of
  every aggregate (candidate − baseline). See ``bias_compare``.

Conventions: KL uses the raw shares with 0·ln 0 = 0. Skews use shares smoothed by half an
image per class, ``(count + ½) / (n + C/2)`` (the posterior mean under Jeffreys' prior), so
a class without images has a finite skew that grows more negative as n grows; at n = 250
the smoothing moves a share by at most 0.002. Geyik et al. leave p = 0 open; this is our
choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffwatch.analytics.intervals import LEVEL, Interval, wilson

Counts = Mapping[str, Mapping[str, int]]  # prompt -> class -> images
# A reference is either global (class -> share) or per prompt (prompt -> class -> share).
Reference = Mapping[str, float] | Mapping[str, Mapping[str, float]]

ABSTAIN = "abstain"
DEFAULT_K = 5
# Published shares are often rounded (59.9% women, 40.1% men); allow that much slack in
# their sum, then rescale so the shares sum to exactly 1.
SUM_TOLERANCE = 0.005
SKEW_PSEUDOCOUNT = 0.5  # Jeffreys: half an image per class, for skews only

DEFINITIONS = {
    "mean_share": "per class, the mean over prompts of the class's share of a prompt's images",
    "pooled_share": "per class, its share of all images of all prompts, with a Wilson interval",
    "mean_abs_gap": "mean over prompts of |p − 0.5|, p the share of one of exactly two classes",
    "worst_k_abs_gap": "mean of the k largest |p − 0.5| over prompts",
    "mean_kl_uniform": "mean over prompts of KL(shares ‖ uniform), nats",
    "worst_k_kl_uniform": "mean of the k largest KL(shares ‖ uniform) over prompts, nats",
    "mean_kl_reference": "mean over prompts of KL(shares ‖ reference), nats",
    "worst_k_kl_reference": "mean of the k largest KL(shares ‖ reference) over prompts, nats",
    "mean_max_skew": "mean over prompts of MaxSkew = max over classes of ln(p_c / q_c), nats",
    "worst_k_max_skew": "mean of the k largest MaxSkew over prompts, nats",
    "mean_min_skew": "mean over prompts of MinSkew = min over classes of ln(p_c / q_c), nats",
    "worst_k_min_skew": "mean of the k smallest (most negative) MinSkew over prompts, nats",
}
METRICS = ("abs_gap", "kl_uniform", "kl_reference", "max_skew", "min_skew")


@dataclass(frozen=True, slots=True)
class ClassShare:
    """One class in one prompt: its images, share (Wilson interval), reference and skew."""

    name: str
    count: int
    share: Interval | None  # None when the prompt has no classified image
    reference: float  # q_c, the share the skew compares against
    skew: float | None  # ln(smoothed p_c / q_c), nats


@dataclass(frozen=True, slots=True)
class PromptBias:
    """The skew of one prompt's images; the metrics are None when n = 0."""

    prompt: str
    n: int  # images with a class
    abstained: int
    abstain_rate: Interval | None  # abstained / (n + abstained); None without rows
    shares: tuple[ClassShare, ...]
    abs_gap: float | None  # |p − 0.5|, only for exactly two classes
    kl_uniform: float | None  # nats
    kl_reference: float | None  # nats, only with a reference
    max_skew: float | None  # nats
    max_skew_class: str | None
    min_skew: float | None  # nats
    min_skew_class: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: shares keyed by class, intervals as estimate/low/high."""
        return {
            "prompt": self.prompt,
            "n": self.n,
            "abstained": self.abstained,
            "abstain_rate": interval_dict(self.abstain_rate),
            "shares": {
                s.name: {"count": s.count, **(interval_dict(s.share) or {"estimate": None})}
                | {"reference": s.reference, "skew": s.skew}
                for s in self.shares
            },
            **{m: getattr(self, m) for m in METRICS},
            "max_skew_class": self.max_skew_class,
            "min_skew_class": self.min_skew_class,
        }


@dataclass(frozen=True, slots=True)
class BiasAggregate:
    """Metrics over the prompts with n > 0; None where no prompt has the metric."""

    prompts: int  # prompts counted (n > 0)
    prompts_without_images: tuple[str, ...]  # n = 0: every image abstained, or no rows
    images: int  # classified images over all prompts
    abstained: int
    abstain_rate: Interval | None
    k: int  # min(k asked, prompts)
    mean_share: dict[str, float | None]  # None when no prompt has an image
    pooled_share: dict[str, Interval]
    means: dict[str, float | None]  # mean_<metric>
    worst_k: dict[str, float | None]  # worst_k_<metric>

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, each aggregate under its plain name (see ``DEFINITIONS``)."""
        out: dict[str, Any] = {
            "prompts": self.prompts,
            "prompts_without_images": list(self.prompts_without_images),
            "images": self.images,
            "abstained": self.abstained,
            "abstain_rate": interval_dict(self.abstain_rate),
            "k": self.k,
            "mean_share": dict(self.mean_share),
            "pooled_share": {c: interval_dict(i) for c, i in self.pooled_share.items()},
        }
        for m in METRICS:
            out[f"mean_{m}"] = self.means[m]
            out[f"worst_k_{m}"] = self.worst_k[m]
        return out


@dataclass(frozen=True, slots=True)
class BiasReport:
    """Per-prompt skews and their aggregates for one table of counts."""

    classes: tuple[str, ...]
    reference: str  # "uniform", "global" or "per_prompt"
    abstain_class: str | None
    level: float
    prompts: tuple[PromptBias, ...]
    aggregate: BiasAggregate

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report with plain names."""
        return {
            "classes": list(self.classes),
            "reference": self.reference,
            "abstain_class": self.abstain_class,
            "level": self.level,
            "prompts": [p.to_dict() for p in self.prompts],
            "aggregate": self.aggregate.to_dict(),
        }


def interval_dict(i: Interval | None) -> dict[str, float] | None:
    """An interval as {"estimate", "low", "high"}, or None."""
    return None if i is None else {"estimate": i.estimate, "low": i.low, "high": i.high}


def resolve_classes(
    counts: Counts, classes: Sequence[str] | None, abstain_class: str | None
) -> tuple[str, ...]:
    """The classes in order: ``classes`` as given, else the sorted union over prompts."""
    if classes is None:
        found = {c for row in counts.values() for c in row if c != abstain_class}
        return tuple(sorted(found))
    out = tuple(classes)
    if len(set(out)) != len(out):
        raise ValueError(f"classes {list(out)} name a class twice: list each class once")
    if abstain_class is not None and abstain_class in out:
        raise ValueError(
            f"class {abstain_class!r} is the abstain class: leave it out of classes, or pass "
            "abstain_class=None to score it as an ordinary class"
        )
    for prompt, row in counts.items():
        for c in row:
            if c not in out and c != abstain_class:
                raise ValueError(
                    f"prompt {prompt!r} has class {c!r}, which is not among the classes "
                    f"{list(out)}: add it to classes, or fix the class name"
                )
    return out


def _check_counts(counts: Counts) -> None:
    for prompt, row in counts.items():
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"prompt {prompt!r} must be a non-empty string")
        for c, x in row.items():
            if not isinstance(c, str) or not c:
                raise ValueError(f"prompt {prompt!r}: class {c!r} must be a non-empty string")
            if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < 0:
                raise ValueError(
                    f"prompt {prompt!r}, class {c!r}: a count must be a non-negative integer "
                    f"(images), got {x!r}"
                )


def _check_shares(where: str, shares: Mapping[str, float], classes: tuple[str, ...]) -> np.ndarray:
    missing = [c for c in classes if c not in shares]
    extra = [c for c in shares if c not in classes]
    if missing or extra:
        raise ValueError(
            f"reference {where}: classes must match the counts' classes {list(classes)}; "
            f"missing {missing}, unknown {extra}: give one share per class, spelled as in the "
            "counts"
        )
    q = np.array([shares[c] for c in classes], dtype=float)
    for c, v in zip(classes, q, strict=True):
        if not (math.isfinite(v) and 0 < v <= 1):
            raise ValueError(
                f"reference {where}, class {c!r}: a share must lie in (0, 1], got {v!r}: "
                "give fractions (0.599, not 59.9); a share of 0 makes ln(p/q) infinite, so "
                "give a small share or drop the class"
            )
    total = float(q.sum())
    if abs(total - 1) > SUM_TOLERANCE:
        raise ValueError(
            f"reference {where}: shares must sum to 1 (within {SUM_TOLERANCE}), got "
            f"{total:.6f}: fix the shares so that they add up to 1"
        )
    return q / total


def resolve_reference(
    reference: Reference | None, classes: tuple[str, ...], prompts: Sequence[str]
) -> tuple[str, dict[str, np.ndarray]]:
    """Validate a reference; return its kind and each prompt's shares (in class order).

    A per-prompt reference must cover every prompt; the prompts it has beyond those are
    ignored."""
    if reference is None:
        u = np.full(len(classes), 1 / len(classes))
        return "uniform", {p: u for p in prompts}
    values = list(reference.values())
    if values and all(isinstance(v, Mapping) for v in values):
        per_prompt: Mapping[str, Mapping[str, float]] = reference  # type: ignore[assignment]
        # Prompts the reference covers beyond the counts' are fine (a suite's reference
        # covers every term, a reader may have seen fewer); a prompt without one is not.
        missing = [p for p in prompts if p not in per_prompt]
        if missing:
            raise ValueError(
                f"per-prompt reference: no shares for the prompts {missing[:5]}"
                f"{' and more' if len(missing) > 5 else ''}: give shares for every prompt, "
                "spelled as in the counts, or give one global reference"
            )
        return "per_prompt", {
            p: _check_shares(f"for prompt {p!r}", per_prompt[p], classes) for p in prompts
        }
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        q = _check_shares("(global)", reference, classes)  # type: ignore[arg-type]
        return "global", {p: q for p in prompts}
    raise ValueError(
        "reference must map class -> share (global) or prompt -> class -> share (per "
        "prompt), not a mix or an empty mapping"
    )


def _wilson(x: int, n: int, level: float) -> Interval:
    # intervals.wilson can put the low end a rounding error above 0 when x = 0; an
    # interval must hold its own estimate
    i = wilson(x, n, level)
    return Interval(i.estimate, min(i.low, i.estimate), max(i.high, i.estimate), level)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    nz = p > 0  # 0·ln 0 = 0
    return float(np.sum(p[nz] * np.log(p[nz] / q[nz])))


def prompt_bias(
    prompt: str,
    row: Mapping[str, int],
    classes: tuple[str, ...],
    q: np.ndarray,
    *,
    with_reference: bool,
    abstain_class: str | None = ABSTAIN,
    level: float = LEVEL,
) -> PromptBias:
    """The shares, gap, KL and skews of one prompt's counts against shares q (class order)."""
    x = np.array([int(row.get(c, 0)) for c in classes], dtype=np.int64)
    n = int(x.sum())
    abstained = int(row.get(abstain_class, 0)) if abstain_class is not None else 0
    asked = n + abstained
    rate = _wilson(abstained, asked, level) if asked else None
    if n == 0:
        empty = tuple(
            ClassShare(c, 0, None, float(qc), None) for c, qc in zip(classes, q, strict=True)
        )
        none = (None,) * 7  # no gap, KL or skew without an image
        return PromptBias(prompt, 0, abstained, rate, empty, *none)
    p = x / n
    smoothed = (x + SKEW_PSEUDOCOUNT) / (n + SKEW_PSEUDOCOUNT * len(classes))
    skew = np.log(smoothed / q)
    shares = tuple(
        ClassShare(c, int(xc), _wilson(int(xc), n, level), float(qc), float(sc))
        for c, xc, qc, sc in zip(classes, x, q, skew, strict=True)
    )
    uniform = np.full(len(classes), 1 / len(classes))
    hi, lo = int(np.argmax(skew)), int(np.argmin(skew))
    return PromptBias(
        prompt=prompt,
        n=n,
        abstained=abstained,
        abstain_rate=rate,
        shares=shares,
        abs_gap=abs(float(p[0]) - 0.5) if len(classes) == 2 else None,
        kl_uniform=_kl(p, uniform),
        kl_reference=_kl(p, q) if with_reference else None,
        max_skew=float(skew[hi]),
        max_skew_class=classes[hi],
        min_skew=float(skew[lo]),
        min_skew_class=classes[lo],
    )


def aggregate(
    prompts: Sequence[PromptBias], classes: tuple[str, ...], k: int, level: float = LEVEL
) -> BiasAggregate:
    """Means and worst-k means over the prompts with n > 0 (mean of the k worst values)."""
    if k < 1:
        raise ValueError(f"k must be at least 1 (the worst-k mean needs a prompt), got {k}")
    scored = [p for p in prompts if p.n > 0]
    images = sum(p.n for p in scored)
    abstained = sum(p.abstained for p in prompts)
    k_eff = min(k, len(scored))
    means: dict[str, float | None] = {}
    worst: dict[str, float | None] = {}
    for m in METRICS:
        values = sorted(v for p in scored if (v := getattr(p, m)) is not None)
        if not values:
            means[m] = worst[m] = None
            continue
        means[m] = float(np.mean(values))
        # the worst of a min skew is its most negative value
        worst[m] = float(np.mean(values[:k_eff] if m == "min_skew" else values[-k_eff:]))
    totals = {c: sum(p.shares[i].count for p in scored) for i, c in enumerate(classes)}
    return BiasAggregate(
        prompts=len(scored),
        prompts_without_images=tuple(p.prompt for p in prompts if p.n == 0),
        images=images,
        abstained=abstained,
        abstain_rate=_wilson(abstained, images + abstained, level) if images + abstained else None,
        k=k_eff,
        mean_share={
            c: float(np.mean([p.shares[i].count / p.n for p in scored])) if scored else None
            for i, c in enumerate(classes)
        },
        pooled_share={c: _wilson(t, images, level) for c, t in totals.items()} if images else {},
        means=means,
        worst_k=worst,
    )


def bias_metrics(
    counts: Counts,
    *,
    classes: Sequence[str] | None = None,
    reference: Reference | None = None,
    k: int = DEFAULT_K,
    level: float = LEVEL,
    abstain_class: str | None = ABSTAIN,
) -> BiasReport:
    """Per-prompt shares, |p − 0.5|, KL (nats) and skews (nats), and their aggregates.

    ``classes`` fixes the class order (the first is the one whose share ``abs_gap`` uses;
    the gap is the same for either); by default it is the sorted union over prompts, and a
    class absent from a prompt counts 0. Rows of ``abstain_class`` are not a class: they
    give the abstain rate. ``reference`` is what skews and ``kl_reference`` compare
    against: class -> share for every prompt, or prompt -> class -> share.
    """
    _check_counts(counts)
    cls = resolve_classes(counts, classes, abstain_class)
    if len(cls) < 2:
        raise ValueError(
            f"skew needs at least two classes, got {list(cls)}: add rows for the other "
            "classes (a count of 0 is fine), or pass classes"
        )
    kind, refs = resolve_reference(reference, cls, list(counts))
    per_prompt = tuple(
        prompt_bias(
            p,
            row,
            cls,
            refs[p],
            with_reference=kind != "uniform",
            abstain_class=abstain_class,
            level=level,
        )
        for p, row in counts.items()
    )
    summary = aggregate(per_prompt, cls, k, level)
    return BiasReport(cls, kind, abstain_class, level, per_prompt, summary)
