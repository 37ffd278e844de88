"""Stage and ceiling measurements for bench/scoring.py: each stage of CLIP and NSFW scoring
alone, the models alone on ready device tensors, and NudeNet's own per-image ``detect()``.

Every function returns plain JSON-ready dicts of rates (items/s). Timed code is warmed up
first and, on CUDA, bracketed by ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def sync(device: str) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def rate(
    fn: Callable[[], Any],
    items_per_call: int,
    device: str,
    *,
    min_s: float = 1.0,
    min_calls: int = 3,
    max_calls: int = 10_000,
    warmup: int = 1,
) -> dict[str, float | int]:
    """Call ``fn`` (``warmup`` times untimed, then until ``min_s`` s and ``min_calls`` calls).

    Returns ``items_per_s`` (items_per_call × calls / seconds), ``ms_per_call`` (ms) and
    ``calls``.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    calls = 0
    t0 = time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls >= max_calls:
            break
        if calls >= min_calls and time.perf_counter() - t0 >= min_s:
            sync(device)
            if time.perf_counter() - t0 >= min_s:
                break
    sync(device)
    elapsed = time.perf_counter() - t0
    return {
        "items_per_s": round(items_per_call * calls / elapsed, 1),
        "ms_per_call": round(1000 * elapsed / calls, 3),
        "calls": calls,
    }


def cycle(items: Sequence[Any], batch: int) -> Callable[[], Sequence[Any]]:
    """A function returning the next ``batch`` items of ``items``, wrapping around."""
    state = {"at": 0}

    def nxt() -> Sequence[Any]:
        at = state["at"]
        chunk = [items[(at + k) % len(items)] for k in range(batch)]
        state["at"] = (at + batch) % len(items)
        return chunk

    return nxt


# -- CLIP ------------------------------------------------------------------------------------
def clip_stages(
    clip: Any, images: Sequence[np.ndarray], prompts: Sequence[str], batch: int, min_s: float
) -> dict[str, Any]:
    """CLIP's stages at ``batch``: tokenize (CPU), preprocess (upload + resize), each tower.

    ``clip`` is a ``diffwatch.scoring.clip.scorer.ClipModel``. Tower rates use ready inputs on
    the device; ``model_only`` runs both towers per call: the model-only ceiling of the scorer.
    """
    import torch

    from diffwatch.scoring.clip.preprocess import preprocess_batch
    from diffwatch.scoring.clip.text import tokenize

    device = clip.device
    dtype = torch.float16 if clip.precision == "fp16" else torch.float32
    next_images = cycle(images, batch)
    next_prompts = cycle(prompts, batch)
    out: dict[str, Any] = {}
    # Prompts cycle through the whole set, so the tokenizer's BPE cache sees new words
    # as it would in production (open_clip caches BPE per word, not per prompt).
    out["tokenize"] = rate(
        lambda: tokenize(clip.tokenizer, next_prompts(), clip.context_length),
        batch,
        "cpu",
        min_s=min_s,
    )
    out["preprocess"] = rate(
        lambda: preprocess_batch(next_images(), clip.preprocess, device, dtype),
        batch,
        device,
        min_s=min_s,
    )
    h, w = clip.preprocess.size
    gen = torch.Generator(device="cpu").manual_seed(0)
    pixels = torch.randn((batch, 3, h, w), generator=gen).to(device, dtype)
    ids = tokenize(clip.tokenizer, list(prompts[:batch]), clip.context_length).ids.to(device)
    model = clip.model
    with torch.inference_mode():
        out["image_tower"] = rate(lambda: model.encode_image(pixels), batch, device, min_s=min_s)
        out["text_tower"] = rate(lambda: model.encode_text(ids), batch, device, min_s=min_s)
        out["model_only"] = rate(
            lambda: (model.encode_image(pixels), model.encode_text(ids)),
            batch,
            device,
            min_s=min_s,
        )
    out["model_only"]["input"] = (
        f"ready tensors on {device}: pixels ({batch}, 3, {h}, {w}) {str(dtype)[6:]}, "
        f"token ids ({batch}, {clip.context_length}); image + text tower per call"
    )
    return out


# -- NSFW ------------------------------------------------------------------------------------
def nsfw_stages(
    detector: Any, images: Sequence[np.ndarray], batch: int, min_s: float
) -> dict[str, Any]:
    """NudeNet 320n's stages at ``batch``: letterbox (CPU), upload + model + candidate
    selection, NMS and results, and the model alone on a ready float32 input.

    ``detector`` is a ``diffwatch.scoring.nsfw.detector.NsfwDetector``; this reaches into its
    private ``_candidates``/``_runner``/``_session`` to time the stages apart.
    """
    from diffwatch.scoring.nsfw.ops import INPUT_SIZE, finish_detections, letterbox_uint8

    device = detector.device
    next_images = cycle(images, batch)
    threads = detector.preprocess_threads
    out: dict[str, Any] = {}
    out["letterbox"] = rate(
        lambda: letterbox_uint8(next_images(), threads=threads), batch, "cpu", min_s=min_s
    )
    chunk = next_images()
    boxed = letterbox_uint8(chunk, threads=threads)
    out["upload_model_select"] = rate(
        lambda: detector._candidates(boxed), batch, device, min_s=min_s
    )
    cands = detector._candidates(boxed)
    sizes = [(int(im.shape[1]), int(im.shape[0])) for im in chunk]
    out["nms_and_results"] = rate(
        lambda: finish_detections(cands, sizes, detector.thresholds), batch, "cpu", min_s=min_s
    )
    out["nms_and_results"]["candidates_per_image"] = round(len(cands.image) / batch, 2)
    shape = (batch, 3, INPUT_SIZE, INPUT_SIZE)
    if detector.backend == "torch":
        import torch

        gen = torch.Generator(device="cpu").manual_seed(0)
        x = torch.rand(shape, generator=gen).to(device)
        runner = detector._runner
        out["model_only"] = rate(lambda: runner(x), batch, device, min_s=min_s)
    else:
        session, name = detector._session, detector._input_name
        x_np = np.random.default_rng(0).random(shape, dtype=np.float32)
        out["model_only"] = rate(lambda: session.run(None, {name: x_np}), batch, "cpu", min_s=min_s)
    out["model_only"]["input"] = (
        f"ready float32 {shape} on {device} ({detector.backend}); the graph only"
    )
    return out


# -- NudeNet's own API -----------------------------------------------------------------------
def nudenet_detect(paths: Sequence[str], warmup: int = 2) -> dict[str, Any]:
    """NudeNet's ``NudeDetector().detect(path)`` once per file: its per-image API (images/s)."""
    import onnxruntime
    from nudenet import NudeDetector

    detector = NudeDetector()
    for p in paths[:warmup]:
        detector.detect(p)
    detections = 0
    t0 = time.perf_counter()
    for p in paths:
        detections += len(detector.detect(p))
    elapsed = time.perf_counter() - t0
    return {
        "images": len(paths),
        "seconds": round(elapsed, 3),
        "images_per_s": round(len(paths) / elapsed, 1),
        "detections": detections,
        "providers": detector.onnx_session.get_providers(),
        "onnxruntime": onnxruntime.__version__,
        "note": "nudenet.NudeDetector().detect(path), one call per JPEG file (cv2.imread, "
        "letterbox, onnxruntime with its default providers, per-anchor Python "
        "post-processing), one thread calling",
    }
