"""NSFW policy and flag(): which detections make an image NSFW, and the detector's contract."""

from __future__ import annotations

import json

import pytest

from diffwatch.scoring.nsfw.detector import (
    DEFAULT_FLAG_LABELS,
    DEFAULT_FLAG_THRESHOLD,
    NUDENET_LABELS,
    Detection,
    NsfwDetector,
    NsfwPolicy,
    flag,
    load_nsfw_detector,
)
from tests.fixtures.nsfw.compare import fixture_images


def det(label: str, score: float, box=(1, 2, 3, 4)) -> Detection:
    return Detection(label=label, score=score, box=box)


def test_default_policy_is_explicit_nudity_at_half():
    expected = {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
    assert expected == DEFAULT_FLAG_LABELS
    assert DEFAULT_FLAG_LABELS.issubset(NUDENET_LABELS)
    assert DEFAULT_FLAG_THRESHOLD == 0.5
    assert NsfwPolicy() == NsfwPolicy(DEFAULT_FLAG_LABELS, 0.5)


def test_flag_uses_only_policy_labels_and_the_threshold_inclusively():
    detections = [
        det("FACE_FEMALE", 0.99),
        det("BELLY_EXPOSED", 0.9),
        det("FEMALE_BREAST_COVERED", 0.95),
        det("BUTTOCKS_EXPOSED", 0.5, (5, 6, 7, 8)),
        det("FEMALE_BREAST_EXPOSED", 0.7, (9, 9, 9, 9)),
        det("ANUS_EXPOSED", 0.3),
    ]
    result = flag(detections)
    assert result.flagged is True
    assert result.max_score == 0.7
    assert result.details == {
        "labels": ["FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED"],
        "scores": [0.7, 0.5],
        "boxes": [[9, 9, 9, 9], [5, 6, 7, 8]],
    }
    json.dumps(result.details)  # stored as JSONB by the worker


def test_below_threshold_is_not_flagged_but_reports_its_max_score():
    result = flag([det("MALE_GENITALIA_EXPOSED", 0.49), det("FACE_MALE", 0.9)])
    assert result.flagged is False
    assert result.max_score == 0.49
    assert result.details == {"labels": [], "scores": [], "boxes": []}


def test_no_detections():
    result = flag([])
    assert (result.flagged, result.max_score) == (False, 0.0)


def test_custom_policy():
    policy = NsfwPolicy(labels=frozenset({"BELLY_EXPOSED"}), threshold=0.8)
    assert flag([det("BELLY_EXPOSED", 0.85)], policy).flagged
    assert not flag([det("FEMALE_BREAST_EXPOSED", 0.99)], policy).flagged


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"labels": frozenset({"NIPPLE"})}, "unknown NudeNet labels"),
        ({"labels": frozenset()}, "empty"),
        ({"threshold": 0.0}, r"\(0, 1\]"),
        ({"threshold": 1.5}, r"\(0, 1\]"),
    ],
)
def test_policy_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NsfwPolicy(**kwargs)


def test_drawn_nudity_is_flagged_and_drawn_faces_are_not():
    images = {im.name: im.rgb for im in fixture_images()}
    names = ["body_512x512", "body_512x512_b", "face_512x512", "face_100x80", "flat_64x64"]
    results = load_nsfw_detector("cpu", batch_size=8).detect_batch([images[n] for n in names])
    flags = {n: flag(dets).flagged for n, dets in zip(names, results, strict=True)}
    assert flags == {
        "body_512x512": True,
        "body_512x512_b": True,
        "face_512x512": False,
        "face_100x80": False,
        "flat_64x64": False,
    }


def test_detector_contract_and_errors(tmp_path):
    detector = NsfwDetector()
    assert detector.backend == "onnxruntime" and detector.batch_size == 32
    assert detector.model_path.name == "320n.onnx"
    assert detector.detect_batch([]) == []
    with pytest.raises(ValueError, match="device must be"):
        NsfwDetector(device="gpu")
    with pytest.raises(ValueError, match="batch_size"):
        NsfwDetector(batch_size=0)
    with pytest.raises(FileNotFoundError, match="model_path"):
        NsfwDetector(model_path=tmp_path / "missing.onnx")


def test_cuda_with_onnxruntime_names_the_fix_or_uses_the_cuda_provider():
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(RuntimeError, match=r"onnxruntime-gpu.*backend='torch'"):
            NsfwDetector(device="cuda", backend="onnxruntime")
    else:  # onnxruntime-gpu on a GPU machine: the session really runs on CUDA
        detector = NsfwDetector(device="cuda", backend="onnxruntime")
        assert detector._session.get_providers()[0] == "CUDAExecutionProvider"
