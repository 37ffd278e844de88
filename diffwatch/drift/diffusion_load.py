"""The one diffusers loader: AutoPipelineForText2Image, explicit device and precision, offline."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from diffwatch.drift.diffusion_config import DiffusionConfig, DiffusionWeightsError, is_hub_id
from diffwatch.errors import first_line
from diffwatch.scoring import devices

if TYPE_CHECKING:
    import torch

# torch.compile mode for the UNet. "max-autotune-no-cudagraphs" tunes kernels without CUDA
# graphs: graphs (the "reduce-overhead" modes) are recorded per batch size and image size,
# hold their own memory pool each, and re-generation batches vary in both.
# Measured on an H200 (SD 1.5 UNet + VAE decoder, batch 16): "default" 208 image-steps/s,
# "reduce-overhead" 206; "max-autotune-no-cudagraphs" did not finish compiling in 9 min.
COMPILE_MODE = "default"
_TRUTHY = {"1", "on", "yes", "true"}  # huggingface_hub's reading of HF_HUB_OFFLINE


@dataclass(frozen=True)
class LoadedPipeline:
    """A diffusers text-to-image pipeline ready to run, and how it was loaded.

    ``base_scheduler_config`` is the pipeline's own scheduler config as loaded (read-only):
    every batch builds its scheduler from it, so sampler changes never compound.
    ``base_scheduler_class`` is that scheduler's class name (used when no sampler is logged).
    ``attention`` names the UNet's attention processor, ``compiled`` whether the UNet is
    wrapped in torch.compile. ``max_batch`` is the most images per pipeline call.
    """

    pipe: Any
    source: str
    device: str
    precision: Literal["fp32", "fp16"]
    pipeline_class: str
    base_scheduler_config: Mapping[str, Any]
    base_scheduler_class: str
    attention: str = "default"
    compiled: bool = False
    channels_last: bool = False
    max_batch: int = 8

    def describe(self) -> str:
        """One line for logs and reports: class, source, device and precision."""
        extras = [self.attention] + (["channels_last"] if self.channels_last else [])
        extras += ["compiled"] if self.compiled else []
        return (
            f"{self.pipeline_class} from {self.source}, {self.device} {self.precision} "
            f"({', '.join(extras)})"
        )

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along each side (8 for SD 1.5 and SDXL)."""
        return int(getattr(self.pipe, "vae_scale_factor", 8))

    def default_size(self) -> tuple[int, int]:
        """The pipeline's own (width, height) in px when none is given."""
        denoiser = denoiser_of(self.pipe)
        side = getattr(self.pipe, "default_sample_size", None)
        if side is None and denoiser is not None:
            side = denoiser.config.get("sample_size")
        if isinstance(side, list | tuple):  # some UNets store (height, width)
            return int(side[1]) * self.vae_scale_factor, int(side[0]) * self.vae_scale_factor
        side = int(side or 64) * self.vae_scale_factor
        return side, side


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set to a true value now (read at call time, not import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def resolve_device(device: str) -> str:
    """'auto' → 'cuda' when available, else 'cpu'; a cuda device with no GPU is an error."""
    return devices.resolve_device(device, "DiffusionConfig")


def resolve_precision(precision: str, device: str) -> Literal["fp32", "fp16"]:
    """'auto' → fp16 on cuda, fp32 on cpu; fp16 on cpu is an error."""
    return devices.resolve_precision(precision, device, "DiffusionConfig")


def _check_local(source: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, is it local); raise for paths that cannot work."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise DiffusionWeightsError(
                str(path),
                "the directory has no model_index.json, so it is not a diffusers pipeline "
                "saved with save_pretrained (a single .safetensors/.ckpt checkpoint must be "
                "converted first: StableDiffusionPipeline.from_single_file(FILE)."
                "save_pretrained(DIR))",
            )
        return str(path.resolve()), True
    if path.exists():
        raise DiffusionWeightsError(
            str(path), "it is a file, not a pipeline directory (one holding model_index.json)"
        )
    if not is_hub_id(source):
        raise DiffusionWeightsError(str(path), "no such directory")
    return source, False


def _read_index(
    source: str, local_files_only: bool, cache_dir: str | None = None
) -> dict[str, Any]:
    """The pipeline's model_index.json (its class and components), or DiffusionWeightsError."""
    import warnings

    from diffusers import DiffusionPipeline

    try:
        with warnings.catch_warnings():
            # diffusers still passes huggingface_hub's deprecated local_dir_use_symlinks.
            warnings.filterwarnings(
                "ignore", message=".*local_dir_use_symlinks", category=UserWarning
            )
            return dict(
                DiffusionPipeline.load_config(
                    source, local_files_only=local_files_only, cache_dir=cache_dir
                )
            )
    except Exception as exc:
        if local_files_only and not Path(source).is_dir():
            why = "HF_HUB_OFFLINE is set" if hub_offline() else "local files only"
            reason = (
                "no such local directory, and as a hub id it is not in the local Hugging "
                f"Face cache ({why}, so nothing is downloaded)"
            )
        else:
            reason = f"its model_index.json could not be read ({first_line(exc)})"
        raise DiffusionWeightsError(source, reason) from exc


def _set_sdpa(module: Any) -> str:
    """Put PyTorch SDPA (AttnProcessor2_0) on a model whose processors are the plain ones."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    processors = getattr(module, "attn_processors", None)
    if not processors:
        return "no attention"
    kinds = {type(p) for p in processors.values()}
    # Leave specialised processors (IP-Adapter, custom, fused) alone: they are the model's.
    if kinds <= {AttnProcessor, AttnProcessor2_0}:
        module.set_attn_processor(AttnProcessor2_0())
        return "sdpa"
    return "+".join(sorted(k.__name__ for k in kinds))


def _dtype(precision: str) -> torch.dtype:
    import torch

    return torch.float16 if precision == "fp16" else torch.float32


def load_pipeline(cfg: DiffusionConfig) -> LoadedPipeline:
    """Load a text-to-image pipeline with real weights, or raise DiffusionWeightsError."""
    import torch
    from diffusers import AutoPipelineForText2Image

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    source, local = _check_local(cfg.source)
    local_files_only = local or hub_offline()
    index = _read_index(source, local_files_only, cfg.cache_dir)
    kwargs: dict[str, Any] = {
        "dtype": _dtype(precision),  # diffusers 0.42 deprecates torch_dtype
        "local_files_only": local_files_only,
        "variant": cfg.variant,
        "cache_dir": cfg.cache_dir,
    }
    if "safety_checker" in index:
        # We score NSFW ourselves; not loading it saves ~1.2 GB, and requires_safety_checker
        # False keeps diffusers from warning about the missing checker.
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        with quiet_loading():
            pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        text = "; ".join(lines[:2]) if lines else type(exc).__name__
        name = index.get("_class_name", "?")
        fix = None
        if cfg.variant and "variant" in text:
            fix = f"Fix: drop variant={cfg.variant!r}, or pass a source saved with that variant"
        elif "AutoPipeline can't find" in text:
            fix = "Fix: pass a text-to-image pipeline (StableDiffusion, SDXL, SD3, Flux, ...)"
        raise DiffusionWeightsError(
            source, f"{name} could not be loaded as a text-to-image pipeline ({text[:500]})", fix
        ) from exc
    return prepare_pipeline(pipe, cfg, source=source, device=device, precision=precision)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No diffusers/transformers loading or saving bars: our commands draw their own
    progress, and ``--json`` runs stay quiet on stderr too."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    was = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # diffusers still passes huggingface_hub's deprecated local_dir_use_symlinks.
            warnings.filterwarnings(
                "ignore", message=".*local_dir_use_symlinks", category=UserWarning
            )
            yield
    finally:
        if was[0]:
            dlog.enable_progress_bar()
        if was[1]:
            tlog.enable_progress_bar()


def denoiser_of(pipe: Any) -> Any:
    """The pipeline's UNet or transformer, or None (``is None``: a compiled module has no
    truth value)."""
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else getattr(pipe, "transformer", None)


def _compile_settings() -> None:
    """Compiler settings for UNets (process-wide): 1×1 convolutions as matmuls (diffusers'
    "accelerate inference" guide; its coordinate-descent tuning is left off: on an H200 it
    kept the first compile of the SD 1.5 UNet busy for over 5 minutes), one graph a shape."""
    import torch._dynamo.config as dynamo
    import torch._inductor.config as inductor

    inductor.conv_1x1_as_mm = True
    # Specialise each (batch, size) shape instead of falling back to one dynamic-shape graph
    # after the second shape: measured on an H200 at batch 16, the dynamic graph ran at 196
    # image-steps/s against 208 for the static one. A re-generation run sees few shapes
    # (its chunks are max_batch images but for a group's last one), each compiled once.
    dynamo.automatic_dynamic_shapes = False
    dynamo.cache_size_limit = max(dynamo.cache_size_limit, 64)


def prepare_pipeline(
    pipe: Any,
    cfg: DiffusionConfig,
    *,
    source: str,
    device: str,
    precision: Literal["fp32", "fp16"],
    compile_mode: str = COMPILE_MODE,
) -> LoadedPipeline:
    """Ready a pipeline object to run as ``cfg`` says (device, dtype, SDPA, channels_last,
    compile); ``load_pipeline`` uses it, and bench/regenerate.py on an in-memory pipeline."""
    import torch

    pipe.set_progress_bar_config(disable=True)
    if pipe.dtype != _dtype(precision):  # from_pretrained already loaded it in this dtype
        pipe.to(dtype=_dtype(precision))
    pipe.to(device)
    denoiser = denoiser_of(pipe)
    attention = _set_sdpa(denoiser) if denoiser is not None else "no denoiser"
    if getattr(pipe, "vae", None) is not None:
        _set_sdpa(pipe.vae)
    if cfg.channels_last:
        for name in ("unet", "vae"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.to(memory_format=torch.channels_last)
    compiled = False
    if cfg.compile and denoiser is not None:
        _compile_settings()
        if device.startswith("cuda"):
            # A re-generation process runs few shapes many times: let cuDNN pick per shape.
            torch.backends.cudnn.benchmark = True
            if hasattr(pipe, "fuse_qkv_projections"):
                pipe.fuse_qkv_projections()  # one q/k/v matmul a block instead of three
        name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
        setattr(pipe, name, torch.compile(denoiser, mode=compile_mode))
        vae = getattr(pipe, "vae", None)
        if vae is not None and os.environ.get("DIFFWATCH_COMPILE_VAE", "1") != "0":
            # Decoding 16 images at 512 px is a large share of a 25-step batch.
            vae.decoder = torch.compile(vae.decoder, mode=compile_mode)
        compiled = True
    return LoadedPipeline(
        pipe=pipe,
        source=source,
        device=device,
        precision=precision,
        pipeline_class=type(pipe).__name__,
        base_scheduler_config=MappingProxyType(dict(pipe.scheduler.config)),
        base_scheduler_class=type(pipe.scheduler).__name__,
        attention=attention,
        compiled=compiled,
        channels_last=cfg.channels_last,
        max_batch=cfg.max_batch,
    )
