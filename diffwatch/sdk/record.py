"""Building generation log records and checking them against the contract before writing.

The SDK validates every record with the collector's own type (``diffwatch.model.log_record``)
plus the few checks the collector makes beyond it (NUL, lone surrogates, line size, future
timestamps), so it never writes a line the collector would reject.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from diffwatch.model.log_record import LogRecord

MAX_LINE_BYTES = 1 << 20  # the collector rejects longer lines (docs/collect-logs.md)
MAX_FUTURE = timedelta(minutes=5)
_encoder = msgspec.json.Encoder()


class InvalidRecord(ValueError):
    """A record the collector would reject; the message names the field and the fix."""


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def now_iso() -> str:
    """The current time as ISO 8601 with a UTC offset, to the microsecond."""
    return datetime.now(UTC).isoformat()


def _bad_text(name: str, value: str) -> str | None:
    if "\x00" in value:
        return f'"{name}" contains a NUL character; remove it'
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f'"{name}" holds a lone UTF-16 surrogate, which PostgreSQL cannot store'
    return None


def _check_value(name: str, value: Any, depth: int = 0) -> str | None:
    if depth > 100:
        return f'"{name}" nests arrays or objects too deeply; flatten it'
    if isinstance(value, str):
        return _bad_text(name, value)
    if isinstance(value, float) and not math.isfinite(value):
        return f'"{name}" is {value}; NaN and Infinity are not JSON'
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f'"{name}" has a non-string key {k!r}'
            if (bad := _bad_text(f"{name}.{k}", k)) or (bad := _check_value(name, v, depth + 1)):
                return bad
    elif isinstance(value, list | tuple):
        for v in value:
            if bad := _check_value(name, v, depth + 1):
                return bad
    return None


def build_record(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A contract record from ``fields``: ``None`` values dropped, ``request_id`` and
    ``timestamp`` filled in when missing, then validated (``InvalidRecord`` if it fails)."""
    record = {k: v for k, v in fields.items() if v is not None}
    record.setdefault("request_id", new_request_id())
    record.setdefault("timestamp", now_iso())
    validate_record(record)
    return record


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ``InvalidRecord`` unless the collector would store ``record`` as it is."""
    for name, value in record.items():
        if not isinstance(name, str):
            raise InvalidRecord(f"record key {name!r} must be a string")
        if bad := _bad_text(name, name) or _check_value(name, value):
            raise InvalidRecord(f"request {record.get('request_id')!r}: {bad}")
    try:
        rec = msgspec.convert(dict(record), LogRecord)
    except msgspec.ValidationError as exc:
        raise InvalidRecord(
            f"request {record.get('request_id')!r}: {exc}; see the generation log record "
            "contract in ARCHITECTURE.md"
        ) from None
    ts = rec.timestamp
    when = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    if when - datetime.now(UTC) > MAX_FUTURE:
        raise InvalidRecord(
            f'request {rec.request_id!r}: "timestamp" {ts} is more than 5 minutes in the '
            "future (epoch milliseconds? send seconds)"
        )


def encode_line(record: Mapping[str, Any]) -> bytes:
    """``record`` as one JSON line with its newline; ``InvalidRecord`` if over 1 MiB."""
    try:
        line = _encoder.encode(record) + b"\n"
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(f"request {record.get('request_id')!r}: not JSON ({exc})") from None
    if len(line) > MAX_LINE_BYTES:
        raise InvalidRecord(
            f"request {record.get('request_id')!r}: the line is {len(line)} bytes, over the "
            f"{MAX_LINE_BYTES} byte limit; shorten the prompt or the extra fields"
        )
    return line
