"""CLIP scoring settings and the one error for weights that cannot be loaded (no torch here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp32", "fp16", "auto"]

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
CHECKPOINT_FLAG = "--clip-checkpoint"

_DEVICE_RE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ClipOptions:
    """Which CLIP a command loads, as its ``--clip-*`` options give it: an open_clip
    architecture, a pretrained tag or a local weights file (which wins), and a model
    config JSON for a custom architecture (its file name, without .json, is ``model``)."""

    model: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED
    checkpoint: str | None = None
    model_config: str | None = None


@dataclass(frozen=True)
class ClipConfig:
    """Which open_clip model to load, from where, and on which device and precision.

    ``checkpoint`` (a local file: an open_clip state dict, ``.bin``/``.pt`` or
    ``.safetensors``) wins over ``pretrained`` for the weights. ``pretrained`` is an
    open_clip tag (``open_clip.list_pretrained_tags_by_model(model_name)``); when a
    checkpoint is given and ``pretrained`` is a known tag of the model, the tag still
    names the preprocessing (mean, std, resize) and QuickGELU. ``device`` is ``cpu``,
    ``cuda``, ``cuda:N`` or ``auto`` (cuda when available). ``precision`` ``auto`` is
    fp16 on cuda and fp32 on cpu. ``cache_dir`` is where open_clip looks for (and,
    when online, downloads) tagged weights; None means the Hugging Face default cache.
    """

    model_name: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED
    checkpoint: str | None = None
    device: str = "auto"
    precision: Precision = "auto"
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.model_name or not isinstance(self.model_name, str):
            raise ValueError(
                f"ClipConfig.model_name: must be an open_clip architecture name, got "
                f"{self.model_name!r}; fix: use e.g. {DEFAULT_MODEL!r} "
                "(open_clip.list_models() lists them)"
            )
        if ":" in self.model_name:
            raise ValueError(
                f"ClipConfig.model_name: {self.model_name!r} has a schema prefix "
                "(hf-hub:/local-dir:), which diffwatch does not load; fix: give the "
                "architecture name (e.g. 'ViT-B-32') and the weights file as checkpoint"
            )
        if not _DEVICE_RE.match(self.device):
            raise ValueError(
                f"ClipConfig.device: must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}"
            )
        if self.precision not in ("fp32", "fp16", "auto"):
            raise ValueError(
                f"ClipConfig.precision: must be 'fp32', 'fp16' or 'auto', got {self.precision!r}"
            )
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError(
                "ClipConfig: precision 'fp16' on device 'cpu' is not supported (slow, and "
                "not what the scores are calibrated on); fix: precision='fp32' or 'auto', "
                "or device='cuda'"
            )


class ClipWeightsError(RuntimeError):
    """CLIP weights could not be loaded; diffwatch never falls back to random weights.

    ``model_name`` is the architecture, ``source`` what was tried (a tag or a file
    path), ``reason`` the problem, and the message ends with how to provide the
    weights offline.
    """

    def __init__(self, model_name: str, source: str, reason: str, fix: str) -> None:
        self.model_name = model_name
        self.source = source
        self.reason = reason
        self.fix = fix
        super().__init__(
            f"CLIP weights for model {model_name!r} could not be loaded from {source}: "
            f"{reason}. diffwatch never scores with random weights. {fix}"
        )
