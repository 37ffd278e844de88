"""Re-generation engine: logged prompts re-run with their logged seed and settings.

``Regenerator.run`` groups requests by what one pipeline call must share (size, steps,
sampler, CFG scale, with or without a negative prompt), runs each group in chunks of at
most ``max_batch`` images, and yields one ``RegenOutcome`` per request. A bad request (an
unknown sampler, a bad size, steps, CFG or seed) or a failed pipeline call becomes an
error outcome for the items concerned; the run goes on with the others.

Reproducibility: every image gets its own ``torch.Generator`` on the CPU, seeded with the
logged seed. Its initial latents are drawn from it in fp32 on the CPU (as diffusers'
``randn_tensor`` does for an fp32 pipeline), then cast to the pipeline's precision and
moved to the device; an ancestral sampler's per-step noise comes from the same generator
(diffusers draws it on the CPU too). So the noise is bit-identical on any machine, in any
batch and at any position in it, and the initial noise also in either precision. The
same request run twice gives the same image (bit-identical on the CPU and, as measured
on an H200, in fp16 on CUDA). Batched with other neighbours, float rounding in
batched kernels (CPU: channels-last GroupNorm, oneDNN convolutions; GPU: cuDNN/cuBLAS
algorithms picked per shape) can move a few values by about one level (CPU measured: max
1 level, mean <= 0.0002). ``used["batch_size"]`` records the batch. Each chunk gets a
fresh scheduler built from the pipeline's own scheduler config, so nothing carries over
from one chunk to the next.

Not thread-safe: ``run`` swaps ``pipe.scheduler``; use one Regenerator per pipeline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diffwatch.drift.samplers import UnknownSampler, resolve
from diffwatch.errors import first_line

if TYPE_CHECKING:
    from PIL import Image

    from diffwatch.drift.diffusion_load import LoadedPipeline

# When a generation logged no steps: A1111 defaults to 20, diffusers' SD pipelines to 50;
# 25 is the common production setting for DPM++/Euler samplers and half the GPU time of 50.
DEFAULT_STEPS = 25
DEFAULT_CFG = 7.5  # SD 1.5 pipelines' and A1111's default guidance scale
MIN_SIDE, MAX_SIDE = 64, 4096  # px; outside this no production model makes sense
MAX_STEPS = 1000  # the schedulers' training timesteps


@dataclass(frozen=True)
class RegenRequest:
    """One logged generation to re-run.

    ``sampler`` is the logged name (A1111, ComfyUI, Stability API or a diffusers class
    name; None: the pipeline's own scheduler). ``steps`` None means ``DEFAULT_STEPS`` (25),
    ``cfg_scale`` None means ``DEFAULT_CFG`` (7.5), ``width``/``height`` None the
    pipeline's default size (px). ``negative_prompt`` None means none ("" is passed as is:
    SDXL treats an empty negative prompt differently from none).
    """

    key: str
    prompt: str
    seed: int
    sampler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    negative_prompt: str | None = None


@dataclass(frozen=True)
class RegenOutcome:
    """The result for one request: an image, or an error message and its kind.

    ``error_kind`` is one of ``unknown_sampler``, ``bad_size``, ``bad_steps``, ``bad_cfg``,
    ``bad_seed``, ``out_of_memory``, ``generation_failed``. ``used`` records what was
    actually used (scheduler class and options, steps, cfg_scale, width, height in px,
    batch_size, generator device, pipeline). ``seconds`` is this item's share of its
    pipeline call's wall time (s).
    """

    key: str
    image: Image.Image | None
    error: str | None
    error_kind: str | None
    used: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Plan:
    """Settings shared by one pipeline call; ``scheduler`` None means the pipeline's own."""

    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler: str | None
    scheduler: str | None
    options: tuple[tuple[str, Any], ...]
    has_negative: bool

    def group_key(self) -> tuple[Any, ...]:
        """Requests with equal keys can share a pipeline call (sampler spellings merged)."""
        return (
            self.width,
            self.height,
            self.steps,
            self.cfg_scale,
            self.scheduler,
            self.options,
            self.has_negative,
        )


class _BadRequest(ValueError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Regenerator:
    """Re-runs logged generations on a loaded pipeline, in batches, never crashing on one item."""

    def __init__(self, loaded: LoadedPipeline, max_batch: int | None = None) -> None:
        """``max_batch`` images per pipeline call; None takes the loaded pipeline's setting."""
        batch = loaded.max_batch if max_batch is None else max_batch
        if not _is_int(batch) or batch < 1:
            raise ValueError(f"Regenerator: max_batch must be a positive integer, got {batch!r}")
        self.loaded = loaded
        self.max_batch = batch

    # ------------------------------------------------------------------ planning
    def _plan(self, req: RegenRequest) -> _Plan:
        """Check a request and settle its settings; raise _BadRequest with the fix."""
        default_w, default_h = self.loaded.default_size()
        width = default_w if req.width is None else req.width
        height = default_h if req.height is None else req.height
        step = self.loaded.vae_scale_factor
        for name, side in (("width", width), ("height", height)):
            if not _is_int(side) or not MIN_SIDE <= side <= MAX_SIDE or side % step:
                raise _BadRequest(
                    "bad_size",
                    f"request {req.key!r}: {name} must be a multiple of {step} px from "
                    f"{MIN_SIDE} to {MAX_SIDE}, got {side!r}; fix: log the size the image was "
                    f"generated at (the pipeline's default is {default_w}x{default_h})",
                )
        steps = DEFAULT_STEPS if req.steps is None else req.steps
        if not _is_int(steps) or not 1 <= steps <= MAX_STEPS:
            raise _BadRequest(
                "bad_steps",
                f"request {req.key!r}: steps must be an integer from 1 to {MAX_STEPS}, "
                f"got {steps!r}",
            )
        cfg = DEFAULT_CFG if req.cfg_scale is None else req.cfg_scale
        if isinstance(cfg, bool) or not isinstance(cfg, int | float) or not math.isfinite(cfg):
            raise _BadRequest(
                "bad_cfg", f"request {req.key!r}: cfg_scale must be a finite number, got {cfg!r}"
            )
        if not _is_int(req.seed) or not 0 <= req.seed < 2**64:
            raise _BadRequest(
                "bad_seed",
                f"request {req.key!r}: seed must be an integer from 0 to 2**64-1, got "
                f"{req.seed!r} (a logged -1 means the service drew a random seed and did "
                "not log it: such generations cannot be re-generated)",
            )
        scheduler, options = None, ()
        if req.sampler is not None:
            try:
                spec = resolve(req.sampler)
            except UnknownSampler as exc:
                raise _BadRequest("unknown_sampler", f"request {req.key!r}: {exc}") from exc
            scheduler, options = spec.scheduler, tuple(sorted(spec.options.items()))
        return _Plan(
            width=width,
            height=height,
            steps=steps,
            cfg_scale=float(cfg),
            sampler=req.sampler,
            scheduler=scheduler,
            options=options,
            has_negative=req.negative_prompt is not None,
        )

    def _scheduler(self, plan: _Plan) -> Any:
        """A fresh scheduler for one chunk, from the pipeline's original scheduler config."""
        import diffusers

        from diffwatch.drift.samplers import build_scheduler

        base = self.loaded.base_scheduler_config
        if plan.sampler is None:
            return getattr(diffusers, self.loaded.base_scheduler_class).from_config(dict(base))
        return build_scheduler(plan.sampler, base)

    # ------------------------------------------------------------------ running
    def run(
        self,
        requests: Sequence[RegenRequest],
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[RegenOutcome]:
        """Yield one outcome per request (lazily, chunk by chunk).

        Order: requests rejected before generation first, then the groups in the order
        of their first request, each group in input order. Match outcomes by ``key``.
        ``progress(n)`` is called after each chunk with the number of items it finished
        (an increment, as ``tqdm.update`` takes).
        """
        groups: dict[tuple[Any, ...], tuple[_Plan, list[RegenRequest]]] = {}
        rejected: list[RegenOutcome] = []
        for req in requests:
            try:
                plan = self._plan(req)
            except _BadRequest as exc:
                rejected.append(RegenOutcome(req.key, None, str(exc), exc.kind, self._used(req)))
                continue
            groups.setdefault(plan.group_key(), (plan, []))[1].append(req)
        yield from rejected
        if rejected and progress:
            progress(len(rejected))
        for plan, items in groups.values():
            for start in range(0, len(items), self.max_batch):
                chunk = items[start : start + self.max_batch]
                yield from self._run_chunk(plan, chunk)
                if progress:
                    progress(len(chunk))

    def _used(self, req: RegenRequest, plan: _Plan | None = None, **extra: Any) -> dict[str, Any]:
        """What was (or would have been) used for one request."""
        used: dict[str, Any] = {"sampler": req.sampler, "seed": req.seed}
        if plan is not None:
            used.update(
                steps=plan.steps,
                cfg_scale=plan.cfg_scale,
                width=plan.width,
                height=plan.height,
                negative_prompt=plan.has_negative,
            )
        used.update(
            generator_device="cpu",
            device=self.loaded.device,
            precision=self.loaded.precision,
            pipeline=self.loaded.describe(),
        )
        used.update(extra)
        return used

    def _run_chunk(self, plan: _Plan, chunk: list[RegenRequest]) -> list[RegenOutcome]:
        """One pipeline call; on failure each image alone once, then error outcomes."""
        try:
            scheduler = self._scheduler(plan)
        except ValueError as exc:  # UnknownSampler from build_scheduler, bad options
            kind = "unknown_sampler" if isinstance(exc, UnknownSampler) else "bad_sampler"
            return [
                RegenOutcome(r.key, None, f"request {r.key!r}: {exc}", kind, self._used(r, plan))
                for r in chunk
            ]
        sched_used = {
            "scheduler": type(scheduler).__name__,
            "scheduler_options": dict(plan.options),
        }
        try:
            images, seconds = self._call(plan, scheduler, chunk)
        except Exception as exc:
            self._free_memory()
            return [self._alone(plan, r, exc, sched_used) for r in chunk]
        share = seconds / len(chunk)
        return [
            RegenOutcome(
                r.key,
                image,
                None,
                None,
                self._used(r, plan, batch_size=len(chunk), **sched_used),
                share,
            )
            for r, image in zip(chunk, images, strict=True)
        ]

    def _alone(
        self, plan: _Plan, req: RegenRequest, first: BaseException, sched_used: dict[str, Any]
    ) -> RegenOutcome:
        """Retry one image by itself after its chunk failed; an error outcome if it fails too."""
        try:
            images, seconds = self._call(plan, self._scheduler(plan), [req])
        except Exception as exc:
            self._free_memory()
            oom = _is_oom(exc)
            hint = (
                "fix: lower max_batch or the image size, or free GPU memory"
                if oom
                else "see the worker log for the traceback"
            )
            message = (
                f"request {req.key!r}: generation failed ({type(exc).__name__}: "
                f"{first_line(exc)}), also alone after the batch failed "
                f"({type(first).__name__}); {hint}"
            )
            kind = "out_of_memory" if oom else "generation_failed"
            used = self._used(req, plan, batch_size=1, retried_alone=True, **sched_used)
            return RegenOutcome(req.key, None, message, kind, used)
        used = self._used(req, plan, batch_size=1, retried_alone=True, **sched_used)
        return RegenOutcome(req.key, images[0], None, None, used, seconds)

    def _call(
        self, plan: _Plan, scheduler: Any, chunk: list[RegenRequest]
    ) -> tuple[list[Image.Image], float]:
        """Run the pipeline once for ``chunk``: (PIL images in order, wall time in s)."""
        import torch

        pipe = self.loaded.pipe
        pipe.scheduler = scheduler
        generators = [torch.Generator(device="cpu").manual_seed(r.seed) for r in chunk]
        negative = [r.negative_prompt or "" for r in chunk] if plan.has_negative else None
        started = time.perf_counter()
        latents = self._latents(plan, generators)
        with torch.inference_mode():
            out = pipe(
                latents=latents,
                prompt=[r.prompt for r in chunk],
                negative_prompt=negative,
                num_inference_steps=plan.steps,
                guidance_scale=plan.cfg_scale,
                width=plan.width,
                height=plan.height,
                generator=generators,
                num_images_per_prompt=1,
                output_type="pil",
            )
        if self.loaded.device.startswith("cuda"):
            torch.cuda.synchronize()
        images = list(out.images)
        if len(images) != len(chunk):
            raise RuntimeError(f"the pipeline returned {len(images)} images for {len(chunk)}")
        return images, time.perf_counter() - started

    def _latents(self, plan: _Plan, generators: list[Any]) -> Any:
        """Initial noise drawn in fp32 on the CPU, one image per generator, then cast and moved.

        Exactly what diffusers' ``randn_tensor`` draws for an fp32 pipeline (same shapes,
        same order), but always in fp32: a CPU draw made directly in fp16 need not give
        the same numbers in every torch version, and the noise must not depend on the
        precision. None (the pipeline draws) for pipelines without a UNet (packed latents).
        """
        import torch

        unet = getattr(self.loaded.pipe, "unet", None)
        if unet is None:
            return None
        factor = self.loaded.vae_scale_factor
        shape = (1, int(unet.config.in_channels), plan.height // factor, plan.width // factor)
        noise = [torch.randn(shape, generator=g, dtype=torch.float32) for g in generators]
        dtype = torch.float16 if self.loaded.precision == "fp16" else torch.float32
        return torch.cat(noise).to(device=self.loaded.device, dtype=dtype)

    def _free_memory(self) -> None:
        if self.loaded.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
