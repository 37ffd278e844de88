"""Reading an image's bytes, confined to the image roots, bounded in time and size.

Every read goes through ``read_with_retries``: ``ImageAccess.locate`` checks the URI first
(roots, protocol, regular file), then a local file is read with ``os.open`` (non-blocking,
no symlink) and its descriptor checked again, a remote one through fsspec after its ``info``
says it is a file of allowed size. The read runs on a daemon thread that the caller waits
for at most the access's ``timeout_s`` seconds, so a stuck read (a silent server, a hung
mount) costs the caller a timeout, never a hang, and the wait ends at once when the
caller's ``cancel`` event is set (a worker that is stopping). Transient errors are retried
with backoff; timeouts are not
(a hung storage will not answer in 200 ms either).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from diffwatch.errors import first_line
from diffwatch.scoring.images.result import ImageFailure, ReadFailed
from diffwatch.scoring.images.roots import ImageAccess, LocalTarget, RemoteTarget, not_regular

_T = TypeVar("_T")
_POLL_S = 0.25  # how often a waiting reader looks at the cancel switch, seconds
_LOCAL_FLAGS = (
    os.O_RDONLY
    | os.O_NONBLOCK  # a FIFO swapped in after the stat must not block the open
    | os.O_NOFOLLOW  # nor a symlink swapped in for the resolved path
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)
# Library messages may quote what they read (Pillow's "broken PNG file (chunk b'...')").
_BYTES_LITERAL = re.compile(r"""b(['"]).*?(?<!\\)\1""")

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


class ReadTimedOut(TimeoutError):
    """A read that took longer than the access's timeout."""


class ReadCancelled(Exception):
    """A read abandoned because its caller set the ``cancel`` event (it is stopping)."""


def read_with_retries(
    uri: str,
    max_bytes: int,
    retries: int,
    backoff_s: float,
    options: dict[str, Any],
    access: ImageAccess,
    cancel: threading.Event | None = None,
) -> tuple[bytes, int]:
    """The file's bytes (at most ``max_bytes``) and the number of attempts it took.

    Raises ``ReadFailed`` for a URI outside ``access``'s roots, anything but a regular file,
    a file over ``max_bytes`` bytes, a read over ``access.timeout_s`` seconds, or an I/O
    error (transient ones retried ``retries`` times, sleeping ``backoff_s`` seconds, then
    twice that, and so on). Setting ``cancel`` ends the wait at once (a read stuck in a
    system call is left on its daemon thread, which dies with the process).
    """
    target = access.locate(uri)
    attempt = 0
    while True:
        attempt += 1
        try:
            if isinstance(target, LocalTarget):
                data = _bounded(lambda: _read_local(uri, target.path, max_bytes), access, cancel)
            else:
                data = _bounded(
                    lambda: _read_remote(uri, target, max_bytes, options), access, cancel
                )
            break
        except ReadFailed as exc:
            raise ReadFailed(_with_attempts(exc.failure, attempt)) from exc
        except ReadTimedOut as exc:
            raise ReadFailed(
                ImageFailure(
                    uri,
                    f"image {uri}: read timed out after {access.timeout_s:g} s; the storage "
                    "may be hung or slow; it is tried again later (raise "
                    "DIFFWATCH_IMAGE_READ_TIMEOUT_S for storage that is slow on purpose)",
                    "io_error",
                    transient=True,
                    attempts=attempt,
                )
            ) from exc
        except ReadCancelled as exc:
            raise ReadFailed(
                ImageFailure(
                    uri,
                    f"image {uri}: read abandoned because this worker is stopping; "
                    "another worker reads it again",
                    "io_error",
                    transient=True,
                    attempts=attempt,
                )
            ) from exc
        except (ValueError, ImportError, TypeError) as exc:
            raise ReadFailed(
                ImageFailure(
                    uri,
                    f"image {uri}: cannot open this URI ({safe_text(exc)}); use a URI whose "
                    "fsspec backend is installed (s3fs for s3://, gcsfs for gs://)",
                    "bad_uri",
                    attempts=attempt,
                )
            ) from exc
        except Exception as exc:
            transient = _is_transient(exc)
            if not transient or attempt > retries:
                raise ReadFailed(_io_failure(uri, exc, transient, attempt)) from exc
            time.sleep(backoff_s * 2 ** (attempt - 1))
    return data, attempt


def _bounded(read: Callable[[], _T], access: ImageAccess, cancel: threading.Event | None) -> _T:
    """``read()`` on a daemon thread, waited for at most ``access.timeout_s`` seconds."""
    if cancel is not None and cancel.is_set():
        raise ReadCancelled
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = read()
        except BaseException as exc:  # handed to the waiting caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="diffwatch-image-read").start()
    deadline = time.monotonic() + access.timeout_s
    while not done.wait(max(min(_POLL_S, deadline - time.monotonic()), 0)):
        if cancel is not None and cancel.is_set():
            raise ReadCancelled
        if time.monotonic() >= deadline:
            raise ReadTimedOut
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _read_local(uri: str, path: str, max_bytes: int) -> bytes:
    """A resolved local path's bytes: the opened descriptor must be a regular file."""
    fd = os.open(path, _LOCAL_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(uri, st.st_mode)
        _check_size(uri, st.st_size, max_bytes)
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(_READ_CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    _check_size(uri, size, max_bytes)
    return b"".join(chunks)


def _read_remote(uri: str, target: RemoteTarget, max_bytes: int, options: dict[str, Any]) -> bytes:
    """A remote file's bytes through fsspec, after its ``info`` says it is a small file."""
    import fsspec.core

    fs, path = fsspec.core.url_to_fs(uri, **options)
    info = fs.info(path)
    if info.get("type") != "file":
        raise ReadFailed(
            ImageFailure(
                uri,
                f"image {uri}: {info.get('type') or 'not a file'} on {target.protocol}://, "
                "not a file; point image_uri at the image file itself",
                "not_a_file",
            )
        )
    if isinstance(info.get("size"), int):
        _check_size(uri, info["size"], max_bytes)
    chunks: list[bytes] = []
    size = 0
    with fs.open(path, "rb") as f:
        while size <= max_bytes:
            chunk = f.read(min(_READ_CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    _check_size(uri, size, max_bytes)
    return b"".join(chunks)


def _check_size(uri: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ReadFailed(
            ImageFailure(
                uri,
                f"image {uri}: file is over the {max_bytes:,}-byte limit; raise max_bytes "
                "if such files are expected, or store smaller images",
                "too_large",
            )
        )


def _with_attempts(failure: ImageFailure, attempts: int) -> ImageFailure:
    return ImageFailure(failure.uri, failure.reason, failure.kind, failure.transient, attempts)


def safe_text(exc: BaseException, limit: int = 160) -> str:
    """An exception's first line without byte literals, at most ``limit`` characters long:
    library messages may quote what they read, and reasons never show file content."""
    text = _BYTES_LITERAL.sub("b'…'", first_line(exc))
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    what = f"{type(exc).__name__}: {safe_text(exc)}"
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
