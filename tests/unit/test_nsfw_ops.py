"""NudeNet's pre- and post-processing, vectorised: bit-exact against NudeNet's own functions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from diffwatch.scoring.nsfw.ops import (
    NUDENET_LABELS,
    DetectionThresholds,
    check_images,
    finish_detections,
    letterbox_uint8,
    select_candidates,
    to_model_input,
)
from tests.fixtures.nsfw.compare import fixture_images

nn = pytest.importorskip("nudenet.nudenet")


def test_labels_are_nudenets():
    assert list(NUDENET_LABELS) == nn.__dict__["__labels"]


@pytest.mark.parametrize(
    "height,width", [(512, 512), (512, 768), (900, 300), (80, 100), (1, 1), (333, 517)]
)
def test_model_input_is_bit_identical(tmp_path, height, width):
    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), rgb[..., ::-1])  # cv2 writes BGR: the file holds our RGB pixels
    expected = nn._read_image(str(path), 320)[0]
    got = to_model_input(letterbox_uint8([rgb]))
    assert got.dtype == np.float32 and got.shape == (1, 3, 320, 320)
    np.testing.assert_array_equal(got, expected)


def test_model_input_of_a_mixed_batch_matches_each_image():
    images = [im.rgb for im in fixture_images()]
    batch = to_model_input(letterbox_uint8(images))
    for i, image in enumerate(images):
        np.testing.assert_array_equal(batch[i : i + 1], to_model_input(letterbox_uint8([image])))


def _random_raw(rng: np.random.Generator, batch: int) -> np.ndarray:
    """Fake model output with many overlapping boxes, some outside the image."""
    anchors = 2100
    raw = np.zeros((batch, 22, anchors), np.float32)
    raw[:, 0:2] = rng.uniform(-20, 340, (batch, 2, anchors))
    raw[:, 2:4] = rng.uniform(0, 200, (batch, 2, anchors))
    raw[:, 4:] = rng.uniform(0, 1, (batch, 18, anchors)) ** 8
    return raw


def test_postprocess_is_identical_to_nudenets_on_random_outputs():
    rng = np.random.default_rng(1)
    compared = 0
    for _ in range(40):
        batch = int(rng.integers(1, 5))
        raw = _random_raw(rng, batch)
        sizes = [(int(rng.integers(1, 1500)), int(rng.integers(1, 1500))) for _ in range(batch)]
        got = finish_detections(select_candidates(raw, 0.2), sizes, DetectionThresholds())
        for i, (width, height) in enumerate(sizes):
            side = max(width, height)
            expected = nn._postprocess(
                [raw[i : i + 1]], side - width, side - height, 0, 0, width, height, 320, 320
            )
            assert [d.to_nudenet() for d in got[i]] == expected
            compared += len(expected)
    assert compared > 1000


def test_no_candidates_gives_empty_lists():
    raw = np.zeros((3, 22, 2100), np.float32)
    got = finish_detections(select_candidates(raw, 0.2), [(10, 10)] * 3, DetectionThresholds())
    assert got == [[], [], []]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
        "image.png",
    ],
)
def test_bad_images_are_named_in_the_error(bad):
    with pytest.raises(ValueError, match=r"images\[1\]: expected an HxWx3 uint8 RGB"):
        check_images([np.zeros((4, 4, 3), np.uint8), bad])


def test_thresholds_are_validated():
    with pytest.raises(ValueError, match="nms_iou"):
        DetectionThresholds(nms_iou=1.5)


def test_threaded_letterbox_is_identical():
    images = [im.rgb for im in fixture_images()] * 3
    np.testing.assert_array_equal(letterbox_uint8(images, threads=4), letterbox_uint8(images))
