"""From file bytes to batches that parse lazily, while COPY streams them to the server.

A batch is consumed inside an open COPY: Postgres indexes row n while Python parses row
n+1, which is what keeps ingest close to the speed of a raw COPY.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collectors.logs.parse import parse_line, printable_raw
from collectors.logs.tail import MAX_LINE_BYTES, Line
from db.queries import ingest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Source:
    """A log file being read: its path, content fingerprint, size (bytes) and inode."""

    path: str
    fingerprint: str
    size: int
    device: int
    inode: int


@dataclass
class LazyBatch:
    """Up to ``limit`` lines of one file, parsed as the batch is iterated.

    Iterating yields the good rows. Rejections, blank lines and the file position are
    complete once iteration ends; ``drain`` finishes an iteration that was cut short.
    ``rows`` keeps every row yielded, for a second COPY when the first hit a duplicate.
    """

    src: Source
    lines: Iterator[Line]
    start: int
    line_no: int
    limit: int
    now: datetime
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejections: list[ingest.RejectionRow] = field(default_factory=list)
    blank: int = 0
    exhausted: bool = False  # the file had no more complete lines
    pos: int = -1

    def __post_init__(self) -> None:
        self.pos = self.start
        self._gen = self._parse()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self._gen

    def drain(self) -> None:
        """Parse whatever lines of this batch are left unread."""
        for _ in self._gen:
            pass

    def _parse(self) -> Iterator[tuple[Any, ...]]:
        path, fp, now, rows, rejections = (
            self.src.path,
            self.src.fingerprint,
            self.now,
            self.rows,
            self.rejections,
        )
        for seen, (offset, end, data, oversize) in enumerate(self.lines, 1):
            self.line_no += 1
            self.pos = end
            reason: str | None = None
            if oversize:
                reason = f"line is {oversize} bytes, over the {MAX_LINE_BYTES} byte limit"
            elif not data.strip():
                self.blank += 1
            else:
                parsed = parse_line(data, now, (path, offset))
                if type(parsed) is tuple:
                    rows.append(parsed)
                    yield parsed
                else:
                    reason = parsed.reason
            if reason is not None:
                text, was_cut = printable_raw(data)
                rejections.append(
                    ingest.RejectionRow(
                        path,
                        fp,
                        offset,
                        self.line_no,
                        text,
                        oversize or len(data),
                        was_cut or bool(oversize),
                        reason,
                    )
                )
                log.info("log line %d of %s: %s", self.line_no, path, reason)
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
        return ingest.OffsetUpdate(s.fingerprint, s.path, s.device, s.inode, self.pos, self.line_no)


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
