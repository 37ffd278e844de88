"""Batched CLIP image preprocessing with torch ops, matching open_clip's PIL transform.

open_clip's inference transform resizes a PIL image (bicubic or bilinear, antialiased),
center-crops (or pads), scales to [0, 1] and normalises. Here the same steps run on
stacked uint8 tensors on the model's device, one resize per group of same-sized
images. PIL resizes in two passes (width, then height) and rounds to uint8 after
each; doing the same keeps the output within one uint8 step of open_clip's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

    ImageInput = np.ndarray | Image.Image
else:
    ImageInput = Any

ResizeMode = Literal["shortest", "longest", "squash"]
Interpolation = Literal["bicubic", "bilinear"]


@dataclass(frozen=True)
class PreprocessSpec:
    """A model's inference preprocessing: size (height, width) in px; mean and std on [0, 1]."""

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Interpolation = "bicubic"
    resize_mode: ResizeMode = "shortest"
    fill_color: int = 0

    @classmethod
    def from_open_clip(cls, cfg: Mapping[str, Any]) -> PreprocessSpec:
        """Build from open_clip's preprocess cfg dict (``open_clip.get_model_preprocess_cfg``)."""
        size = cfg["size"]
        hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        mean, std = cfg["mean"], cfg["std"]
        mean = (mean,) * 3 if isinstance(mean, float | int) else tuple(mean)
        std = (std,) * 3 if isinstance(std, float | int) else tuple(std)
        # open_clip maps 'random' (a training option) to bicubic at inference.
        interpolation = "bilinear" if cfg.get("interpolation") == "bilinear" else "bicubic"
        resize_mode = cfg.get("resize_mode") or "shortest"
        if resize_mode not in ("shortest", "longest", "squash"):
            raise ValueError(f"open_clip preprocess cfg: unknown resize_mode {resize_mode!r}")
        return cls(
            size=hw,
            mean=tuple(float(m) for m in mean),  # type: ignore[arg-type]
            std=tuple(float(s) for s in std),  # type: ignore[arg-type]
            interpolation=interpolation,
            resize_mode=resize_mode,
            fill_color=int(cfg.get("fill_color", 0) or 0),
        )


def _is_tensor(image: object) -> bool:
    """A torch tensor, without importing torch for numpy inputs."""
    return type(image).__module__.startswith("torch") and hasattr(image, "device")


def as_rgb_array(image: ImageInput, index: int) -> np.ndarray | torch.Tensor:
    """One input image as HxWx3 uint8 RGB pixels: a contiguous numpy array, or the torch
    tensor it already is (nvJPEG's output on the GPU). PIL images are converted to RGB."""
    if _is_tensor(image):
        import torch

        ok = image.dtype == torch.uint8 and image.ndim == 3 and image.shape[2] == 3
        if not ok:
            raise ValueError(
                f"image {index}: expected an HxWx3 uint8 RGB tensor, got shape "
                f"{tuple(image.shape)} dtype {image.dtype}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image {index}: empty image of shape {tuple(image.shape)}")
        return image
    if not isinstance(image, np.ndarray):
        from PIL import Image

        if isinstance(image, Image.Image):
            image = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        else:
            raise TypeError(
                f"image {index}: expected an HxWx3 uint8 RGB numpy array, a torch tensor or a "
                f"PIL image, got {type(image).__name__}"
            )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image {index}: expected an HxWx3 uint8 RGB array, got shape {image.shape} "
            f"dtype {image.dtype}; fix: pass PIL images, or convert with "
            "np.asarray(pil_image.convert('RGB'))"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image {index}: empty image of shape {image.shape}")
    return np.ascontiguousarray(image)


def resized_size(height: int, width: int, spec: PreprocessSpec) -> tuple[int, int]:
    """Size (height, width) in pixels that open_clip's resize step gives an image."""
    target_h, target_w = spec.size
    if spec.resize_mode == "squash":
        return target_h, target_w
    if spec.resize_mode == "shortest" and target_h == target_w:
        # torchvision Resize(int): shortest edge to size, the other truncated.
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(target_h * long / short)
        return (new_long, target_h) if width <= height else (target_h, new_long)
    # open_clip's ResizeKeepRatio (timm's): longest=1 for 'longest', 0 for 'shortest'.
    ratio_h, ratio_w = height / target_h, width / target_w
    ratio = max(ratio_h, ratio_w) if spec.resize_mode == "longest" else min(ratio_h, ratio_w)
    return round(height / ratio), round(width / ratio)


def _upload(arrays: list[np.ndarray | torch.Tensor], device: str) -> torch.Tensor:
    """Same-shaped HxWx3 uint8 images as one (B, H, W, 3) uint8 tensor on ``device``.

    For CUDA each array goes up on its own through pinned memory and is stacked on the
    GPU: stacking 64 1024 px images on the host took longer than the whole GPU step.
    Tensors already on ``device`` (nvJPEG's output) are stacked where they are.
    """
    import torch

    cuda = torch.device(device).type == "cuda"
    if not cuda and all(isinstance(a, np.ndarray) for a in arrays):
        return torch.from_numpy(np.stack(arrays))  # type: ignore[arg-type]
    return torch.stack(
        [
            a.to(device)
            if not isinstance(a, np.ndarray)
            else torch.from_numpy(a).pin_memory().to(device, non_blocking=True)
            if cuda
            else torch.from_numpy(a)
            for a in arrays
        ]
    )


def _resize_like_pil(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize a float (B, 3, H, W) batch of 0..255 values, rounding like PIL's uint8 passes."""
    import torch.nn.functional as F

    _, _, h, w = x.shape
    new_h, new_w = size
    if new_w != w:
        x = F.interpolate(x, size=(h, new_w), mode=mode, antialias=True, align_corners=False)
        x = x.clamp_(0, 255).round_()
    if new_h != h:
        x = F.interpolate(x, size=(new_h, new_w), mode=mode, antialias=True, align_corners=False)
        x = x.clamp_(0, 255).round_()
    return x


def _resize_mode(spec: PreprocessSpec) -> str:
    """The interpolation open_clip really uses: its non-square 'shortest' path is always bicubic."""
    if spec.resize_mode == "shortest" and spec.size[0] != spec.size[1]:
        return "bicubic"
    return spec.interpolation


def _crop_or_pad(x: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """Center crop (padding with ``fill_color`` where smaller) to ``spec.size``, like open_clip."""
    from open_clip.transform import center_crop_or_pad

    if spec.resize_mode == "squash":
        return x
    fill = spec.fill_color if spec.resize_mode == "longest" else 0
    return center_crop_or_pad(x, list(spec.size), fill=fill)


def preprocess_batch(
    images: Sequence[ImageInput],
    spec: PreprocessSpec,
    device: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Preprocess images into one (N, 3, H, W) model input tensor on ``device`` in ``dtype``.

    Images of the same size are resized together; the output keeps the input order.
    """
    import torch

    arrays = [as_rgb_array(img, i) for i, img in enumerate(images)]
    out = torch.empty((len(arrays), 3, *spec.size), dtype=torch.float32, device=device)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, arr in enumerate(arrays):
        groups[(arr.shape[0], arr.shape[1])].append(i)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    for (h, w), idx in groups.items():
        batch = _upload([arrays[i] for i in idx], device)
        x = batch.permute(0, 3, 1, 2).contiguous().float()
        x = _resize_like_pil(x, resized_size(h, w, spec), _resize_mode(spec))
        x = _crop_or_pad(x, spec)
        out[torch.tensor(idx, device=device)] = (x / 255.0 - mean) / std
    return out.to(dtype)
