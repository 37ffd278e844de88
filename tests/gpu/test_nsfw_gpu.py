"""The NSFW detector on CUDA gives the CPU path's detections (NudeNet's own, see unit tests).

Run on the device machine: ``pytest -m gpu tests/gpu/test_nsfw_gpu.py``. The torch backend is
always checked; onnxruntime's CUDA provider only where onnxruntime-gpu is installed.

Tolerances: scores within 1e-3 and boxes within 2 px. They are looser than the CPU tests'
(1e-4, 1 px) because cuDNN picks other convolution algorithms than onnxruntime's CPU kernels
(still strict float32: TF32 is off), and box errors are multiplied by side / 320 for images
larger than 320 px.
"""

from __future__ import annotations

import random

import pytest
import torch

from diffwatch.scoring.nsfw.detector import DetectionThresholds, NsfwDetector
from tests.fixtures.nsfw.compare import assert_same_detections, fixture_images, max_differences

pytestmark = pytest.mark.gpu


SCORE_TOL = 1e-3  # probability
BOX_TOL = 2  # px
LOW = DetectionThresholds(candidate=0.2 / 16, nms_score=0.25 / 16, nms_iou=0.45)


@pytest.fixture(scope="module")
def cuda() -> str:
    if not torch.cuda.is_available():
        pytest.fail(
            "a gpu-marked test ran without a CUDA GPU visible to torch: run it on a GPU machine"
        )
    return "cuda"


def _check(cpu: NsfwDetector, gpu: NsfwDetector, minimum: int) -> None:
    images = fixture_images()
    # Repeat and shuffle so that a GPU batch holds many sizes and several chunks are run.
    order = [i for _ in range(6) for i in range(len(images))]
    random.Random(3).shuffle(order)
    rgbs = [images[i].rgb for i in order]
    expected = cpu.detect_batch(rgbs)
    got = gpu.detect_batch(rgbs)
    assert len(got) == len(rgbs)
    compared = 0
    worst = (0.0, 0)
    for pos, i in enumerate(order):
        where = f"{images[i].name} at position {pos}"
        compared += assert_same_detections(
            expected[pos], got[pos], score_tol=SCORE_TOL, box_tol=BOX_TOL, where=where
        )
        score, box = max_differences(expected[pos], got[pos])
        worst = (max(worst[0], score), max(worst[1], box))
    print(f"compared {compared}; largest differences: score {worst[0]:.2e}, box {worst[1]} px")
    assert compared >= minimum


@pytest.mark.parametrize("thresholds", [None, LOW], ids=["nudenet", "low"])
def test_torch_cuda_matches_cpu(cuda, thresholds):
    cpu = NsfwDetector("cpu", batch_size=16, thresholds=thresholds)
    gpu = NsfwDetector(cuda, batch_size=32, backend="torch", thresholds=thresholds)
    assert gpu.backend == "torch"
    _check(cpu, gpu, minimum=60)


def test_onnxruntime_on_cuda_matches_cpu_or_names_the_fix(cuda):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        # No onnxruntime-gpu here: asking for it must fail clearly, not fall back quietly.
        with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
            NsfwDetector(cuda, backend="onnxruntime")
        return
    cpu = NsfwDetector("cpu", batch_size=16)
    gpu = NsfwDetector(cuda, batch_size=32, backend="onnxruntime")
    _check(cpu, gpu, minimum=60)


def test_auto_backend_on_cuda_runs(cuda):
    detector = NsfwDetector(cuda)
    assert detector.backend in ("onnxruntime", "torch")
    assert detector.detect_batch([]) == []
