"""Settings of the diffusers pipeline used for re-generation, and its load error (no torch here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp32", "fp16", "auto"]

_DEVICE_RE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")
MAX_BATCH_LIMIT = 256  # images per pipeline call; more is surely a typo


@dataclass(frozen=True)
class DiffusionConfig:
    """Which diffusers text-to-image pipeline to load, from where, on which device and precision.

    ``source`` is a local directory written by ``pipeline.save_pretrained`` or a hub id
    (``org/name``) already in the local Hugging Face cache; nothing is downloaded when
    ``HF_HUB_OFFLINE`` is set. ``device`` is ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda
    when available). ``precision`` ``auto`` is fp16 on cuda and fp32 on cpu. ``compile``
    wraps the UNet in ``torch.compile`` (minutes of warm-up, then faster; each new image
    size or batch size compiles again). ``channels_last`` puts the UNet and VAE in the
    NHWC memory format, which cuDNN's fp16 convolutions prefer. ``max_batch`` is the most
    images per pipeline call. ``variant`` picks weight files such as ``fp16``
    (``diffusion_pytorch_model.fp16.safetensors``). ``cache_dir`` is the Hugging Face hub
    cache to look hub ids up in (None: the library's default, ``$HF_HUB_CACHE``).
    """

    source: str
    device: str = "auto"
    precision: Precision = "auto"
    compile: bool = False
    channels_last: bool = True
    max_batch: int = 8
    variant: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError(
                f"DiffusionConfig.source: must be a local pipeline directory or a hub id, got "
                f"{self.source!r}; fix: pass e.g. '/models/sd15' (saved with save_pretrained) "
                "or 'stable-diffusion-v1-5/stable-diffusion-v1-5' (in the HF cache)"
            )
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise ValueError(
                "DiffusionConfig.device: must be 'cpu', 'cuda', 'cuda:N' or 'auto', got "
                f"{self.device!r}"
            )
        if self.precision not in ("fp32", "fp16", "auto"):
            raise ValueError(
                "DiffusionConfig.precision: must be 'fp32', 'fp16' or 'auto', got "
                f"{self.precision!r}"
            )
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError(
                "DiffusionConfig: precision 'fp16' on device 'cpu' is not supported (many "
                "CPU kernels lack fp16, and it is not the production setting); fix: "
                "precision='fp32' or 'auto', or device='cuda'"
            )
        bad_batch = isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int)
        if bad_batch or not 1 <= self.max_batch <= MAX_BATCH_LIMIT:
            raise ValueError(
                f"DiffusionConfig.max_batch: must be an integer from 1 to {MAX_BATCH_LIMIT} "
                f"(images per pipeline call), got {self.max_batch!r}"
            )
        if self.variant is not None and (not isinstance(self.variant, str) or not self.variant):
            raise ValueError(
                f"DiffusionConfig.variant: must be None or a weights variant such as 'fp16', "
                f"got {self.variant!r}"
            )
        for name in ("compile", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"DiffusionConfig.{name}: must be True or False, got {getattr(self, name)!r}"
                )


class DiffusionWeightsError(RuntimeError):
    """A diffusers pipeline could not be loaded from ``source``; nothing falls back to random.

    ``source`` is what was asked for, ``reason`` the problem and ``fix`` how to provide
    the pipeline (by default: how to save one locally, or how to fill the HF cache offline
    when ``source`` is a hub id).
    """

    def __init__(self, source: str, reason: str, fix: str | None = None) -> None:
        self.source = source
        self.reason = reason
        self.fix = fix or (hub_fix(source) if is_hub_id(source) else LOCAL_FIX)
        super().__init__(f"diffusers pipeline {source!r} could not be loaded: {reason}. {self.fix}")


LOCAL_FIX = (
    "Fix: pass a directory written by pipeline.save_pretrained(DIR): it holds "
    "model_index.json and one folder per component (unet, vae, text_encoder, ...)"
)
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def is_hub_id(source: str) -> bool:
    """True when ``source`` reads as a hub id ('name' or 'org/name'), not as a path."""
    return bool(_HUB_ID_RE.match(source)) and not source.endswith((".safetensors", ".ckpt"))


def hub_fix(source: str) -> str:
    """How to provide a hub pipeline on a machine with no hub access."""
    return (
        f"Fix: on a machine with internet run `hf download {source}` (or "
        f"DiffusionPipeline.download({source!r})), copy its Hugging Face hub cache "
        "(~/.cache/huggingface/hub or $HF_HUB_CACHE) here and set HF_HUB_OFFLINE=1; or "
        "there save it with pipeline.save_pretrained(DIR), copy DIR here and pass DIR"
    )
