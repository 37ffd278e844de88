"""Per-image perception for the bias probe: the person gate, CLIP zero-shot readings, NudeNet's
face reading and the face-pixel skin tone, in one CLIP pass and one NudeNet pass a batch.

Every reading is a *perceived* attribute of a generated image, never a fact about a person.

    perceiver = Perceiver(ClipScorer(load_clip(cfg)), load_nsfw_detector("cuda"),
                          attributes=("gender", "skin_tone", "age"))
    readings = perceiver.perceive(images)            # HxWx3 uint8 RGB arrays
    records = [r.to_dict() for r in readings]        # JSON for bias_items.readings
    agreement(readings, "gender")                    # CLIP vs NudeNet faces

An image counts only when the person gate reads ``person`` beyond the margin; otherwise every
other reading is recorded as abstained with reason "no person" (see ``ImageReading.to_dict``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from diffwatch.bias.attributes import ATTRIBUTES, GATE, PERSON_CLASS, select_attributes
from diffwatch.bias.faces import (
    DEFAULT_MIN_FACE_SCORE,
    DEFAULT_RIVAL_AREA,
    FaceReading,
    read_faces,
)
from diffwatch.bias.skin_tone import SkinToneReading, read_skin_tone
from diffwatch.bias.zero_shot import (
    ABSTAIN_NO_PERSON,
    DEFAULT_LOGIT_SCALE,
    DEFAULT_MARGIN,
    ZeroShotResult,
    build_classifiers,
)

if TYPE_CHECKING:
    from diffwatch.scoring.clip.scorer import ClipScorer
    from diffwatch.scoring.nsfw.detector import NsfwDetector

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "ImageReading",
    "Perceiver",
    "ReadingAgreement",
    "agreement",
    "cohen_kappa",
]

DEFAULT_ATTRIBUTES = ("gender", "skin_tone", "age")
# The second, independent reading of each attribute that has one: (record key, source).
SECOND_READING = {"gender": "faces", "skin_tone": "face_pixels"}


@dataclass(frozen=True)
class ImageReading:
    """What the probe perceived in one image.

    ``person``: the gate's reading (label: the winning class, ``person`` or a non-person
    scene, or None when within the margin). ``clip``: (attribute key, reading) for each
    selected attribute, gated. ``faces``: NudeNet's face reading (when gender is selected
    and a detector is given). ``face_pixels``: the face-pixel skin tone (when skin tone is
    selected and a detector is given).
    """

    person: ZeroShotResult
    clip: tuple[tuple[str, ZeroShotResult], ...]
    faces: FaceReading | None = None
    face_pixels: SkinToneReading | None = None

    @property
    def passed(self) -> bool:
        """True when the gate read a person beyond the margin: the image counts."""
        return self.person.label == PERSON_CLASS

    def reading(self, attribute: str) -> ZeroShotResult:
        """CLIP's reading of ``attribute``."""
        for key, r in self.clip:
            if key == attribute:
                return r
        raise KeyError(f"attribute {attribute!r} was not perceived; perceived: {self.keys}")

    @property
    def keys(self) -> tuple[str, ...]:
        """The perceived attributes' keys, gate excluded."""
        return tuple(k for k, _ in self.clip)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record, one key per attribute::

            {"person": {"label": "person" | "empty_scene" | ... | null, "p", "margin",
                        "probs": {...}, "passed": bool, "reason"?},
             "gender": {"clip": {...}, "faces": {"label", "score", "count", "box", "reason"?}},
             "skin_tone": {"clip": {...}, "face_pixels": {"label", "ita", "ita_category",
                           "lab", "delta_e", "skin_pixels", "region_pixels", "reason"?}},
             "age": {"clip": {...}}}

        A CLIP reading is ``{"label", "p", "margin", "probs", "reason"?}``; ``label`` is null
        when abstained, and ``reason`` says why ("margin", "no person", "no face", ...).
        """
        out: dict[str, Any] = {GATE: {**self.person.to_dict(), "passed": self.passed}}
        for key, r in self.clip:
            entry: dict[str, Any] = {"clip": r.to_dict()}
            if key == "gender" and self.faces is not None:
                entry["faces"] = self.faces.to_dict()
            if key == "skin_tone" and self.face_pixels is not None:
                entry["face_pixels"] = self.face_pixels.to_dict()
            out[key] = entry
        return out


class Perceiver:
    """Reads the selected perceived attributes of batches of images.

    ``scorer``: a loaded ClipScorer (class text embeddings are computed once, here).
    ``detector``: a loaded NsfwDetector for the face readings, or None to skip them
    (records then hold no ``faces`` / ``face_pixels`` entries). ``attributes``: keys from
    ``ATTRIBUTES``; the person gate is always added. ``margin``: the zero-shot abstain
    margin (probability, 0..1), one for all or per attribute key. ``min_face_score`` /
    ``rival_area``: see ``faces.read_faces``. ``skin_mask``: apply Chai & Ngan's skin mask
    in the face box.
    """

    def __init__(
        self,
        scorer: ClipScorer,
        detector: NsfwDetector | None,
        attributes: Iterable[str] = DEFAULT_ATTRIBUTES,
        *,
        margin: float | Mapping[str, float] = DEFAULT_MARGIN,
        logit_scale: float = DEFAULT_LOGIT_SCALE,
        min_face_score: float = DEFAULT_MIN_FACE_SCORE,
        rival_area: float = DEFAULT_RIVAL_AREA,
        skin_mask: bool = True,
    ) -> None:
        self.scorer = scorer
        self.detector = detector
        self.attributes = select_attributes(attributes)
        self.keys = tuple(a.key for a in self.attributes if a.key != GATE)
        self.classifiers = build_classifiers(
            scorer.embed_texts, self.attributes, margin, logit_scale
        )
        self.min_face_score = min_face_score
        self.rival_area = rival_area
        self.skin_mask = skin_mask
        self._needs_faces = bool({"gender", "skin_tone"} & set(self.keys))

    def perceive(
        self, images: Sequence[Any], image_embeddings: np.ndarray | None = None
    ) -> list[ImageReading]:
        """One reading per image, in order.

        ``images``: HxWx3 uint8 RGB numpy arrays (PIL images are converted). One CLIP image
        pass and one NudeNet pass for the whole batch. ``image_embeddings``: the images' CLIP
        embeddings (N, D), L2-normalised, when the caller already has them (for example
        from ``ClipScorer.score_and_embed``): then CLIP does not run here at all.
        """
        arrays = [
            im if isinstance(im, np.ndarray) else np.array(im.convert("RGB")) for im in images
        ]
        if not arrays:
            return []
        if image_embeddings is None:
            image_embeddings = self.scorer.embed_images(arrays)
        emb = np.asarray(image_embeddings, dtype=np.float32)
        if emb.shape[0] != len(arrays):
            raise ValueError(
                f"Perceiver.perceive: {emb.shape[0]} image embeddings for {len(arrays)} images"
            )
        by_attr = {key: clf.classify(emb) for key, clf in self.classifiers.items()}
        detections = None
        if self._needs_faces and self.detector is not None:
            detections = self.detector.detect_batch(arrays)
        out = []
        for i, image in enumerate(arrays):
            gate = by_attr[GATE][i]
            passed = gate.label == PERSON_CLASS
            clip = tuple(
                (k, by_attr[k][i] if passed else ZeroShotResult.abstained(ABSTAIN_NO_PERSON))
                for k in self.keys
            )
            found = detections[i] if detections is not None else None
            faces, pixels = self._face_readings(image, found, passed)
            out.append(ImageReading(gate, clip, faces, pixels))
        return out

    def _face_readings(
        self, image: np.ndarray, detections: list | None, passed: bool
    ) -> tuple[FaceReading | None, SkinToneReading | None]:
        """(faces, face_pixels) for one image, or None for an attribute not selected."""
        want_faces, want_pixels = "gender" in self.keys, "skin_tone" in self.keys
        if detections is None:  # no detector: no second reading, so no entry in the record
            return None, None
        face = read_faces(detections, self.min_face_score, self.rival_area)
        if not passed:
            # The count stays: faces the gate missed are worth seeing; nothing else counts.
            gated = FaceReading(label=None, count=face.count, reason=ABSTAIN_NO_PERSON)
            return (
                gated if want_faces else None,
                SkinToneReading(label=None, reason=ABSTAIN_NO_PERSON) if want_pixels else None,
            )
        pixels = None
        if want_pixels:
            pixels = read_skin_tone(image, face.box, mask=self.skin_mask)
        return (face if want_faces else None), pixels


@dataclass(frozen=True)
class ReadingAgreement:
    """How CLIP's reading of an attribute agrees with its second reading (faces / pixels).

    ``n_images``: readings given; ``n_both``: images both readings labelled (gate passed, no
    abstention on either side); ``n_agree``: of those, same label. ``share_agree``: n_agree /
    n_both (0..1, None when n_both is 0). ``kappa``: Cohen's kappa (None when undefined).
    ``alpha``: Krippendorff's alpha, nominal (None when undefined). ``within_one``: share of
    labels at most one class apart (ordered attributes only, else None).
    """

    attribute: str
    second: str
    n_images: int
    n_both: int
    n_agree: int
    share_agree: float | None
    kappa: float | None
    alpha: float | None
    within_one: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dict(self.__dict__)


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa (1960) of two raters' nominal labels; None when chance agreement is 1
    (both always gave the same single label) or there are no pairs."""
    if not pairs:
        return None
    n = len(pairs)
    left = Counter(x for x, _ in pairs)
    right = Counter(y for _, y in pairs)
    p_o = sum(x == y for x, y in pairs) / n
    p_e = sum(left[k] * right[k] for k in left) / (n * n)
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def agreement(
    readings: Iterable[ImageReading | Mapping[str, Any]], attribute: str = "gender"
) -> ReadingAgreement:
    """CLIP vs the second reading of ``attribute`` ("gender": NudeNet faces; "skin_tone":
    face pixels) over readings, given as ``ImageReading`` or their ``to_dict()`` records."""
    from diffwatch.analytics.agreement import krippendorff_alpha

    if attribute not in SECOND_READING:
        raise ValueError(
            f"agreement: {attribute!r} has no second reading; use one of {sorted(SECOND_READING)}"
        )
    second = SECOND_READING[attribute]
    pairs: list[tuple[str, str]] = []
    n_images = 0
    for r in readings:
        n_images += 1
        rec = r.to_dict() if isinstance(r, ImageReading) else r
        entry = rec.get(attribute) or {}
        left = (entry.get("clip") or {}).get("label")
        right = (entry.get(second) or {}).get("label")
        if left is not None and right is not None:
            pairs.append((left, right))
    n_agree = sum(x == y for x, y in pairs)
    alpha = None
    if pairs:
        triples = [(i, "clip", x) for i, (x, _) in enumerate(pairs)]
        triples += [(i, second, y) for i, (_, y) in enumerate(pairs)]
        alpha = krippendorff_alpha(triples, level="nominal").alpha
    within = None
    attr = ATTRIBUTES[attribute]
    if attr.ordered and pairs:
        index = {k: i for i, k in enumerate(attr.class_keys)}
        within = sum(abs(index[x] - index[y]) <= 1 for x, y in pairs) / len(pairs)
    return ReadingAgreement(
        attribute=attribute,
        second=second,
        n_images=n_images,
        n_both=len(pairs),
        n_agree=n_agree,
        share_agree=n_agree / len(pairs) if pairs else None,
        kappa=cohen_kappa(pairs),
        alpha=alpha,
        within_one=within,
    )
