"""Reading log files: content fingerprints and bounded-memory line splitting from an offset."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

MAX_LINE_BYTES = 1 << 20  # 1 MiB: longer lines are rejected without being held in memory
FINGERPRINT_BYTES = 4096
CHUNK_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Line:
    """One complete line: its start offset (bytes), its content without the newline."""

    offset: int
    end: int  # offset just past the newline
    data: bytes
    oversize: int = 0  # >0: the line was longer than MAX_LINE_BYTES; data holds its head


def fingerprint(path: str) -> str | None:
    """Identity of a log file's content: a hash of its first line (or first 4 KiB).

    None while the file has no complete first line shorter than 4 KiB yet: it is not
    identifiable, so nothing is read from it until it is.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        return fingerprint_fd(fd)
    finally:
        os.close(fd)


def fingerprint_fd(fd: int) -> str | None:
    """``fingerprint`` of an already open file."""
    head = os.pread(fd, FINGERPRINT_BYTES, 0)
    nl = head.find(b"\n")
    if nl >= 0:
        head = head[: nl + 1]
    elif len(head) < FINGERPRINT_BYTES:
        return None
    return hashlib.blake2b(head, digest_size=16).hexdigest()


def is_compressed(path: str) -> bool:
    """True for gzip files (rotated logs compressed by logrotate), which we do not read."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def iter_lines(fd: int, start: int, stop: int | None = None) -> Iterator[Line]:
    """Yield complete lines from ``start``; a final line with no newline is not yielded.

    Memory stays under CHUNK_BYTES + MAX_LINE_BYTES whatever the line lengths.
    """
    pos = start  # file offset of buf[0]
    buf = b""
    skipping: Line | None = None  # an oversize line whose end we are still looking for
    while True:
        want = CHUNK_BYTES if stop is None else min(CHUNK_BYTES, stop - pos - len(buf))
        if want <= 0:
            return
        chunk = os.pread(fd, want, pos + len(buf))
        if not chunk:
            return
        buf += chunk
        cut = 0
        while True:
            nl = buf.find(b"\n", cut)
            if nl < 0:
                break
            if skipping is not None:
                yield Line(skipping.offset, pos + nl + 1, skipping.data, pos + nl - skipping.offset)
                skipping = None
            elif nl - cut > MAX_LINE_BYTES:
                yield Line(pos + cut, pos + nl + 1, buf[cut : cut + 8192], nl - cut)
            else:
                yield Line(pos + cut, pos + nl + 1, buf[cut:nl])
            cut = nl + 1
        rest = len(buf) - cut
        if skipping is None and rest > MAX_LINE_BYTES:
            skipping = Line(pos + cut, -1, buf[cut : cut + 8192])
        if skipping is not None:
            # Drop what we hold of the oversize line; keep only its head (in ``skipping``).
            pos += len(buf)
            buf = b""
        else:
            pos += cut
            buf = buf[cut:]
