"""Device and precision resolution shared by the model loaders (CLIP, diffusers)."""

from __future__ import annotations

from typing import Literal


def resolve_device(device: str, owner: str) -> str:
    """'auto' → 'cuda' when available, else 'cpu'; a cuda device with no GPU is an error.

    ``owner`` names the setting in messages, e.g. ``ClipConfig``.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"{owner}.device: {device!r} was asked for but torch sees no CUDA GPU; "
            "fix: device='cpu' or 'auto'"
        )
    return device


def resolve_precision(precision: str, device: str, owner: str) -> Literal["fp32", "fp16"]:
    """'auto' → fp16 on cuda, fp32 on cpu; fp16 on cpu is an error."""
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError(
            f"{owner}.precision: 'fp16' needs a cuda device, got {device!r}; "
            "fix: precision='fp32' or 'auto'"
        )
    return "fp16" if precision == "fp16" else "fp32"
