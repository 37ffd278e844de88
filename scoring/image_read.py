"""Reading an image's bytes through fsspec, retrying transient errors with backoff."""

from __future__ import annotations

import errno
import time
from typing import Any

import fsspec

from diffwatch.errors import first_line
from scoring.image_result import ImageFailure, ReadFailed

# Outside ConnectionError/TimeoutError/BlockingIOError/InterruptedError, an OSError is
# permanent only when its errno says so; unknown remote errors (errno None, EIO, EBUSY from
# s3fs throttling, ...) get the bounded retries.
_PERMANENT_ERRNOS = {
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EINVAL,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}
_TRANSIENT_TYPES = (ConnectionError, TimeoutError, BlockingIOError, InterruptedError)
# Client libraries (aiohttp, botocore, requests) raise non-OSError network errors.
_TRANSIENT_NAME_PARTS = ("Timeout", "Connection", "Disconnected", "Throttl", "SlowDown")

_READ_CHUNK = 8 * 2**20  # bytes per read call


def read_with_retries(
    uri: str, max_bytes: int, retries: int, backoff_s: float, options: dict[str, Any]
) -> tuple[bytes, int]:
    """The file's bytes and the number of attempts it took; raises ``ReadFailed``."""
    try:
        opener = fsspec.open(uri, mode="rb", compression=None, **options)
    except (ValueError, ImportError, TypeError) as exc:
        raise ReadFailed(
            ImageFailure(
                uri,
                f"image {uri}: cannot open this URI ({first_line(exc)}); use a local path or "
                "a URI whose fsspec backend is installed (s3fs for s3://, gcsfs for gs://)",
                "bad_uri",
            )
        ) from exc
    except Exception as exc:
        raise ReadFailed(_io_failure(uri, exc, _is_transient(exc), 1)) from exc
    attempt = 0
    while True:
        attempt += 1
        try:
            data = _read_once(opener, max_bytes)
            break
        except Exception as exc:
            transient = _is_transient(exc)
            if not transient or attempt > retries:
                raise ReadFailed(_io_failure(uri, exc, transient, attempt)) from exc
            time.sleep(backoff_s * 2 ** (attempt - 1))
    if len(data) > max_bytes:
        raise ReadFailed(
            ImageFailure(
                uri,
                f"image {uri}: file is over the {max_bytes:,}-byte limit; raise max_bytes "
                "if such files are expected, or store smaller images",
                "too_large",
                attempts=attempt,
            )
        )
    return data, attempt


def _read_once(opener: Any, max_bytes: int) -> bytes:
    """Up to ``max_bytes + 1`` bytes (one more tells that the file is over the limit)."""
    # Chunked: read(max_bytes + 1) would reserve the whole limit up front for every file.
    chunks: list[bytes] = []
    size = 0
    with opener as f:
        while size <= max_bytes:
            chunk = f.read(min(_READ_CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def _is_transient(exc: BaseException) -> bool:
    """Whether a read error may go away on its own (network, throttling, busy device)."""
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, OSError):
        return exc.errno not in _PERMANENT_ERRNOS
    names = [cls.__name__ for cls in type(exc).__mro__]
    return any(part in name for name in names for part in _TRANSIENT_NAME_PARTS)


def _io_failure(uri: str, exc: BaseException, transient: bool, attempts: int) -> ImageFailure:
    """The failure for a read error, with a fix that fits its cause."""
    what = f"{type(exc).__name__}: {first_line(exc)}"
    if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
        return ImageFailure(
            uri,
            f"image {uri}: file not found ({what}); check that the generation service wrote "
            "it and that this worker sees the same storage (mounts, bucket, credentials)",
            "missing",
            attempts=attempts,
        )
    if isinstance(exc, PermissionError):
        fix = "give this worker read access (file permissions or cloud credentials)"
    elif isinstance(exc, (IsADirectoryError, NotADirectoryError)):
        fix = "point image_uri at the image file itself"
    elif transient:
        fix = f"gave up after {attempts} attempts; the storage may recover, try again later"
    else:
        fix = "check the storage backend and the URI"
    return ImageFailure(
        uri, f"image {uri}: read failed ({what}); {fix}", "io_error", transient, attempts
    )
