"""What loading one image gives: a decoded RGB image or a failure that says why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image

FailureKind = Literal[
    "bad_uri",  # no URI, unknown protocol, or its fsspec backend is not installed
    "missing",  # the file does not exist
    "io_error",  # could not be read (permission, network, ...); see ``transient``
    "empty",  # zero bytes
    "not_an_image",  # text, archive or unknown bytes
    "unsupported_format",  # a real image, but not PNG, JPEG or WEBP
    "truncated",  # a PNG/JPEG/WEBP that ends early
    "corrupt",  # a PNG/JPEG/WEBP that the decoder rejects for another reason
    "decompression_bomb",  # over Pillow's decompression-bomb limit
    "too_large",  # over max_side, max_pixels or max_bytes
    "out_of_memory",  # decoding ran out of memory (transient: memory may free up)
    "internal_error",  # a bug in this loader; the reason says so
]


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded image: ``rgb`` is a read-only uint8 array, height × width × 3, in RGB order.

    ``width``/``height`` are in pixels, after any EXIF rotation. ``format`` is what the content
    is ("PNG", "JPEG" or "WEBP"). ``notes`` says what was changed to reach RGB. ``bytes_read``
    is the file size, bytes. ``attempts`` counts reads (above 1 after a transient error).
    """

    uri: str
    rgb: np.ndarray = field(repr=False)
    width: int
    height: int
    format: str
    notes: tuple[str, ...]
    bytes_read: int
    attempts: int = 1

    def to_pil(self) -> Image.Image:
        """A new Pillow RGB image with the same pixels (a copy)."""
        return Image.fromarray(self.rgb)


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
