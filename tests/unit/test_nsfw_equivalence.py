"""detect_batch gives NudeNet's own detect() results, on NudeNet's real 320n model, on CPU.

Images are drawn (tests/fixtures/nsfw/*.png; no photographs can be fetched here) in sizes from
64x64 to 900x300 px, so padding, scaling and clipping are all exercised. They give real
FEMALE_BREAST_EXPOSED and FACE_FEMALE detections at NudeNet's own thresholds. A second pass
lowers every threshold 16-fold on both sides (see ``_ScaledScores``) so that more, weaker
candidates go through the same code too.

Tolerances: scores within 1e-4 and boxes within 1 px. With onnxruntime the two paths are
in fact bit-identical (same input blob, same model); the tolerance covers float noise
between batch sizes and backends (torch differs by ~2e-6 in score), and 1 px covers an
``int()`` truncation falling on the other side of an integer.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from diffwatch.scoring.nsfw.detector import DetectionThresholds, NsfwDetector
from tests.fixtures.nsfw.compare import FixtureImage, assert_same_detections, fixture_images

nudenet = pytest.importorskip("nudenet")

SCORE_TOL = 1e-4  # probability
BOX_TOL = 1  # px
LOW_FACTOR = 16  # a power of two: scaling float32 scores by it is exact
LOW = DetectionThresholds(candidate=0.2 / LOW_FACTOR, nms_score=0.25 / LOW_FACTOR, nms_iou=0.45)


class _ScaledScores:
    """Wraps NudeNet's onnxruntime session and multiplies class scores by ``LOW_FACTOR``.

    NudeNet hard-codes its thresholds (0.2 and 0.25); feeding its unchanged post-processing
    scores scaled by 16 is exactly equivalent to dividing its thresholds by 16, because the
    scaling is exact in float32 and argmax and NMS ordering do not change under it.
    """

    def __init__(self, session) -> None:
        self.session = session

    def run(self, names, feeds):
        out = self.session.run(names, feeds)
        raw = out[0].copy()
        raw[:, 4:] *= np.float32(LOW_FACTOR)
        return [raw, *out[1:]]


@pytest.fixture(scope="module")
def images() -> list[FixtureImage]:
    return fixture_images()


@pytest.fixture(scope="module")
def reference(images) -> list[list[dict]]:
    """NudeNet's own detect() on each PNG file, as a user of NudeNet would call it."""
    detector = nudenet.NudeDetector()
    return [detector.detect(str(im.path)) for im in images]


@pytest.fixture(scope="module")
def reference_low(images) -> list[list[dict]]:
    detector = nudenet.NudeDetector()
    detector.onnx_session = _ScaledScores(detector.onnx_session)
    return [
        [dict(d, score=d["score"] / LOW_FACTOR) for d in detector.detect(str(im.path))]
        for im in images
    ]


def _compare(images, expected, got) -> int:
    assert len(got) == len(images)
    return sum(
        assert_same_detections(e, g, score_tol=SCORE_TOL, box_tol=BOX_TOL, where=im.name)
        for im, e, g in zip(images, expected, got, strict=True)
    )


def test_fixture_set_covers_sizes_and_gives_real_detections(images, reference):
    sizes = {im.rgb.shape[:2] for im in images}
    assert {(512, 512), (512, 768), (900, 300), (300, 900), (80, 100), (100, 80)} <= sizes
    labels = {d["class"] for dets in reference for d in dets}
    assert {"FEMALE_BREAST_EXPOSED", "FACE_FEMALE"} <= labels
    assert any(not dets for dets in reference), "keep an image with no detections"


def test_default_thresholds_match_nudenet_detect(images, reference):
    got = NsfwDetector(batch_size=4).detect_batch([im.rgb for im in images])
    compared = _compare(images, reference, got)
    assert compared >= 10, f"only {compared} detections compared: the check would be vacuous"


def test_low_thresholds_match_nudenet_detect(images, reference_low):
    got = NsfwDetector(batch_size=5, thresholds=LOW).detect_batch([im.rgb for im in images])
    compared = _compare(images, reference_low, got)
    assert compared >= 15, f"only {compared} detections compared"


def test_onnxruntime_path_is_bit_identical_to_nudenet(images, reference):
    got = NsfwDetector(batch_size=3).detect_batch([im.rgb for im in images])
    assert [[d.to_nudenet() for d in dets] for dets in got] == reference


def test_batch_size_does_not_change_results(images):
    rgbs = [im.rgb for im in images]
    one = NsfwDetector(batch_size=1, thresholds=LOW).detect_batch(rgbs)
    eight = NsfwDetector(batch_size=8, thresholds=LOW).detect_batch(rgbs)
    assert _compare(images, one, eight) >= 15


def test_order_is_preserved_and_duplicates_agree(images):
    detector = NsfwDetector(batch_size=8, thresholds=LOW)
    rgbs = [im.rgb for im in images]
    base = detector.detect_batch(rgbs)
    order = list(range(len(images)))
    random.Random(7).shuffle(order)
    order += order[:3]  # the same image twice in one call
    shuffled = detector.detect_batch([rgbs[i] for i in order])
    assert len(shuffled) == len(order)
    for pos, i in enumerate(order):
        assert_same_detections(
            base[i], shuffled[pos], score_tol=SCORE_TOL, box_tol=BOX_TOL, where=images[i].name
        )


def test_torch_backend_on_cpu_matches_nudenet(images, reference, reference_low):
    rgbs = [im.rgb for im in images]
    got = NsfwDetector(batch_size=16, backend="torch").detect_batch(rgbs)
    assert _compare(images, reference, got) >= 10
    got_low = NsfwDetector(batch_size=16, backend="torch", thresholds=LOW).detect_batch(rgbs)
    assert _compare(images, reference_low, got_low) >= 15


def test_boxes_lie_inside_their_images(images):
    got = NsfwDetector(thresholds=LOW).detect_batch([im.rgb for im in images])
    for im, dets in zip(images, got, strict=True):
        height, width = im.rgb.shape[:2]
        for d in dets:
            x, y, w, h = d.box
            assert 0 <= x <= width and 0 <= y <= height, (im.name, d)
            assert x + w <= width and y + h <= height, (im.name, d)
            assert LOW.nms_score < d.score <= 1.0
