"""One request's records → rows for ``generations`` and rejections, with the log parser.

Pure apart from nothing: the same ``parse_line`` as the file collector, so a record is
accepted or refused over HTTP exactly as it would be in a log file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from diffwatch.collectors.http.body import Record
from diffwatch.collectors.logs.parse import parse_line, printable_raw
from diffwatch.collectors.logs.tail import MAX_LINE_BYTES
from diffwatch.db.queries.ingest import RejectionRow
from diffwatch.model.log_values import printable

MAX_SHOWN_ID = 200  # characters of a rejected record's request_id echoed back


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused record as the client is told: its index, request_id (if readable), why."""

    index: int
    request_id: str | None
    reason: str


@dataclass
class HttpBatch:
    """The parsed records of one request (``ingest.Batch`` for ``write_records``).

    ``source`` names the client (``http:<address>``); ``key`` identifies the body's
    content, so that a retried request stores its rejections once, as its rows.
    """

    source: str
    key: str
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)
    rejections: list[RejectionRow] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def drain(self) -> None:
        """Nothing to do: every record was parsed up front."""

    def refuse(self, index: int, reason: str) -> None:
        """Turn ``rows[index]``, which the database refused, into a rejection."""
        self.reject(self.rows[index][-1], self.raws[index], reason)

    def reject(self, record_index: int, raw: bytes, reason: str) -> None:
        """Refuse the record at ``record_index`` of the body for ``reason``."""
        text, cut = printable_raw(raw)
        self.rejections.append(
            RejectionRow(
                self.source, self.key, record_index, record_index + 1, text, len(raw), cut, reason
            )
        )

    def refusals(self) -> list[Refusal]:
        """What the client is told about each refused record, in body order."""
        by_index = {r.source_offset: r for r in self.rejections}
        raws = dict(zip((row[-1] for row in self.rows), self.raws, strict=True))
        return [
            Refusal(i, shown_request_id(raws.get(i, r.raw.encode())), r.reason)
            for i, r in sorted(by_index.items())
        ]


def build_batch(records: Sequence[Record], body: bytes, client: str, now: datetime) -> HttpBatch:
    """Parse every record of a body from ``client`` (rows carry source and index)."""
    source = printable(f"http:{client}")
    batch = HttpBatch(source, "http:" + hashlib.sha256(body).hexdigest()[:40])
    for rec in records:
        if len(rec.raw) > MAX_LINE_BYTES:
            reason = f"record is {len(rec.raw)} bytes, over the {MAX_LINE_BYTES} byte limit"
            batch.reject(rec.index, rec.raw, reason)
            continue
        parsed = parse_line(rec.raw, now, (source, rec.index))
        if type(parsed) is tuple:
            batch.rows.append(parsed)
            batch.raws.append(rec.raw)
        else:
            batch.reject(rec.index, rec.raw, parsed.reason)
    return batch


def shown_request_id(raw: bytes) -> str | None:
    """A rejected record's request_id, if it has a readable one (cut to 200 characters)."""
    try:
        obj = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    rid = obj.get("request_id") if isinstance(obj, dict) else None
    if not isinstance(rid, str | int) or isinstance(rid, bool):
        return None
    text = printable(str(rid))
    return text if len(text) <= MAX_SHOWN_ID else text[: MAX_SHOWN_ID - 3] + "..."
