"""NudeNet's pre- and post-processing, vectorised over a batch and bit-exact with NudeNet 3.4.

NudeNet's ``NudeDetector.detect(path)`` does, per image (nudenet/nudenet.py):

1. ``cv2.imread`` (BGR), then ``cvtColor(RGBA2BGR)``, which on a 3-channel image swaps R and B,
   then ``blobFromImage(swapRB=True)``, which swaps them back: the model is fed **B, G, R**.
2. Zero padding on the bottom and right to a square of side ``max(H, W)``, a bilinear
   (``INTER_LINEAR``) resize of the uint8 square to 320x320, then ``x * (1/255)`` in float32.
3. For each of the 2100 anchors: keep it if its best class score is ``>= 0.2``; convert the
   centre box to top-left, scale by ``side / 320``, clip to the image, then
   ``cv2.dnn.NMSBoxes(boxes, scores, 0.25, 0.45)`` and truncate the box to ints.

Here step 2 is one resize per image into a shared uint8 buffer plus one vectorised float
conversion, and step 3 is vectorised numpy (same float32 arithmetic, same order), with the
same ``cv2.dnn.NMSBoxes`` call per image, so results are identical for identical model output.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = 320  # px, side of the square the 320n model sees

# Class index -> label, as in nudenet/nudenet.py and the model's own "names" metadata.
NUDENET_LABELS: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)

# blobFromImage computes float32(v) * float32(1/255); dividing by 255 would round differently.
_SCALE = np.float32(1 / 255.0)


@dataclass(frozen=True)
class Detection:
    """One detected region, in NudeNet's convention.

    ``box`` is ``(x, y, w, h)`` in original-image pixels: top-left corner, width and height,
    each truncated towards zero like NudeNet's ``int()``. ``score`` is the class probability
    (0..1).
    """

    label: str
    score: float
    box: tuple[int, int, int, int]

    def to_nudenet(self) -> dict[str, object]:
        """The same detection as NudeNet's ``detect()`` dict: ``class``, ``score``, ``box``."""
        return {"class": self.label, "score": self.score, "box": list(self.box)}


@dataclass(frozen=True)
class DetectionThresholds:
    """Post-processing thresholds; the defaults are NudeNet's own (hard-coded there).

    ``candidate``: an anchor is kept when its best class score is ``>=`` this (0..1).
    ``nms_score``: ``cv2.dnn.NMSBoxes`` drops boxes scoring ``<=`` this (0..1), so it is the
    effective floor of every reported score. ``nms_iou``: IoU above which a lower-scoring box
    is suppressed (0..1).
    """

    candidate: float = 0.2
    nms_score: float = 0.25
    nms_iou: float = 0.45

    def __post_init__(self) -> None:
        for name in ("candidate", "nms_score", "nms_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DetectionThresholds.{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class Candidates:
    """Anchors that passed the candidate threshold, for a whole batch (host numpy arrays).

    ``image``: index of the image in the batch (int64, ascending, anchors ascending within
    an image, the order NudeNet loops in). ``xywh``: centre x, centre y, width, height in
    320-px model space (float32, shape (n, 4)). ``score``: best class score (float32).
    ``class_id``: index into ``NUDENET_LABELS`` of the first best class (int64).
    """

    image: np.ndarray
    xywh: np.ndarray
    score: np.ndarray
    class_id: np.ndarray


def check_images(images: Sequence[np.ndarray]) -> None:
    """Raise a ValueError naming the first image that is not HxWx3 uint8 RGB pixels (a numpy
    array, or a torch tensor such as nvJPEG's output on the GPU)."""
    for i, image in enumerate(images):
        # A torch tensor is accepted as well: nvJPEG's output on the GPU (torch not imported).
        tensor = type(image).__module__.startswith("torch")
        shape = tuple(getattr(image, "shape", ()))
        ok = (
            (str(image.dtype) == "torch.uint8" if tensor else isinstance(image, np.ndarray))
            and (tensor or image.dtype == np.uint8)
            and len(shape) == 3
            and shape[2] == 3
            and shape[0] > 0
            and shape[1] > 0
        )
        if not ok:
            shape = getattr(image, "shape", None)
            dtype = getattr(image, "dtype", type(image).__name__)
            raise ValueError(
                f"images[{i}]: expected an HxWx3 uint8 RGB numpy array, got shape {shape} "
                f"dtype {dtype}; convert with np.asarray(PIL.Image.open(path).convert('RGB'))"
            )


def letterbox_uint8(
    images: Sequence[np.ndarray], size: int = INPUT_SIZE, threads: int = 1
) -> np.ndarray:
    """Pad each RGB image bottom/right to a square and resize it to ``size`` px, like NudeNet.

    Returns a uint8 array of shape (B, size, size, 3), still RGB. ``threads`` > 1 spreads the
    images over a thread pool (OpenCV releases the GIL). Call ``check_images`` first.
    """
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)

    def one(i: int) -> None:
        image = images[i]
        height, width = image.shape[:2]
        side = max(height, width)
        if height != width:
            image = cv2.copyMakeBorder(
                image, 0, side - height, 0, side - width, cv2.BORDER_CONSTANT, value=0
            )
        cv2.resize(image, (size, size), dst=out[i], interpolation=cv2.INTER_LINEAR)

    if threads > 1 and len(images) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(images))) as pool:
            list(pool.map(one, range(len(images))))
    else:
        for i in range(len(images)):
            one(i)
    return out


def to_model_input(letterboxed: np.ndarray) -> np.ndarray:
    """uint8 (B, S, S, 3) RGB -> float32 (B, 3, S, S) in NudeNet's B, G, R order, scaled 0..1."""
    batch, height, width, _ = letterboxed.shape
    out = np.empty((batch, 3, height, width), dtype=np.float32)
    for channel in range(3):  # output channel 0 is B, which is input channel 2
        np.multiply(letterboxed[..., 2 - channel], _SCALE, out=out[:, channel], dtype=np.float32)
    return out


def select_candidates(raw: np.ndarray, threshold: float) -> Candidates:
    """Keep the anchors whose best class score is ``>= threshold``.

    ``raw`` is the model output, float32 of shape (B, 4 + classes, anchors).
    """
    rows = np.asarray(raw, dtype=np.float32).transpose(0, 2, 1)  # (B, anchors, 4 + classes)
    class_scores = rows[..., 4:]
    best = class_scores.max(axis=-1)
    image, anchor = np.nonzero(best >= np.float32(threshold))
    return Candidates(
        image=image.astype(np.int64),
        xywh=np.ascontiguousarray(rows[image, anchor, :4]),
        score=best[image, anchor],
        class_id=class_scores[image, anchor].argmax(axis=-1).astype(np.int64),
    )


def finish_detections(
    cands: Candidates,
    sizes: Sequence[tuple[int, int]],
    thresholds: DetectionThresholds,
    size: int = INPUT_SIZE,
) -> list[list[Detection]]:
    """Scale candidate boxes to each original image, clip, run NMS per image, build results.

    ``sizes`` holds ``(width, height)`` in px of each original image, in batch order.
    Float32 arithmetic follows NudeNet's scalar code operation by operation.
    """
    results: list[list[Detection]] = [[] for _ in sizes]
    if cands.image.size == 0:
        return results
    wh = np.asarray(sizes, dtype=np.int64)
    img_w = wh[cands.image, 0].astype(np.float32)
    img_h = wh[cands.image, 1].astype(np.float32)
    side = np.maximum(wh[:, 0], wh[:, 1])[cands.image].astype(np.float32)
    model = np.float32(size)
    cx, cy, w, h = (cands.xywh[:, k] for k in range(4))
    x = (cx - w / np.float32(2)) * side / model
    y = (cy - h / np.float32(2)) * side / model
    w = w * side / model
    h = h * side / model
    x = np.maximum(np.float32(0), np.minimum(x, img_w))
    y = np.maximum(np.float32(0), np.minimum(y, img_h))
    w = np.minimum(w, img_w - x)
    h = np.minimum(h, img_h - y)
    boxes = np.stack([x, y, w, h], axis=1)
    boxes_int = boxes.astype(np.int64)  # truncation towards zero, like int()
    # Candidates come sorted by image, so each image is one contiguous run.
    starts = np.searchsorted(cands.image, np.arange(len(sizes)), side="left")
    ends = np.searchsorted(cands.image, np.arange(len(sizes)), side="right")
    for i, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if lo == hi:
            continue
        kept = cv2.dnn.NMSBoxes(
            boxes[lo:hi].tolist(),
            cands.score[lo:hi].tolist(),
            thresholds.nms_score,
            thresholds.nms_iou,
        )
        for k in np.asarray(kept, dtype=np.int64).reshape(-1).tolist():
            j = lo + k
            x0, y0, bw, bh = boxes_int[j].tolist()
            results[i].append(
                Detection(
                    label=NUDENET_LABELS[int(cands.class_id[j])],
                    score=float(cands.score[j]),
                    box=(x0, y0, bw, bh),
                )
            )
    return results
