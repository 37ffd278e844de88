"""Reading log files: content fingerprints and bounded-memory line splitting from an offset."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

MAX_LINE_BYTES = 1 << 20  # 1 MiB: longer lines are rejected without being held in memory
FINGERPRINT_BYTES = 4096
CHUNK_BYTES = 1 << 18
GZIP_MAGIC = b"\x1f\x8b"


# (start offset, end offset just past the newline, content without the newline, oversize)
# A plain tuple: one is made per log line, and tuples are the cheapest thing to make.
# ``oversize`` > 0 means the line was that many bytes, over MAX_LINE_BYTES; then the
# content holds only the line's first 8 KiB.
Line = tuple[int, int, bytes, int]
_HEAD = 8192


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


def iter_lines(fd: int, start: int) -> Iterator[Line]:
    """Yield complete lines from byte ``start``; a last line with no newline waits.

    Memory stays within a few times CHUNK_BYTES + MAX_LINE_BYTES whatever the lines' length.
    """
    pos = start  # file offset of buf[0]
    buf = b""
    skip_at = -1  # start of an oversize line whose newline has not been seen yet
    skip_head = b""
    while True:
        chunk = os.pread(fd, CHUNK_BYTES, pos + len(buf))
        if not chunk:
            return
        if skip_at >= 0:
            nl = chunk.find(b"\n")
            if nl < 0:
                pos += len(chunk)  # still inside the oversize line: hold none of it
                continue
            end = pos + nl + 1
            yield (skip_at, end, skip_head, end - 1 - skip_at)
            skip_at, skip_head = -1, b""
            pos, buf = end, chunk[nl + 1 :]
        else:
            buf += chunk
        parts = buf.split(b"\n")
        rest = parts.pop()
        off = pos
        for part in parts:
            n = len(part)
            if n > MAX_LINE_BYTES:
                yield (off, off + n + 1, part[:_HEAD], n)
            else:
                yield (off, off + n + 1, part, 0)
            off += n + 1
        pos = off
        if len(rest) > MAX_LINE_BYTES:
            skip_at, skip_head = pos, rest[:_HEAD]
            pos, buf = pos + len(rest), b""
        else:
            buf = rest
