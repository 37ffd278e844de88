"""Pure parsing: one raw log line (bytes) → a row for ``generations`` or a rejection reason."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from collectors.logs.record import EXPECTED, FIELDS, LogRecord, StrictLogRecord

MAX_FUTURE = timedelta(minutes=5)
RAW_KEEP_CHARS = 4096  # how much of a rejected line we keep, in characters

_json = msgspec.json.Decoder()
_strict = msgspec.json.Decoder(StrictLogRecord)
_MSGSPEC_PATH = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")
_MISSING = re.compile(r"missing required field `([^`]+)`")


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a line was refused (the reason reads on its own, without file or line)."""

    reason: str


# A parsed row is a tuple in ROW_COLUMNS order (the record's own field order, so that
# msgspec's C ``astuple`` builds it): cheap to make, and what COPY wants.
ROW_COLUMNS: tuple[str, ...] = (
    *("ts" if f == "timestamp" else f for f in FIELDS),
    "extra",
)
_KNOWN = frozenset(FIELDS)
_TS = FIELDS.index("timestamp")
_NFIELDS = len(FIELDS)
_astuple = msgspec.structs.astuple
NO_EXTRA: dict[str, Any] = {}  # shared, never mutated: saves a dict per line


def _show(value: Any) -> str:
    text = msgspec.json.encode(value).decode() if not isinstance(value, float) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _millis_hint(value: float) -> str:
    return " (epoch milliseconds? send seconds)" if abs(value) > 1e11 else ""


def parse_timestamp(value: str | float | datetime, now: datetime) -> datetime | Rejected:
    """Parse an ISO 8601-with-offset string or epoch seconds; refuse naive or future times."""
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return Rejected(f'"timestamp" must be {EXPECTED["timestamp"]}, got {_show(value)}')
        if ts.tzinfo is None:
            return Rejected(
                f'"timestamp" {_show(value)} has no UTC offset; write it like '
                '"2026-11-21T10:00:00+00:00" or "...Z"'
            )
    else:
        if not math.isfinite(value):
            return Rejected(f'"timestamp" must be a finite number of epoch seconds, got {value}')
        try:
            ts = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return Rejected(f'"timestamp" {value} is not a usable epoch time{_millis_hint(value)}')
    if ts - now > MAX_FUTURE:
        hint = _millis_hint(value) if not isinstance(value, str) else ""
        return Rejected(
            f'"timestamp" {_show(value)} is more than 5 minutes in the future '
            f"(now {now.isoformat(timespec='seconds')}){hint}"
        )
    return ts


def _bad_value(obj: dict[str, Any], err: msgspec.ValidationError) -> Rejected:
    msg = str(err)
    if m := _MISSING.search(msg):
        return Rejected(f'required field "{m.group(1)}" is missing')
    if m := _MSGSPEC_PATH.search(msg):
        field = m.group(1)
        if field in EXPECTED:
            return Rejected(f'"{field}" must be {EXPECTED[field]}, got {_show(obj.get(field))}')
        return Rejected(f'"{field}" must be a string or null, got {_show(obj.get(field))}')
    return Rejected(f"invalid record: {msg}")


def _find_nul(value: Any, path: str) -> str | None:
    """Path of the first string (or key) holding a NUL character inside ``value``, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return f"{path}.{k!r}"
            if found := _find_nul(v, f"{path}.{k}"):
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if found := _find_nul(v, f"{path}[{i}]"):
                return found
    return None


class _FastDecoders:
    """Typed decoders for the line shapes seen lately, most recently useful first.

    The first is the record with no unknown keys. When the full parser meets a valid line
    with unknown keys, a decoder for the record plus exactly those keys (each optional) is
    made, so that later lines of that shape decode in one C pass too.
    """

    TRY = 3  # decoders tried per line before the full parser
    KEEP = 8

    def __init__(self) -> None:
        self.items: list[tuple[msgspec.json.Decoder, tuple[str, ...]]] = [(_strict, ())]

    def learn(self, keys: frozenset[str]) -> None:
        names = tuple(sorted(keys))
        if any(n == names for _, n in self.items):
            return
        attrs = [f"extra_{i}" for i in range(len(names))]
        cls = msgspec.defstruct(
            "LogRecordWithExtras",
            [(a, Any, msgspec.UNSET) for a in attrs],
            bases=(StrictLogRecord,),
            forbid_unknown_fields=True,
            rename=dict(zip(attrs, names, strict=True)),
        )
        self.items.insert(0, (msgspec.json.Decoder(cls), names))
        del self.items[self.KEEP :]

    def parse(self, raw: bytes, now: datetime, tail: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The row, or None when no decoder tried fits (the full parser decides)."""
        for i, (decoder, names) in enumerate(self.items[: self.TRY]):
            try:
                row = _astuple(decoder.decode(raw))
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue
            ts = row[_TS]
            if type(ts) is not datetime or ts - now > MAX_FUTURE:
                return None
            if i:
                self.items.insert(0, self.items.pop(i))
            if not names:
                return (*row, NO_EXTRA, *tail)
            extra = {
                k: v for k, v in zip(names, row[_NFIELDS:], strict=True) if v is not msgspec.UNSET
            }
            return (*row[:_NFIELDS], extra or NO_EXTRA, *tail)
        return None


_fast = _FastDecoders()


def parse_line(raw: bytes, now: datetime, tail: tuple[Any, ...] = ()) -> tuple[Any, ...] | Rejected:
    """Turn one line (without its newline) into a ``ROW_COLUMNS`` tuple or a ``Rejected``.

    ``extra`` is the shared ``NO_EXTRA`` when there are no unknown keys; ``tail`` is
    appended to the row (the collector adds the source file and offset).
    """
    # Fast path, for the common line: an RFC 3339 timestamp, nothing wrong, and unknown
    # keys (if any) of a shape seen before. A typed decode, all in C, accepts exactly what
    # the full parser would accept, with the same values; anything else takes the full
    # parser and its reasons.
    if b"\\u0000" not in raw and (row := _fast.parse(raw, now, tail)) is not None:
        return row
    return _parse_full(raw, now, tail)


def _parse_full(raw: bytes, now: datetime, tail: tuple[Any, ...]) -> tuple[Any, ...] | Rejected:
    if b"\x00" in raw:
        return Rejected("line contains a NUL byte; log lines must be UTF-8 JSON text")
    try:
        obj = _json.decode(raw)
    except UnicodeDecodeError as u:
        return Rejected(f"line is not valid UTF-8 (bad byte at column {u.start + 1})")
    except msgspec.DecodeError as exc:
        if str(exc).startswith("Number out of range"):
            return Rejected("line holds a number out of range; NaN and Infinity are not allowed")
        return Rejected(f"line is not valid JSON: {exc}")
    if type(obj) is not dict:
        return Rejected(f"line must be a JSON object, got {type(obj).__name__}")
    try:
        rec = msgspec.convert(obj, LogRecord)
    except msgspec.ValidationError as exc:
        retry = _retry_timestamp(obj, exc, now)
        if isinstance(retry, Rejected):
            return retry
        rec = retry
    # JSON escapes can smuggle NUL into strings; Postgres text cannot hold it. (NaN and
    # Infinity need no check: msgspec refuses them, and numbers that overflow, itself.)
    if b"\\u0000" in raw and (where := _find_nul(obj, "")):
        return Rejected(f'"{where.lstrip(".")}" contains a NUL character (\\u0000)')
    row = _astuple(rec)
    ts = row[_TS]
    if type(ts) is not datetime:
        ts = parse_timestamp(ts, now)
        if isinstance(ts, Rejected):
            return ts
        row = (*row[:_TS], ts, *row[_TS + 1 :])
    elif ts - now > MAX_FUTURE:
        return parse_timestamp(obj["timestamp"], now)  # gives the reason
    unknown = obj.keys() - _KNOWN
    if not unknown:
        return (*row, NO_EXTRA, *tail)
    _fast.learn(frozenset(unknown))
    return (*row, {k: obj[k] for k in unknown}, *tail)


def _retry_timestamp(
    obj: dict[str, Any], exc: msgspec.ValidationError, now: datetime
) -> LogRecord | Rejected:
    """Second chance for ISO 8601 spellings that RFC 3339 (msgspec) refuses, else a reason."""
    value = obj.get("timestamp")
    if "$.timestamp" not in str(exc) or not isinstance(value, str):
        return _bad_value(obj, exc)
    ts = parse_timestamp(value, now)
    if isinstance(ts, Rejected):
        return ts
    try:
        return msgspec.convert({**obj, "timestamp": ts}, LogRecord)
    except msgspec.ValidationError as again:
        return _bad_value(obj, again)


def printable_raw(raw: bytes, limit: int = RAW_KEEP_CHARS) -> tuple[str, bool]:
    """A text copy of a rejected line safe for Postgres: bad bytes escaped, NULs shown, cut.

    Returns (text, truncated).
    """
    head = raw[: limit * 4]
    text = head.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    truncated = len(head) < len(raw) or len(text) > limit
    return (text[:limit], truncated)
