"""NudeNet's letterbox for images that are already on the GPU (nvJPEG's output).

Same steps as ``nsfw_ops.letterbox_uint8``: zero padding on the bottom and right to a
square, a bilinear resize (no antialiasing, half-pixel centres, like OpenCV's
``INTER_LINEAR``) to 320x320, rounded to uint8. OpenCV's uint8 resize uses 11-bit fixed-point
weights, so a pixel may differ by one level from OpenCV's; host (numpy) images in the same
batch still go through OpenCV, exactly as NudeNet does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from diffwatch.scoring.nsfw.ops import INPUT_SIZE, letterbox_uint8

if TYPE_CHECKING:
    import torch


def letterbox_on_device(
    images: Sequence[np.ndarray | Any], device: Any, size: int = INPUT_SIZE, threads: int = 1
) -> torch.Tensor:
    """Letterbox a batch of HxWx3 uint8 RGB images into a (B, size, size, 3) uint8 tensor
    on ``device``; numpy images with OpenCV on the host, tensors with torch where they are."""
    import torch
    import torch.nn.functional as F

    out = torch.empty((len(images), size, size, 3), dtype=torch.uint8, device=device)
    host = [i for i, im in enumerate(images) if isinstance(im, np.ndarray)]
    if host:
        boxed = torch.from_numpy(letterbox_uint8([images[i] for i in host], size, threads))
        out[torch.as_tensor(host, device=device)] = boxed.to(device)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, im in enumerate(images):
        if not isinstance(im, np.ndarray):
            groups[(int(im.shape[0]), int(im.shape[1]))].append(i)
    for (height, width), idx in groups.items():
        side = max(height, width)
        x = torch.stack([images[i].to(device) for i in idx]).permute(0, 3, 1, 2).float()
        if side != height or side != width:
            x = F.pad(x, (0, side - width, 0, side - height))
        if side != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        boxed = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        out[torch.as_tensor(idx, device=device)] = boxed
    return out
