"""CLIP zero-shot classification with prompt ensembling and an abstain margin.

Class embeddings are built once from text (``build_classifiers``: one ``embed_texts`` call
for every prompt of every attribute); images are then classified from their CLIP image
embeddings by a softmax over ``logit_scale * cosine`` (Radford et al. 2021: CLIP's own
zero-shot head, logit scale 100). A reading whose top-1 probability beats the runner-up by
less than ``margin`` abstains: it is recorded (label None, reason "margin") and does not
count, because a near tie says more about prompt wording than about the image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffwatch.bias.attributes import Attribute

__all__ = [
    "DEFAULT_LOGIT_SCALE",
    "DEFAULT_MARGIN",
    "ZeroShotClassifier",
    "ZeroShotResult",
    "build_classifiers",
    "ensemble",
]

DEFAULT_LOGIT_SCALE = 100.0  # CLIP's learned temperature saturates at 100 (clamped in training)
# Abstain when p(top-1) - p(top-2) < 0.2 (probabilities, 0..1). With two classes this counts
# a reading only from 60:40 on, i.e. a log-odds of ln 1.5 = 0.41, a cosine gap of 0.0041 at
# scale 100: readings nearer a coin flip than that flip with prompt wording and JPEG noise,
# and counting them would pull every share towards 50%. With more classes probability
# spreads over them, so the same margin abstains more often on skin tone (10 classes) than
# on gender (2): on purpose, CLIP's reading of ten tones is the weakest. Calibrate on
# labelled images before tightening; pass ``margin`` to change it.
DEFAULT_MARGIN = 0.2

ABSTAIN_MARGIN = "margin"  # reason: top-1 beat top-2 by less than the margin
ABSTAIN_NO_PERSON = "no person"  # reason: the person gate did not pass


@dataclass(frozen=True)
class ZeroShotResult:
    """One image's reading of one attribute.

    ``label``: the winning class key, or None when abstained. ``p``: top-1 probability (0..1).
    ``margin``: top-1 minus top-2 probability (0..1). ``classes`` / ``probs``: every class and
    its probability, in the attribute's order (empty when not computed). ``reason``: why the
    label is None ("margin", "no person"), else None.
    """

    label: str | None
    p: float | None
    margin: float | None
    classes: tuple[str, ...] = ()
    probs: tuple[float, ...] = ()
    reason: str | None = None

    @property
    def probabilities(self) -> dict[str, float]:
        """Class key -> probability (0..1)."""
        return dict(zip(self.classes, self.probs, strict=True))

    @classmethod
    def abstained(cls, reason: str) -> ZeroShotResult:
        """A reading that was not made (for example the person gate failed): all None."""
        return cls(label=None, p=None, margin=None, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: label, p, margin, probs (class -> probability), reason."""
        out: dict[str, Any] = {
            "label": self.label,
            "p": None if self.p is None else round(self.p, 4),
            "margin": None if self.margin is None else round(self.margin, 4),
        }
        if self.probs:
            out["probs"] = {k: round(v, 4) for k, v in zip(self.classes, self.probs, strict=True)}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def ensemble(prompt_embeddings: np.ndarray) -> np.ndarray:
    """One class embedding from its prompts' text embeddings (n_prompts, D): each row
    L2-normalised, averaged, and the mean renormalised to unit length (D,), float32."""
    e = np.asarray(prompt_embeddings, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise ValueError(f"ensemble: expected (n_prompts >= 1, D) embeddings, got {e.shape}")
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    mean = e.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm == 0.0:
        raise ValueError("ensemble: the prompts' embeddings cancel out; reword the prompts")
    return (mean / norm).astype(np.float32)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, stable for large logits (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class ZeroShotClassifier:
    """Zero-shot head for one attribute: a class embedding per class (C, D), unit rows.

    ``margin``: abstain when p(top-1) - p(top-2) < margin (0..1; 0 never abstains, and any
    margin above 1 always does). ``logit_scale``: softmax temperature over cosines.
    """

    attribute: str
    classes: tuple[str, ...]
    weights: np.ndarray
    margin: float = DEFAULT_MARGIN
    logit_scale: float = DEFAULT_LOGIT_SCALE

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.weights.shape[0] != len(self.classes):
            raise ValueError(
                f"{self.attribute}: weights {self.weights.shape} must be ({len(self.classes)}, D)"
            )
        if len(self.classes) < 2:
            raise ValueError(f"{self.attribute}: zero-shot needs at least two classes")
        if not self.margin >= 0.0:
            raise ValueError(f"{self.attribute}: margin must be >= 0, got {self.margin}")
        if not self.logit_scale > 0.0:
            raise ValueError(f"{self.attribute}: logit_scale must be > 0, got {self.logit_scale}")

    @classmethod
    def from_prompt_embeddings(
        cls,
        attribute: str,
        per_class: Mapping[str, np.ndarray],
        margin: float = DEFAULT_MARGIN,
        logit_scale: float = DEFAULT_LOGIT_SCALE,
    ) -> ZeroShotClassifier:
        """Build from each class's prompt embeddings (n_prompts, D), in mapping order."""
        weights = np.stack([ensemble(e) for e in per_class.values()])
        return cls(attribute, tuple(per_class), weights, margin, logit_scale)

    def probabilities(self, image_embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) for L2-normalised image embeddings (N, D)."""
        img = np.asarray(image_embeddings, dtype=np.float32)
        if img.ndim != 2 or img.shape[1] != self.weights.shape[1]:
            raise ValueError(
                f"{self.attribute}: image embeddings {img.shape} do not match the class "
                f"embeddings' dimension {self.weights.shape[1]}: use the same CLIP for both"
            )
        return softmax_rows(self.logit_scale * (img @ self.weights.T))

    def classify(self, image_embeddings: np.ndarray) -> list[ZeroShotResult]:
        """One reading per image embedding (N, D), abstaining within the margin."""
        probs = self.probabilities(image_embeddings)
        if probs.shape[0] == 0:
            return []
        order = np.argsort(-probs, axis=1, kind="stable")
        rows = np.arange(probs.shape[0])
        top = probs[rows, order[:, 0]]
        gap = top - probs[rows, order[:, 1]]
        out = []
        for i in range(probs.shape[0]):
            keep = bool(gap[i] >= self.margin)
            out.append(
                ZeroShotResult(
                    label=self.classes[int(order[i, 0])] if keep else None,
                    p=float(top[i]),
                    margin=float(gap[i]),
                    classes=self.classes,
                    probs=tuple(float(v) for v in probs[i]),
                    reason=None if keep else ABSTAIN_MARGIN,
                )
            )
        return out


def build_classifiers(
    embed_texts: Callable[[list[str]], np.ndarray],
    attributes: Sequence[Attribute],
    margin: float | Mapping[str, float] = DEFAULT_MARGIN,
    logit_scale: float = DEFAULT_LOGIT_SCALE,
) -> dict[str, ZeroShotClassifier]:
    """A classifier per attribute, from one ``embed_texts`` call over all their prompts.

    ``embed_texts``: a ClipScorer's ``embed_texts`` (L2-normalised (N, D) rows). ``margin``:
    one margin for all, or per attribute key (missing keys get ``DEFAULT_MARGIN``).
    """
    spans: list[tuple[Attribute, str, int, int]] = []
    prompts: list[str] = []
    for attr in attributes:
        for key in attr.class_keys:
            ps = attr.prompts(key)
            spans.append((attr, key, len(prompts), len(prompts) + len(ps)))
            prompts.extend(ps)
    emb = np.asarray(embed_texts(prompts)) if prompts else np.empty((0, 0), np.float32)
    if emb.shape[0] != len(prompts):
        raise ValueError(f"embed_texts returned {emb.shape[0]} rows for {len(prompts)} prompts")
    per_attr: dict[str, dict[str, np.ndarray]] = {a.key: {} for a in attributes}
    for attr, key, lo, hi in spans:
        per_attr[attr.key][key] = emb[lo:hi]
    out = {}
    for attr in attributes:
        m = margin.get(attr.key, DEFAULT_MARGIN) if isinstance(margin, Mapping) else margin
        out[attr.key] = ZeroShotClassifier.from_prompt_embeddings(
            attr.key, per_attr[attr.key], float(m), logit_scale
        )
    return out
