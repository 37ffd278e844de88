"""NSFW flags from NudeNet's 320n detector, batched, with the same results as NudeNet's detect().

Public API:

- ``load_nsfw_detector(device, batch_size, model_path, backend)`` / ``NsfwDetector(...)``: load
  the model (explicitly; nothing is loaded at import).
- ``NsfwDetector.detect_batch(images)``: HxWx3 uint8 RGB arrays -> ``Detection`` lists, equal to
  ``NudeDetector().detect(path_of_that_image)`` within float noise (see docs/nsfw.md).
- ``flag(detections, policy)`` -> ``NsfwResult``: the yes/no decision for one image.

Backends: ``onnxruntime`` (CPU, or CUDA through onnxruntime-gpu's CUDAExecutionProvider) and
``torch`` (the same ONNX graph run by ``diffwatch.scoring.nsfw.torch_runner`` on any torch device).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from diffwatch.scoring.nsfw.ops import (
    INPUT_SIZE,
    NUDENET_LABELS,
    Candidates,
    Detection,
    DetectionThresholds,
    check_images,
    finish_detections,
    letterbox_uint8,
    select_candidates,
    to_model_input,
)

__all__ = [
    "DEFAULT_FLAG_LABELS",
    "DEFAULT_FLAG_THRESHOLD",
    "INPUT_SIZE",
    "NUDENET_LABELS",
    "Backend",
    "Detection",
    "DetectionThresholds",
    "NsfwDetector",
    "NsfwPolicy",
    "NsfwResult",
    "default_model_path",
    "flag",
    "load_nsfw_detector",
]

Backend = Literal["auto", "onnxruntime", "torch"]

# Explicit nudity only; see docs/nsfw.md for why the other labels are left out.
DEFAULT_FLAG_LABELS: frozenset[str] = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
DEFAULT_FLAG_THRESHOLD = 0.5  # class probability, 0..1


@dataclass(frozen=True)
class NsfwPolicy:
    """Which labels make an image NSFW, and from what score (probability, 0..1) on.

    NudeNet never reports a detection at or below its NMS score floor (0.25 by default), so a
    threshold under that floor acts as the floor.
    """

    labels: frozenset[str] = DEFAULT_FLAG_LABELS
    threshold: float = DEFAULT_FLAG_THRESHOLD

    def __post_init__(self) -> None:
        unknown = sorted(set(self.labels) - set(NUDENET_LABELS))
        if unknown:
            raise ValueError(
                f"NsfwPolicy.labels: unknown NudeNet labels {unknown}; "
                f"known labels are {sorted(NUDENET_LABELS)}"
            )
        if not self.labels:
            raise ValueError("NsfwPolicy.labels is empty: name at least one NudeNet label")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"NsfwPolicy.threshold must be in (0, 1], got {self.threshold}")
        object.__setattr__(self, "labels", frozenset(self.labels))


@dataclass(frozen=True)
class NsfwResult:
    """The decision for one image.

    ``flagged``: some detection of a policy label scored ``>=`` the policy threshold.
    ``max_score``: highest score (0..1) among detections of policy labels, 0.0 if none.
    ``details``: JSON-ready ``{"labels": [...], "scores": [...], "boxes": [[x, y, w, h], ...]}``
    of the policy-label detections at or above the threshold, highest score first; boxes in
    original-image pixels.
    """

    flagged: bool
    max_score: float
    details: dict[str, list] = field(default_factory=dict)


def flag(detections: Sequence[Detection], policy: NsfwPolicy | None = None) -> NsfwResult:
    """Decide whether one image's detections make it NSFW under ``policy`` (default policy)."""
    policy = policy or NsfwPolicy()
    relevant = [d for d in detections if d.label in policy.labels]
    max_score = max((d.score for d in relevant), default=0.0)
    hits = sorted(
        (d for d in relevant if d.score >= policy.threshold), key=lambda d: d.score, reverse=True
    )
    return NsfwResult(
        flagged=bool(hits),
        max_score=float(max_score),
        details={
            "labels": [d.label for d in hits],
            "scores": [d.score for d in hits],
            "boxes": [list(d.box) for d in hits],
        },
    )


def default_model_path() -> Path:
    """Path of the 320n.onnx file shipped inside the installed ``nudenet`` package."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "NSFW model: the nudenet package is not installed, so its 320n.onnx cannot be "
            "found; install it with `pip install 'diffwatch[scoring]'` (nudenet>=3.4) or pass "
            "model_path='/path/to/320n.onnx'"
        )
    path = Path(spec.origin).parent / "320n.onnx"
    if not path.is_file():
        raise RuntimeError(
            f"NSFW model: {path} is missing from the nudenet package; reinstall nudenet or "
            "pass model_path='/path/to/320n.onnx'"
        )
    return path


def _parse_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise ValueError(f"NSFW detector: device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return kind, int(index or 0)


def _cuda_ep_available() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


class NsfwDetector:
    """NudeNet's 320n detector over batches of images; loads the model when constructed.

    ``device``: 'cpu', 'cuda' or 'cuda:N'. ``batch_size``: images per model call.
    ``model_path``: an ONNX file with NudeNet's input and output layout (default: the one in
    the nudenet package). ``backend``: 'onnxruntime', 'torch', or 'auto' (onnxruntime on CPU;
    on CUDA onnxruntime when its CUDAExecutionProvider is installed, otherwise torch).
    ``thresholds``: post-processing thresholds, NudeNet's by default.
    ``preprocess_threads``: CPU threads for letterboxing (default: up to 8, one per core).
    """

    def __init__(
        self,
        device: str = "cpu",
        batch_size: int = 32,
        model_path: str | Path | None = None,
        backend: Backend = "auto",
        thresholds: DetectionThresholds | None = None,
        preprocess_threads: int | None = None,
    ) -> None:
        kind, index = _parse_device(device)
        if batch_size < 1:
            raise ValueError(f"NSFW detector: batch_size must be >= 1, got {batch_size}")
        if backend not in ("auto", "onnxruntime", "torch"):
            raise ValueError(
                f"NSFW detector: backend must be 'auto', 'onnxruntime' or 'torch', got {backend!r}"
            )
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"NSFW model: no ONNX file at {path}; check model_path")
        if backend == "auto":
            backend = "onnxruntime" if kind == "cpu" or _cuda_ep_available() else "torch"
        self.device = device
        self.batch_size = batch_size
        self.model_path = path
        self.backend: Literal["onnxruntime", "torch"] = backend
        self.thresholds = thresholds or DetectionThresholds()
        self.preprocess_threads = preprocess_threads or min(8, os.cpu_count() or 1)
        if backend == "onnxruntime":
            self._session = _ort_session(path, kind, index)
            self._input_name = self._session.get_inputs()[0].name
        else:
            self._runner = _torch_runner(path, kind, index)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detect on HxWx3 uint8 RGB images; one list of ``Detection`` per image, in order.

        Each list is ordered like NudeNet's (by NMS: highest score first); boxes are
        (x, y, w, h) in that image's pixels.
        """
        check_images(images)
        results: list[list[Detection]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            sizes = [(int(im.shape[1]), int(im.shape[0])) for im in chunk]
            if all(isinstance(im, np.ndarray) for im in chunk):
                letterboxed = letterbox_uint8(chunk, threads=self.preprocess_threads)
            else:  # some images are already on the GPU (nvJPEG): letterbox them there
                from diffwatch.scoring.nsfw.device import letterbox_on_device

                target = self._runner.device if self.backend == "torch" else "cpu"
                letterboxed = letterbox_on_device(chunk, target, threads=self.preprocess_threads)
            cands = self._candidates(letterboxed)
            results.extend(finish_detections(cands, sizes, self.thresholds))
        return results

    def _candidates(self, letterboxed: Any) -> Candidates:
        """Candidates from a (B, S, S, 3) uint8 batch: a numpy array or a torch tensor."""
        if self.backend == "onnxruntime":
            if not isinstance(letterboxed, np.ndarray):
                letterboxed = letterboxed.cpu().numpy()
            raw = self._session.run(None, {self._input_name: to_model_input(letterboxed)})[0]
            return select_candidates(raw, self.thresholds.candidate)
        return _torch_candidates(self._runner, letterboxed, self.thresholds.candidate)


def load_nsfw_detector(
    device: str = "cpu",
    batch_size: int = 32,
    model_path: str | Path | None = None,
    backend: Backend = "auto",
    thresholds: DetectionThresholds | None = None,
    preprocess_threads: int | None = None,
) -> NsfwDetector:
    """Load NudeNet's detector on ``device``; the loader that scoring workers call."""
    return NsfwDetector(device, batch_size, model_path, backend, thresholds, preprocess_threads)


def _ort_session(path: Path, kind: str, index: int):  # -> onnxruntime.InferenceSession
    import onnxruntime

    if kind == "cuda":
        if not _cuda_ep_available():
            raise RuntimeError(
                "NSFW detector: device='cuda' with backend='onnxruntime' needs onnxruntime's "
                f"CUDAExecutionProvider, but this onnxruntime "
                f"({onnxruntime.__version__}) only has {onnxruntime.get_available_providers()}; "
                "fix: `pip uninstall onnxruntime && pip install onnxruntime-gpu` (matching "
                "your CUDA), or use backend='torch' (runs the same graph with PyTorch on CUDA)"
            )
        providers: list = [("CUDAExecutionProvider", {"device_id": index})]
    else:
        providers = ["CPUExecutionProvider"]
    return onnxruntime.InferenceSession(str(path), providers=providers)


def _torch_runner(path: Path, kind: str, index: int):  # -> torch_runner.TorchOnnxRunner
    import torch

    from diffwatch.scoring.nsfw.torch_runner import load_torch_runner

    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "NSFW detector: device='cuda' but torch sees no CUDA GPU "
            f"(torch {torch.__version__}); install a CUDA build of torch, check the driver "
            "with nvidia-smi, or use device='cpu'"
        )
    return load_torch_runner(path, f"cuda:{index}" if kind == "cuda" else "cpu")


def _torch_candidates(runner, letterboxed: Any, threshold: float) -> Candidates:
    """Convert, run and filter on the runner's device; copy only the candidates back."""
    import torch

    scale = torch.tensor(1 / 255.0, dtype=torch.float32, device=runner.device)
    with torch.inference_mode():
        if isinstance(letterboxed, np.ndarray):
            letterboxed = torch.from_numpy(letterboxed)
        u8 = letterboxed.to(runner.device, non_blocking=True)
        # Same as to_model_input: channels reversed to B, G, R, then float32(v) * float32(1/255).
        x = u8.flip(-1).permute(0, 3, 1, 2).to(torch.float32) * scale
        raw = runner(x)
        rows = raw.transpose(1, 2)
        best, class_id = rows[..., 4:].max(dim=-1)
        image, anchor = torch.nonzero(best >= threshold, as_tuple=True)
        picked = rows[image, anchor]
        return Candidates(
            image=image.cpu().numpy().astype(np.int64),
            xywh=np.ascontiguousarray(picked[:, :4].cpu().numpy()),
            score=best[image, anchor].cpu().numpy(),
            class_id=class_id[image, anchor].cpu().numpy().astype(np.int64),
        )
