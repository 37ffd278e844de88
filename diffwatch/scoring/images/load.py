"""Load generation images for scoring: never raise, never hang, never decode a bomb.

``load_image`` reads a URI (local path, file://, s3://, gs://, ...) inside the image roots
(``DIFFWATCH_IMAGE_ROOTS``, ``diffwatch.scoring.images.roots``), regular files only, with a read
timeout and a size cap (``diffwatch.scoring.images.read``), opens it
only as PNG, JPEG or WEBP (sniffed from content, not the extension), refuses over-large
images from their header before decoding, fully decodes inside the guard so a truncated file
is caught, and returns an 8-bit RGB array or an ``ImageFailure`` that says why, whether a
retry could help, and what to do. Transient I/O errors are retried with exponential backoff.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, overload

import numpy as np
from PIL import Image, UnidentifiedImageError

from diffwatch.scoring.images.color import to_rgb, unusual_mode
from diffwatch.scoring.images.read import read_with_retries, safe_text
from diffwatch.scoring.images.result import (
    EncodedJpeg,
    FailureKind,
    ImageFailure,
    LoadedImage,
    ReadFailed,
    device_decodable,
)
from diffwatch.scoring.images.roots import ImageAccess
from diffwatch.scoring.images.sniff import (
    SUPPORTED_FORMATS,
    describe_unknown,
    looks_truncated,
    png_is_complete,
    sniff_format,
)

DEFAULT_MAX_SIDE = 8192
"""Longest accepted side, pixels."""
DEFAULT_MAX_PIXELS = 8192 * 8192
"""Most accepted pixels (width × height): 64 Mpx, 192 MiB as RGB."""
DEFAULT_MAX_BYTES = 256 * 2**20
"""Largest accepted file, bytes (256 MiB)."""

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SIDE",
    "EncodedJpeg",
    "FailureKind",
    "ImageAccess",
    "ImageFailure",
    "ImageResult",
    "LoadedImage",
    "decode_bytes",
    "load_image",
    "load_images",
]

# catch_warnings edits process-wide state; only Image.open can warn, and it only parses the
# header, so opening under one lock keeps our threads from restoring each other's filters.
_OPEN_LOCK = threading.Lock()


ImageResult = LoadedImage | ImageFailure
_Fail = Callable[..., ImageFailure]


@overload
def load_image(
    uri: str | None,
    *,
    max_pixels: int = ...,
    max_side: int = ...,
    max_bytes: int = ...,
    retries: int = ...,
    backoff_s: float = ...,
    storage_options: Mapping[str, Any] | None = ...,
    access: ImageAccess | None = ...,
    cancel: threading.Event | None = ...,
    keep_jpeg: Literal[False] = ...,
    convert_modes: bool = ...,
) -> LoadedImage | ImageFailure: ...
@overload
def load_image(
    uri: str | None,
    *,
    max_pixels: int = ...,
    max_side: int = ...,
    max_bytes: int = ...,
    retries: int = ...,
    backoff_s: float = ...,
    storage_options: Mapping[str, Any] | None = ...,
    access: ImageAccess | None = ...,
    cancel: threading.Event | None = ...,
    keep_jpeg: bool,
    convert_modes: bool = ...,
) -> LoadedImage | EncodedJpeg | ImageFailure: ...
def load_image(
    uri: str | None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retries: int = 2,
    backoff_s: float = 0.2,
    storage_options: Mapping[str, Any] | None = None,
    access: ImageAccess | None = None,
    cancel: threading.Event | None = None,
    keep_jpeg: bool = False,
    convert_modes: bool = False,
) -> LoadedImage | EncodedJpeg | ImageFailure:
    """Read and decode one image to RGB; never raises for bad input (see ``FailureKind``).

    ``max_pixels`` (pixels) and ``max_side`` (pixels) are checked from the header, before
    decoding; Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) applies too.
    ``max_bytes`` caps the read, bytes. Transient I/O errors are retried up to ``retries``
    times, sleeping ``backoff_s`` seconds, then twice that, and so on. ``storage_options``
    go to fsspec (for example credentials for s3://). ``access`` says which roots may be
    read and the read timeout (seconds); None reads ``DIFFWATCH_IMAGE_ROOTS`` and
    ``DIFFWATCH_IMAGE_READ_TIMEOUT_S`` now (callers of many reads pass one built once).
    Setting ``cancel`` makes a read in flight, and any later one, fail at once.

    With ``keep_jpeg``, a plain JPEG comes back still encoded (``EncodedJpeg``), for
    nvJPEG: every check but the decode itself has run on it (read, sniffed, header parsed,
    size checked; a single-frame baseline YCbCr JPEG with its end-of-image marker and a
    readable EXIF orientation). Anything else is decoded here as usual.
    ``diffwatch.scoring.images.device_decode.decode_jpegs`` finishes the job on the GPU.

    CMYK, palette and alpha images and animations are refused (``unsupported_mode``,
    ``animated``): a generation service writes single RGB images, so such a file is set
    aside rather than guessed at. With ``convert_modes`` they are converted to RGB instead
    (alpha composited on white, the first frame of an animation) and the notes say so.
    Grayscale and 16-bit images are always converted.
    """
    _check_limits(max_pixels=max_pixels, max_side=max_side, max_bytes=max_bytes)
    _check_retry(retries=retries, backoff_s=backoff_s)
    if not isinstance(uri, str) or not uri.strip():
        return ImageFailure(
            str(uri),
            f"image_uri {uri!r} is empty: the generation has no image to load; "
            "log an image_uri for it in the generation service",
            "bad_uri",
        )
    try:
        data, attempts = read_with_retries(
            uri,
            max_bytes,
            retries,
            backoff_s,
            dict(storage_options or {}),
            access or ImageAccess.from_settings(),
            cancel,
        )
        return _decode(
            uri,
            data,
            attempts,
            max_pixels=max_pixels,
            max_side=max_side,
            keep_jpeg=keep_jpeg,
            convert_modes=convert_modes,
        )
    except ReadFailed as exc:
        return exc.failure
    except Exception as exc:  # The last guard: one image must never stop a batch.
        return ImageFailure(
            uri,
            f"image {uri}: the image loader failed unexpectedly ({type(exc).__name__}: "
            f"{safe_text(exc)}); this is a bug in diffwatch/scoring/images/load.py, "
            "please report it",
            "internal_error",
        )


def load_images(
    uris: Iterable[str | None],
    *,
    workers: int = 8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    retries: int = 2,
    backoff_s: float = 0.2,
    storage_options: Mapping[str, Any] | None = None,
    access: ImageAccess | None = None,
    cancel: threading.Event | None = None,
    keep_jpeg: bool = False,
    convert_modes: bool = False,
) -> list[LoadedImage | EncodedJpeg | ImageFailure]:
    """``load_image`` for many URIs on ``workers`` threads; results in the order given.

    Pillow releases the GIL while decoding, so threads overlap reads and decodes with each
    other and with GPU work on the caller's thread. Peak memory is about ``workers`` ×
    (file size + 2 × width × height × 3) bytes.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"load_images: workers must be an integer >= 1, got {workers!r}")
    _check_limits(max_pixels=max_pixels, max_side=max_side, max_bytes=max_bytes)
    _check_retry(retries=retries, backoff_s=backoff_s)
    todo = list(uris)
    access = access or ImageAccess.from_settings()

    def one(uri: str | None) -> LoadedImage | EncodedJpeg | ImageFailure:
        return load_image(
            uri,
            max_pixels=max_pixels,
            max_side=max_side,
            max_bytes=max_bytes,
            retries=retries,
            backoff_s=backoff_s,
            storage_options=storage_options,
            access=access,
            cancel=cancel,
            keep_jpeg=keep_jpeg,
            convert_modes=convert_modes,
        )

    if len(todo) <= 1 or workers == 1:
        return [one(u) for u in todo]
    with ThreadPoolExecutor(
        max_workers=min(workers, len(todo)), thread_name_prefix="diffwatch-image"
    ) as pool:
        return list(pool.map(one, todo))


# -- decoding --------------------------------------------------------------------------------


def decode_bytes(
    uri: str,
    data: bytes,
    attempts: int = 1,
    *,
    max_pixels: int,
    max_side: int,
    convert_modes: bool = False,
) -> LoadedImage | ImageFailure:
    """Check and decode an image's bytes on the CPU, as ``load_image`` does after reading."""
    return _decode(  # type: ignore[return-value]  # keep_jpeg=False: never an EncodedJpeg
        uri,
        data,
        attempts,
        max_pixels=max_pixels,
        max_side=max_side,
        keep_jpeg=False,
        convert_modes=convert_modes,
    )


def _decode(
    uri: str,
    data: bytes,
    attempts: int,
    *,
    max_pixels: int,
    max_side: int,
    keep_jpeg: bool,
    convert_modes: bool,
) -> LoadedImage | EncodedJpeg | ImageFailure:
    """Open (header only), check the size, then decode fully and convert to RGB.

    With ``keep_jpeg``, a JPEG that nvJPEG can decode is returned still encoded.
    """

    def fail(reason: str, kind: FailureKind, transient: bool = False) -> ImageFailure:
        return ImageFailure(uri, f"image {uri}: {reason}", kind, transient, attempts)

    if not data:
        return fail(
            "file is empty (0 bytes); the writer probably crashed or has not finished; "
            "regenerate the image or fix the writer",
            "empty",
        )
    sniffed = sniff_format(data)
    try:
        with (
            _OPEN_LOCK,
            warnings.catch_warnings(action="error", category=Image.DecompressionBombWarning),
        ):
            im = Image.open(io.BytesIO(data), formats=list(SUPPORTED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return fail(
            f"refused without decoding: {safe_text(exc)} "
            f"(Pillow's limit is Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS:,}); "
            "if the image is genuine, store it downscaled",
            "decompression_bomb",
        )
    except UnidentifiedImageError:
        return _unidentified(data, sniffed, fail)
    except Exception as exc:
        return _broken(data, sniffed or "image", exc, fail)

    with im:
        width, height = im.size
        if max(width, height) > max_side or width * height > max_pixels:
            return fail(
                f"declares {width}x{height} pixels ({width * height:,}), over the limits "
                f"of {max_side:,} pixels a side and {max_pixels:,} pixels; refused without "
                "decoding; raise max_side/max_pixels if such images are expected",
                "too_large",
            )
        fmt = "JPEG" if im.format == "MPO" else (im.format or sniffed or "unknown")
        frames = int(getattr(im, "n_frames", 1) or 1)
        if not convert_modes and (refused := unusual_mode(im, frames)) is not None:
            what, kind = refused
            return fail(
                f"{what}: the scorers read single RGB images, which is what a generation "
                "service writes, so this file is set aside rather than guessed at; "
                "re-encode it as RGB, or score converted copies with "
                "`diffwatch score --convert-unusual-modes`",
                kind,
            )
        if keep_jpeg:
            encoded = device_decodable(uri, im, data, attempts, frames)
            if encoded is not None:
                return encoded
        try:
            im.load()  # Decodes the first frame only; truncation surfaces here.
            rgb_im, notes = to_rgb(im)
            rgb = np.asarray(rgb_im, dtype=np.uint8)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return fail(f"refused while decoding: {safe_text(exc)}", "decompression_bomb")
        except MemoryError:
            return fail(
                f"ran out of memory decoding {width}x{height} pixels; lower load threads "
                "or max_pixels, or give the worker more memory",
                "out_of_memory",
                transient=True,
            )
        except Exception as exc:
            return _broken(data, fmt, exc, fail)

    rgb.setflags(write=False)
    extra: list[str] = []
    if frames > 1:
        label = "multi-picture JPEG (MPO)" if im.format == "MPO" else "animated"
        unit = "images" if im.format == "MPO" else "frames"
        extra.append(f"{label}: first of {frames} {unit} used")
    if fmt == "PNG" and not png_is_complete(data):
        extra.append("PNG ends before its IEND chunk: the file may be cut short")
    return LoadedImage(
        uri=uri,
        rgb=rgb,
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        format=fmt,
        notes=(*notes, *extra),
        bytes_read=len(data),
        attempts=attempts,
    )


def _unidentified(data: bytes, sniffed: str | None, fail: _Fail) -> ImageFailure:
    """Why Pillow could not open ``data`` as PNG, JPEG or WEBP."""
    if sniffed in SUPPORTED_FORMATS:
        return _broken(data, sniffed, None, fail)
    supported = ", ".join(SUPPORTED_FORMATS)
    if sniffed is not None:
        return fail(
            f"content is {sniffed}, which the scorers do not read (only {supported}); "
            f"save generations as {supported}, or convert this file",
            "unsupported_format",
        )
    return fail(
        f"not an image: {describe_unknown(data)}; "
        f"check what the generation service wrote at this URI (expected {supported})",
        "not_an_image",
    )


def _broken(data: bytes, fmt: str, exc: BaseException | None, fail: _Fail) -> ImageFailure:
    """A PNG/JPEG/WEBP that fails to decode: truncated, or corrupt in another way."""
    detail = f" ({type(exc).__name__}: {safe_text(exc)})" if exc is not None else ""
    message = str(exc).lower() if exc is not None else ""
    if "truncated" in message or isinstance(exc, EOFError) or looks_truncated(fmt, data):
        return fail(
            f"{fmt} file is truncated after {len(data):,} bytes{detail}; it was probably "
            "cut short while being written or copied; regenerate or re-upload it",
            "truncated",
        )
    return fail(
        f"{fmt} data is corrupt{detail}; regenerate or re-upload the image",
        "corrupt",
    )


def _check_limits(*, max_pixels: int, max_side: int, max_bytes: int) -> None:
    """Raise ValueError for a non-positive size limit (a caller bug, not bad data)."""
    for name, value in (("max_pixels", max_pixels), ("max_side", max_side)):
        if value < 1:
            raise ValueError(f"load_image: {name} must be >= 1 pixel, got {value!r}")
    if max_bytes < 1:
        raise ValueError(f"load_image: max_bytes must be >= 1 byte, got {max_bytes!r}")


def _check_retry(*, retries: int, backoff_s: float) -> None:
    """Raise ValueError for a negative retry count or backoff."""
    if retries < 0:
        raise ValueError(f"load_image: retries must be >= 0, got {retries!r}")
    if backoff_s < 0:
        raise ValueError(f"load_image: backoff_s must be >= 0 seconds, got {backoff_s!r}")
