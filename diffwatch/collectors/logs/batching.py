"""From file bytes to batches that parse lazily, while COPY streams them to the server.

A batch is consumed inside an open COPY: Postgres indexes row n while Python parses row
n+1, which is what keeps ingest close to the speed of a raw COPY.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from diffwatch.collectors.logs.parse import parse_line, printable_raw
from diffwatch.collectors.logs.tail import MAX_LINE_BYTES, Line
from diffwatch.db.queries import ingest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Source:
    """A log file being read: its path, content fingerprint, size (bytes) and inode."""

    path: str
    fingerprint: str
    size: int
    device: int
    inode: int

    @property
    def label(self) -> str:
        """The path as stored in the database: bytes that are not UTF-8 shown as ``\\xNN``.

        A file name is bytes; one that is not UTF-8 must not make every row of its file
        unstorable in a text column.
        """
        return os.fsencode(self.path).decode("utf-8", "backslashreplace")


@dataclass
class LazyBatch:
    """Up to ``limit`` lines of one file, parsed as the batch is iterated.

    Iterating yields the good rows. Rejections, blank lines and the file position are
    complete once iteration ends; ``drain`` finishes an iteration that was cut short.
    ``rows`` keeps every row yielded, for a second COPY when the first hit a duplicate,
    and ``raws`` the line each came from, in case the database refuses it (``refuse``).
    """

    src: Source
    lines: Iterator[Line]
    start: int
    line_no: int
    limit: int
    now: datetime
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    rejections: list[ingest.RejectionRow] = field(default_factory=list)
    blank: int = 0
    blank_offsets: list[int] = field(default_factory=list)
    exhausted: bool = False  # the file had no more complete lines
    pos: int = -1

    def __post_init__(self) -> None:
        self.pos = self.start
        self._first_line_no = self.line_no
        self._gen = self._parse()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self._gen

    def drain(self) -> None:
        """Parse whatever lines of this batch are left unread."""
        for _ in self._gen:
            pass

    def refuse(self, index: int, reason: str) -> None:
        """Turn ``rows[index]``, which the database refused, into a rejection."""
        offset = self.rows[index][-1]
        # Its line number, from the lines of this batch before it. A set: a row refused
        # earlier is in both ``rows`` and ``rejections``.
        offsets = {r[-1] for r in self.rows}
        offsets.update(r.source_offset for r in self.rejections)
        offsets.update(self.blank_offsets)
        before = sum(1 for o in offsets if o < offset)
        self._reject(offset, self._first_line_no + before + 1, self.raws[index], 0, reason)

    def _reject(self, offset: int, line_no: int, data: bytes, oversize: int, reason: str) -> None:
        text, was_cut = printable_raw(data)
        self.rejections.append(
            ingest.RejectionRow(
                self.src.label,
                self.src.fingerprint,
                offset,
                line_no,
                text,
                oversize or len(data),
                was_cut or bool(oversize),
                reason,
            )
        )
        log.info("log line %d of %s: %s", line_no, self.src.path, reason)

    def _parse(self) -> Iterator[tuple[Any, ...]]:
        path, now, rows, raws = self.src.label, self.now, self.rows, self.raws
        for seen, (offset, end, data, oversize) in enumerate(self.lines, 1):
            self.line_no += 1
            self.pos = end
            reason: str | None = None
            if oversize:
                reason = f"line is {oversize} bytes, over the {MAX_LINE_BYTES} byte limit"
            elif not data.strip():
                self.blank += 1
                self.blank_offsets.append(offset)
            else:
                parsed = parse_line(data, now, (path, offset))
                if type(parsed) is tuple:
                    rows.append(parsed)
                    raws.append(data)
                    yield parsed
                else:
                    reason = parsed.reason
            if reason is not None:
                self._reject(offset, self.line_no, data, oversize, reason)
            if seen >= self.limit:
                return
        self.exhausted = True

    @property
    def nbytes(self) -> int:
        """Bytes of the file this batch covers (valid once iterated)."""
        return self.pos - self.start

    @property
    def offset(self) -> ingest.OffsetUpdate:
        """Where the file stands once this batch is committed."""
        s = self.src
        return ingest.OffsetUpdate(
            s.fingerprint, s.label, s.device, s.inode, self.pos, self.line_no
        )


def batches(
    lines: Iterator[Line],
    src: Source,
    start: int,
    line_no: int,
    limit: int,
    clock: Callable[[], datetime],
) -> Iterator[LazyBatch]:
    """Successive batches over ``lines``; each must be iterated before asking for the next."""
    while True:
        batch = LazyBatch(src, lines, start, line_no, limit, clock())
        yield batch
        batch.drain()
        if batch.nbytes == 0:
            return
        start, line_no = batch.pos, batch.line_no
        if batch.exhausted:
            return
