"""Where image reads may go: the operator's storage roots (``DIFFWATCH_IMAGE_ROOTS``).

An ``image_uri`` comes from a generation log, which anyone who can write a log line
controls, so it is checked before anything is opened or any connection is made:

* no chained fsspec URLs (``::``);
* a local path (plain, ``file://`` or ``local://``) is resolved (symlinks and ``..``, with
  ``os.path.realpath``) and must lie under a local root, outside ``/proc``, ``/sys`` and
  ``/dev``, and be a regular file (``os.stat``; the reader checks the opened descriptor
  again);
* a remote URI must start with a remote root (``s3://bucket/prefix`` allows
  ``s3://bucket/prefix/...``), with no ``.`` or ``..`` segments, so only protocols, hosts
  and prefixes that a root names are ever contacted.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from diffwatch.scoring.images.result import ImageFailure, ReadFailed

if TYPE_CHECKING:
    from diffwatch.settings import Settings

LOCAL_PROTOCOLS = ("file", "local")
"""Protocols read from the local filesystem, always allowed (inside a local root)."""
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")
"""Kernel filesystems whose "regular files" are not files: never read, even under a root."""

_FIX = "add its directory or prefix to DIFFWATCH_IMAGE_ROOTS if images are really stored there"


@dataclass(frozen=True)
class LocalTarget:
    """A local file that passed the checks: ``path`` is resolved (no symlinks, no ``..``)."""

    path: str


@dataclass(frozen=True)
class RemoteTarget:
    """A remote URI under a remote root; ``protocol`` is lower case (``s3``)."""

    uri: str
    protocol: str


@dataclass(frozen=True)
class ImageAccess:
    """The roots image reads may touch, and how long one read may take (seconds).

    ``roots`` holds absolute local directories and remote prefixes (``s3://bucket/prefix``).
    Build it with ``from_settings``; components that write images of their own (the demo,
    drift runs with ``--output-dir``) add their directory with ``with_roots``.
    """

    roots: tuple[str, ...]
    timeout_s: float = 30.0
    _local: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _remote: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"image read timeout must be > 0 seconds, got {self.timeout_s!r}")
        local: list[str] = []
        remote: list[tuple[str, str]] = []
        for root in self.roots:
            if "::" in root:
                raise ValueError(
                    f"image root {root!r}: chained fsspec URLs (::) are not allowed; "
                    "name the storage itself"
                )
            protocol, sep, rest = root.partition("://")
            if sep and protocol.lower() not in LOCAL_PROTOCOLS:
                remote.append((protocol.lower(), f"{protocol.lower()}://{rest.rstrip('/')}/"))
            else:
                path = rest if sep else root
                local.append(os.path.realpath(os.path.expanduser(path)))
        object.__setattr__(self, "_local", tuple(local))
        object.__setattr__(self, "_remote", tuple(remote))

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ImageAccess:
        """The roots and read timeout of ``DIFFWATCH_IMAGE_ROOTS`` and
        ``DIFFWATCH_IMAGE_READ_TIMEOUT_S`` (read now, never at import time)."""
        from diffwatch.settings import load_settings

        s = settings or load_settings()
        return cls(tuple(s.image_roots), s.image_read_timeout_s)

    def with_roots(self, *more: str | os.PathLike[str]) -> ImageAccess:
        """The same access with ``more`` roots added."""
        return ImageAccess((*self.roots, *map(os.fspath, more)), self.timeout_s)

    def locate(self, uri: str) -> LocalTarget | RemoteTarget:
        """Where ``uri`` may be read from; raises ``ReadFailed`` when it may not be read."""
        if "::" in uri:
            raise _refused(
                uri,
                "chained fsspec URLs (::) are not allowed",
                "log the plain URI of the image (a path, s3://..., gs://...)",
                "bad_uri",
            )
        protocol, sep, rest = uri.partition("://")
        if sep and protocol.lower() not in LOCAL_PROTOCOLS:
            return self._remote_target(uri, protocol.lower())
        if sep and not rest.startswith("/"):
            raise _refused(
                uri, "a file:// URI must name an absolute path (file:///dir/x.png)",
                "log the image's absolute path", "bad_uri",
            )  # fmt: skip
        return self._local_target(uri, rest if sep else uri)

    def _local_target(self, uri: str, path: str) -> LocalTarget:
        real = os.path.realpath(path)
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in self._local):
            raise _refused(
                uri,
                f"resolves to {real}, outside the image roots "
                f"({', '.join(self._local) or 'no local roots'})",
                _FIX,
                "outside_roots",
            )
        if any(real == p or real.startswith(p + "/") for p in PSEUDO_FILESYSTEMS):
            raise _refused(
                uri,
                f"{real} is on a kernel pseudo-filesystem, not a regular file",
                "point image_uri at an image file",
                "not_a_file",
            )
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise _refused(
                uri,
                "file not found",
                "check that the generation service wrote it and that this process sees the "
                "same storage (mounts)",
                "missing",
            ) from None
        except OSError as exc:
            raise _refused(
                uri, f"cannot stat it ({exc.strerror})", "check the file's permissions",
                "io_error",
            ) from None  # fmt: skip
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(uri, st.st_mode)
        return LocalTarget(real)

    def _remote_target(self, uri: str, protocol: str) -> RemoteTarget:
        prefixes = [p for proto, p in self._remote if proto == protocol]
        if not prefixes:
            raise _refused(
                uri,
                f"protocol {protocol}:// is not allowed: no entry of DIFFWATCH_IMAGE_ROOTS "
                f"names a {protocol}:// prefix",
                _FIX,
                "outside_roots",
            )
        normal = f"{protocol}://{uri.partition('://')[2]}"
        inside = next((p for p in prefixes if normal.startswith(p)), None)
        segments = unquote(normal[len(inside) :] if inside else "").replace("\\", "/").split("/")
        if inside is None or any(s in (".", "..") for s in segments) or "\\" in uri:
            raise _refused(
                uri,
                f"outside the image roots ({', '.join(p.rstrip('/') for p in prefixes)}); "
                "'.' and '..' segments are not allowed",
                _FIX,
                "outside_roots",
            )
        return RemoteTarget(uri, protocol)


def not_regular(uri: str, mode: int) -> ReadFailed:
    """The failure for something that is not a regular file (FIFO, device, directory...)."""
    what = next(
        (
            name
            for test, name in (
                (stat.S_ISDIR, "a directory"),
                (stat.S_ISFIFO, "a named pipe (FIFO)"),
                (stat.S_ISSOCK, "a socket"),
                (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"),
            )
            if test(mode)
        ),
        "not a regular file",
    )
    return _refused(
        uri,
        f"{what}, not a regular file; refused without reading",
        "point image_uri at the image file itself",
        "not_a_file",
    )


def _refused(uri: str, problem: str, fix: str, kind: str) -> ReadFailed:
    return ReadFailed(ImageFailure(uri, f"image {uri}: {problem}; {fix}", kind))  # type: ignore[arg-type]
