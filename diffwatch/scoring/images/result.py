"""What loading one image gives: a decoded RGB image or a failure that says why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from diffwatch.scoring.images.sniff import looks_truncated

_EXIF_ORIENTATION = 0x0112

DEVICE_DECODE_MIN_SIDE = 320
"""Shorter JPEGs are decoded on the CPU. NudeNet upscales anything under its 320 px input,
which magnifies nvJPEG's small differences from libjpeg-turbo: on an H200 a 100x80 drawing
lost a 0.60 detection. At 320 px and over the scores moved by at most a few hundredths."""

FailureKind = Literal[
    "bad_uri",  # no URI, a chained URL (::), or its fsspec backend is not installed
    "outside_roots",  # not under DIFFWATCH_IMAGE_ROOTS (path, symlink target or protocol)
    "not_a_file",  # a FIFO, device, directory, socket or /proc file: refused unread
    "missing",  # the file does not exist
    "io_error",  # could not be read (permission, network, ...); see ``transient``
    "empty",  # zero bytes
    "not_an_image",  # text, archive or unknown bytes
    "unsupported_format",  # a real image, but not PNG, JPEG or WEBP
    "truncated",  # a PNG/JPEG/WEBP that ends early
    "corrupt",  # a PNG/JPEG/WEBP that the decoder rejects for another reason
    "decompression_bomb",  # over Pillow's decompression-bomb limit
    "unsupported_mode",  # CMYK, palette or alpha (refused unless modes are converted)
    "animated",  # more than one frame (refused unless modes are converted)
    "too_large",  # over max_side, max_pixels or max_bytes
    "out_of_memory",  # decoding ran out of memory (transient: memory may free up)
    "internal_error",  # a bug in this loader; the reason says so
]


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded image: ``rgb`` holds uint8 pixels, height × width × 3, in RGB order.

    ``rgb`` is a read-only numpy array, or, for a JPEG decoded on the GPU with nvJPEG
    (``diffwatch.scoring.images.device_decode``), a torch tensor on that device, of the same shape.

    ``width``/``height`` are in pixels, after any EXIF rotation. ``format`` is what the content
    is ("PNG", "JPEG" or "WEBP"). ``notes`` says what was changed to reach RGB. ``bytes_read``
    is the file size, bytes. ``attempts`` counts reads (above 1 after a transient error).
    """

    uri: str
    rgb: np.ndarray | Any = field(repr=False)  # Any: a torch.Tensor (torch loads lazily)
    width: int
    height: int
    format: str
    notes: tuple[str, ...]
    bytes_read: int
    attempts: int = 1

    def to_pil(self) -> Image.Image:
        """A new Pillow RGB image with the same pixels (a copy)."""
        rgb = self.rgb if isinstance(self.rgb, np.ndarray) else self.rgb.cpu().numpy()
        return Image.fromarray(rgb)


@dataclass(frozen=True, eq=False)
class EncodedJpeg:
    """A JPEG that passed every check but decoding, left encoded for the GPU's nvJPEG.

    ``width``/``height`` are as stored, in pixels (before ``orientation``, the EXIF
    orientation 1-8 to apply after decoding). ``data`` is the whole file.
    """

    uri: str
    data: bytes = field(repr=False)
    width: int
    height: int
    orientation: int
    bytes_read: int
    attempts: int = 1


@dataclass(frozen=True)
class ImageFailure:
    """Why an image could not be loaded: ``reason`` names the URI, the problem and the fix.

    ``transient`` is True when the same URI may load later (network, memory); ``attempts``
    counts the reads made (``retries + 1`` after exhausting retries on a transient error).
    """

    uri: str
    reason: str
    kind: FailureKind
    transient: bool = False
    attempts: int = 1

    def __str__(self) -> str:
        return self.reason


class ReadFailed(Exception):
    """A read that failed for good (after retries, when transient)."""

    def __init__(self, failure: ImageFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def device_decodable(
    uri: str, im: Image.Image, data: bytes, attempts: int, frames: int
) -> EncodedJpeg | None:
    """``im`` (opened, not decoded) as an ``EncodedJpeg`` if nvJPEG can decode it exactly.

    Only the plain case goes to the GPU: one frame, YCbCr or RGB colour (Pillow mode RGB),
    baseline (not progressive), an end-of-image marker present, a readable EXIF block, and
    both sides at least ``DEVICE_DECODE_MIN_SIDE`` pixels.
    Everything else (CMYK, grayscale, progressive, multi-picture, truncated-looking files)
    stays on the CPU path, which converts it or explains why it cannot.
    """
    if im.format != "JPEG" or frames != 1 or im.mode != "RGB":
        return None
    if min(im.size) < DEVICE_DECODE_MIN_SIDE:
        return None
    if im.info.get("progressive") or im.info.get("progression"):
        return None
    if looks_truncated("JPEG", data):
        return None
    try:
        orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # the CPU path notes the unreadable block and keeps the image
        return None
    if orientation not in range(1, 9):
        orientation = 1
    width, height = im.size
    return EncodedJpeg(uri, data, width, height, orientation, len(data), attempts)
