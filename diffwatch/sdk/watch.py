"""``watch``: wrap a diffusers pipeline so that every call logs one record per image.

The wrapper passes the caller's arguments through unchanged and returns the pipeline's own
output object, so images are identical with and without it. The one thing it adds: when no
``generator`` is given it draws a seed per image and passes CPU generators seeded with them
(as ``diffwatch drift regenerate`` does), so every logged seed reproduces its image.
When the logger has an image store, encoding and storing the images (and then logging their
records) happens on a bounded background thread, so the caller waits for neither; without
one, records are written before the call returns. torch is imported on the first call,
never at import.
"""

from __future__ import annotations

import inspect
import logging
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from diffwatch.sdk.background import Background
from diffwatch.sdk.record import InvalidRecord, new_request_id, now_iso

if TYPE_CHECKING:
    from diffwatch.sdk import GenerationLogger

log = logging.getLogger(__name__)

# diffusers scheduler class -> the A1111 name that diffwatch.drift.samplers resolves back to
# the same class (tests/unit/test_sdk_record.py checks the round trip).
_SAMPLER_NAMES: dict[str, str] = {
    "DDIMScheduler": "DDIM",
    "DDPMScheduler": "DDPM",
    "PNDMScheduler": "PNDM",
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE",
    "UniPCMultistepScheduler": "UniPC",
    "DEISMultistepScheduler": "DEIS",
    "LCMScheduler": "LCM",
}


def sampler_name(scheduler: Any) -> str:
    """The sampler name logged for a diffusers scheduler (A1111 style, "Karras" when its
    config uses Karras sigmas); the class name for schedulers the table does not know."""
    cls = type(scheduler).__name__
    name = _SAMPLER_NAMES.get(cls)
    if name is None:
        return cls
    config = getattr(scheduler, "config", {}) or {}
    if cls == "DPMSolverMultistepScheduler" and config.get("algorithm_type") == "sde-dpmsolver++":
        name = "DPM++ 2M SDE"
    if config.get("use_karras_sigmas"):
        name += " Karras"
    return name


def _seed_of(generator: Any) -> int | None:
    """The seed a torch generator was set with, if it has not been used since (else None:
    its seed would not reproduce the image)."""
    import torch

    seed = int(generator.initial_seed())
    fresh = torch.Generator(device=generator.device).manual_seed(seed)
    if torch.equal(fresh.get_state(), generator.get_state()):
        return seed if seed < 2**63 else seed - 2**64
    return None


class Watched:
    """A diffusers pipeline that logs each call; other attributes pass through to it.

    ``background`` (default on) stores images on a worker thread: at most ``max_pending``
    calls' images wait; a call that finds the queue full waits up to ``max_wait_s`` and then
    stores its own images. ``flush()`` and ``close()`` (or the logger's own) wait for what is
    queued.
    """

    def __init__(
        self,
        pipeline: Any,
        logger: GenerationLogger,
        *,
        model: str,
        model_version: str,
        deployment: str | None = None,
        fields: Mapping[str, Any] | None = None,
        background: bool = True,
        max_pending: int = 16,
        max_wait_s: float = 5.0,
    ) -> None:
        self.pipeline = pipeline
        self.logger = logger
        self.fields = {
            "model": model,
            "model_version": model_version,
            "deployment": deployment,
            "host": socket.gethostname(),
            **(fields or {}),
        }
        params = inspect.signature(pipeline.__call__).parameters
        self._names = list(params)
        self._defaults = {k: p.default for k, p in params.items()}
        self._gpu: dict[int, str] = {}
        self._background = (
            Background(max_pending=max_pending, max_wait_s=max_wait_s) if background else None
        )
        if self._background is not None:
            logger.attach(self._background)  # logger.flush()/close() wait for it
        self._failures_lock = threading.Lock()
        self.log_failures = 0  # records that could not be logged (the call still returned)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until queued images are stored and their records written, then flush the
        logger (the same as ``logger.flush``); False if ``timeout`` (s) ran out first."""
        return self.logger.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish queued work, then close the logger (the same as ``logger.close``)."""
        self.logger.close(timeout)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the pipeline with these arguments and log one record per image."""
        return self.generate(*args, **kwargs)

    def generate(
        self,
        *args: Any,
        dw_request_id: str | None = None,
        dw_fields: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Like ``__call__``; ``dw_request_id`` (the batch's id; image i gets ``ID-i`` when
        there are several) and ``dw_fields`` (``user_id``, ``queue_ms``, extra keys) go into
        the records, never to the pipeline."""
        import torch

        call = dict(zip(self._names, args, strict=False))
        call.update(kwargs)
        prompt = call.get("prompt")
        prompts = list(prompt) if isinstance(prompt, list | tuple) else [prompt]
        per_prompt = int(call.get("num_images_per_prompt") or 1)
        n = max(1, len(prompts)) * per_prompt
        seeds = self._seeds(call, kwargs, n, torch)
        device = getattr(self.pipeline, "device", None)
        cuda = device is not None and getattr(device, "type", "") == "cuda"
        t0 = time.perf_counter()
        start = end = None
        if cuda:
            index = device.index if device.index is not None else torch.cuda.current_device()
            torch.cuda.reset_peak_memory_stats(index)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        error: BaseException | None = None
        out = None
        try:
            out = self.pipeline(*args, **kwargs)
        except BaseException as exc:
            error = exc
        if end is not None:
            end.record()
        total_ms = (time.perf_counter() - t0) * 1000.0
        try:
            base: dict[str, Any] = {**self.fields, **(dw_fields or {})}
            base.update(self._call_fields(call, n))
            base["total_ms"] = round(total_ms, 3)
            if cuda:
                assert end is not None and start is not None
                end.synchronize()
                base["inference_ms"] = round(start.elapsed_time(end), 3)
                base["gpu_index"] = index
                base["gpu_type"] = self._gpu_name(index, torch)
                base["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(index) / 2**20, 1)
            else:
                base["inference_ms"] = round(total_ms, 3)
            images = getattr(out, "images", None) if out is not None else None
            later = self.logger.images is not None and self._background is not None
            later = later and error is None
            job = _Job(
                self, base, prompts, per_prompt, seeds, n, error,
                dw_request_id or new_request_id(), now_iso(),
                # stored later: a copy, as the caller may change its images meanwhile
                _snapshot(images) if later else images,
            )  # fmt: skip
            if later:
                assert self._background is not None
                self._background.submit(job)
            else:
                job()
        except Exception:  # logging must never cost the caller its images
            self._failed()
        if error is not None:
            raise error
        return out

    # -- helpers ----------------------------------------------------------------------
    def _seeds(self, call: dict[str, Any], kwargs: dict[str, Any], n: int, torch: Any) -> list:
        gen = call.get("generator")
        if gen is None:
            drawn = [secrets.randbits(63) for _ in range(n)]
            gens = [torch.Generator(device="cpu").manual_seed(s) for s in drawn]
            kwargs["generator"] = gens if n > 1 else gens[0]
            return list(drawn)
        if isinstance(gen, list | tuple):
            return [_seed_of(g) for g in gen] if len(gen) == n else [None] * n
        seed = _seed_of(gen)
        return [seed] * n if n == 1 else [None] * n  # one generator for a batch: not per image

    def _call_fields(self, call: dict[str, Any], n: int) -> dict[str, Any]:
        def arg(name: str) -> Any:
            value = call.get(name, self._defaults.get(name))
            return None if value is inspect.Parameter.empty else value

        neg = arg("negative_prompt")
        scheduler = getattr(self.pipeline, "scheduler", None)
        return {
            "negative_prompt": neg if isinstance(neg, str) else None,
            "sampler": sampler_name(scheduler) if scheduler is not None else None,
            "steps": arg("num_inference_steps"),
            "cfg_scale": float(g) if isinstance(g := arg("guidance_scale"), int | float) else None,
            "width": arg("width"),
            "height": arg("height"),
            "batch_size": n,
        }

    def _gpu_name(self, index: int, torch: Any) -> str:
        if index not in self._gpu:
            self._gpu[index] = torch.cuda.get_device_name(index)
        return self._gpu[index]

    def _failed(self, what: str = "a generation") -> None:
        with self._failures_lock:
            self.log_failures += 1
        log.exception("diffwatch: could not log %s; the call itself was not affected", what)


def _snapshot(images: Any) -> Any:
    """A copy of a call's PIL images (other outputs, such as arrays, are not stored)."""
    if not isinstance(images, list):
        return images
    return [im.copy() if hasattr(im, "copy") and hasattr(im, "save") else im for im in images]


@dataclass(frozen=True, slots=True)
class _Job:
    """The records of one call: built, their images stored, and written (on the caller's
    thread or the background one)."""

    watched: Watched
    base: dict[str, Any]
    prompts: list[Any]
    per_prompt: int
    seeds: list[int | None]
    n: int
    error: BaseException | None
    request_id: str
    ts: str
    images: Any

    def __call__(self) -> None:
        try:
            self._log_all()
        except Exception:  # on the worker thread nobody else would see it
            self.watched._failed()

    def _log_all(self) -> None:
        n, error, images, rid = self.n, self.error, self.images, self.request_id
        logger = self.watched.logger
        for i in range(n):
            rec = dict(self.base)
            rec["request_id"] = rid if n == 1 else f"{rid}-{i}"
            rec["timestamp"] = self.ts
            p = self.prompts[min(i // self.per_prompt, len(self.prompts) - 1)]
            rec["prompt"] = p if isinstance(p, str) else ""
            rec["seed"] = self.seeds[i] if i < len(self.seeds) else None
            if n > 1:
                rec["batch_request_id"] = rid
                rec["batch_index"] = i
            if error is not None:
                rec["status"] = "error"
                rec["error"] = f"{type(error).__name__}: {error}"[:4000]
                rec["error_kind"] = type(error).__name__
            else:
                rec["status"] = "ok"
                img = images[i] if images is not None and i < len(images) else None
                if img is not None and hasattr(img, "size") and hasattr(img, "save"):
                    rec["width"], rec["height"] = img.size
                    if logger.images is not None:
                        rec["image_uri"] = logger.images.save(img)
            try:
                logger.log(rec)
            except InvalidRecord:
                self.watched._failed("a generation record (invalid)")


def watch(
    pipeline: Any,
    logger: GenerationLogger,
    *,
    model: str,
    model_version: str,
    deployment: str | None = None,
    background: bool = True,
    max_pending: int = 16,
    max_wait_s: float = 5.0,
    **fields: Any,
) -> Watched:
    """Wrap a diffusers pipeline so that each call logs one record per image to ``logger``.

    ``fields`` are added to every record (``user_id``, or extra keys kept in ``extra``).
    ``background``, ``max_pending`` and ``max_wait_s``: see ``Watched``.
    """
    return Watched(
        pipeline, logger, model=model, model_version=model_version, deployment=deployment,
        fields=fields, background=background, max_pending=max_pending, max_wait_s=max_wait_s,
    )  # fmt: skip
