"""Decode checked JPEGs on the GPU with nvJPEG (``torchvision.io.decode_jpeg``), in batches.

``diffwatch.scoring.images.load.load_image(keep_jpeg=True)`` does every check on the CPU and
leaves plain JPEGs encoded (``EncodedJpeg``); this module decodes them where the scorers run,
applies the EXIF orientation there, and hands back ``LoadedImage``s whose ``rgb`` is an H×W×3
uint8 tensor on that device. A file nvJPEG refuses is decoded on the CPU instead
(``decode_bytes``), which keeps its pixels or says exactly why it is broken.

nvJPEG's pixels are not bit-identical with libjpeg-turbo's (its IDCT and chroma
upsampling differ slightly); see docs/scoring.md for the measured difference in scores.
On ``device='cpu'`` torchvision decodes with libjpeg-turbo, which is how CI covers this path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from diffwatch.scoring.images.load import decode_bytes
from diffwatch.scoring.images.result import EncodedJpeg, ImageFailure, LoadedImage

if TYPE_CHECKING:
    import torch


def orient(hwc: torch.Tensor, orientation: int) -> torch.Tensor:
    """An H×W×C tensor turned the way viewers show EXIF ``orientation`` (1-8).

    The same pixels as Pillow's ``ImageOps.exif_transpose``; 1 and unknown values leave
    the image as it is.
    """
    import torch

    if orientation == 2:  # mirrored
        return hwc.flip(1)
    if orientation == 3:  # upside down
        return hwc.flip(0).flip(1)
    if orientation == 4:  # mirrored upside down
        return hwc.flip(0)
    if orientation == 5:  # Pillow's TRANSPOSE
        return hwc.transpose(0, 1)
    if orientation == 6:  # Pillow's ROTATE_270: 90° clockwise
        return torch.rot90(hwc, -1, (0, 1))
    if orientation == 7:  # Pillow's TRANSVERSE
        return torch.rot90(hwc.transpose(0, 1), 2, (0, 1))
    if orientation == 8:  # Pillow's ROTATE_90: 90° anticlockwise
        return torch.rot90(hwc, 1, (0, 1))
    return hwc


def decode_jpegs(
    items: Sequence[EncodedJpeg], device: str, *, max_pixels: int, max_side: int
) -> list[LoadedImage | ImageFailure]:
    """Decode ``items`` on ``device`` in one batched call; results in the same order.

    ``max_pixels``/``max_side`` only matter for files that fall back to the CPU decoder.
    """
    if not items:
        return []
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    datas = [torch.frombuffer(bytearray(e.data), dtype=torch.uint8) for e in items]
    decoded: list[torch.Tensor | None]
    try:
        decoded = list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:  # one bad file fails the whole batched call: go one by one
        decoded = [_decode_one(d, device) for d in datas]
    out: list[LoadedImage | ImageFailure] = []
    for item, chw in zip(items, decoded, strict=True):
        if chw is None or tuple(chw.shape) != (3, item.height, item.width):
            out.append(
                decode_bytes(
                    item.uri, item.data, item.attempts, max_pixels=max_pixels, max_side=max_side
                )
            )
            continue
        hwc = orient(chw.permute(1, 2, 0), item.orientation)
        notes = (
            (f"rotated per EXIF orientation {item.orientation}",)
            if item.orientation in range(2, 9)
            else ()
        )
        out.append(
            LoadedImage(
                uri=item.uri,
                rgb=hwc,
                width=int(hwc.shape[1]),
                height=int(hwc.shape[0]),
                format="JPEG",
                notes=notes,
                bytes_read=item.bytes_read,
                attempts=item.attempts,
            )
        )
    return out


def _decode_one(data: torch.Tensor, device: str) -> torch.Tensor | None:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return None
