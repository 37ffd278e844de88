"""Pure parsing: one raw log line (bytes) → a row for ``generations`` or a rejection reason."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from diffwatch.model.log_record import (
    EXPECTED,
    FIELDS,
    REQUIRED,
    LogRecord,
    StrictLogRecord,
)
from diffwatch.model.log_values import (
    deeper_than,
    find_text,
    has_nul,
    has_surrogate,
    is_surrogate,
    printable,
)

log = logging.getLogger(__name__)

MAX_FUTURE = timedelta(minutes=5)
# Deepest nesting of arrays and objects kept in ``extra``. Deeper JSON is refused: encoders
# (msgspec's, when the row is written) and PostgreSQL's jsonb input recurse per level, and
# must not run out of stack at write time on a row that parsing accepted.
MAX_DEPTH = 128
RAW_KEEP_CHARS = 4096  # how much of a rejected line we keep, in characters

_json = msgspec.json.Decoder()
_strict = msgspec.json.Decoder(StrictLogRecord)
# Each field's own type, to find which value a record fails on without reading msgspec's
# error text (its wording is not an API: msgspec 0.23 changed one).
_FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in msgspec.structs.fields(LogRecord)}


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a line was refused (the reason reads on its own, without file or line)."""

    reason: str


_KNOWN = frozenset(FIELDS)
_TS = FIELDS.index("timestamp")
_NFIELDS = len(FIELDS)
_astuple = msgspec.structs.astuple
NO_EXTRA: dict[str, Any] = {}  # shared, never mutated: saves a dict per line


def _show(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
    else:
        try:
            text = msgspec.json.encode(value).decode()
        except (RecursionError, TypeError, ValueError):
            text = f"a {type(value).__name__} too deeply nested to show"
    return printable(text if len(text) <= 80 else text[:77] + "...")


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
    """The reason a decoded object is not a record: the first missing or ill-typed field."""
    for name in REQUIRED:
        if name not in obj:
            return Rejected(f'required field "{name}" is missing')
    for name, typ in _FIELD_TYPES.items():
        if name not in obj:
            continue
        if not _fits(obj[name], typ):
            expected = EXPECTED.get(name, "a string or null")
            return Rejected(f'"{name}" must be {expected}, got {_show(obj[name])}')
    return Rejected(f"invalid record: {err}")


def _fits(value: Any, typ: Any) -> bool:
    try:
        msgspec.convert(value, typ)
    except msgspec.ValidationError:
        return False
    return True


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _too_deep() -> Rejected:
    return Rejected(
        f"line nests arrays or objects more than {MAX_DEPTH} levels deep; flatten the "
        "value or send it as a JSON string"
    )


def _not_json(raw: bytes, err: msgspec.DecodeError) -> Rejected:
    """Why msgspec refused the bytes, told apart by the standard library's own parser.

    The standard parser accepts what msgspec does not: numbers that overflow a double (as
    infinity) or have more digits than Python converts (kept as text here), and lone UTF-16
    surrogate escapes such as ``"\\ud800"``. Anything both refuse is not JSON.
    """
    try:
        obj = json.loads(raw, parse_constant=_refuse_constant, parse_int=str)
    except RecursionError:
        return _too_deep()
    except ValueError:
        return Rejected(f"line is not valid JSON: {printable(str(err))}")
    if found := find_text(obj, has_surrogate):
        where, text = found
        escape = next(c for c in text if is_surrogate(c)).encode("utf-8", "backslashreplace")
        subject = f'"{where}"' if where else "line"
        return Rejected(
            f"{subject} holds a lone UTF-16 surrogate ({escape.decode()}), which is not text "
            "PostgreSQL can store; escape characters beyond U+FFFF as surrogate pairs"
        )
    return Rejected("line holds a number out of range; NaN and Infinity are not allowed")


def _utf8_error(raw: bytes) -> Rejected | None:
    """A reason when ``raw`` is not UTF-8, checked on the bytes themselves."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as u:
        return Rejected(f"line is not valid UTF-8 (bad byte at column {u.start + 1})")
    return None


# What a learned decoder takes as the value of an unknown key: any JSON nested at most
# FAST_DEPTH levels, checked in C by the typed decode. A deeper value (rare) makes the line
# take the full parser, which holds it to MAX_DEPTH.
FAST_DEPTH = 4
_Scalar = None | bool | int | float | str


def _json_value_type(depth: int) -> Any:
    """The type of a JSON value nested at most ``depth`` levels, for msgspec to check."""
    t: Any = _Scalar
    for _ in range(depth):
        t = _Scalar | list[t] | dict[str, t]
    return t


_ExtraValue = _json_value_type(FAST_DEPTH)


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
        """Add a decoder for the record plus exactly ``keys``, when msgspec can name them.

        Never raises: lines of a shape that cannot be learned keep taking the full parser.
        """
        names = tuple(sorted(keys))
        if not all(map(_nameable, names)) or any(n == names for _, n in self.items):
            return
        attrs = [f"extra_{i}" for i in range(len(names))]
        try:
            cls = msgspec.defstruct(
                "LogRecordWithExtras",
                [(a, _ExtraValue, msgspec.UNSET) for a in attrs],
                bases=(StrictLogRecord,),
                forbid_unknown_fields=True,
                rename=dict(zip(attrs, names, strict=True)),
            )
            decoder = msgspec.json.Decoder(cls)
        except (TypeError, ValueError) as exc:  # a rule of msgspec's that _nameable misses
            log.debug("no fast decoder for unknown keys %r: %s", names, exc)
            return
        self.items.insert(0, (decoder, names))
        del self.items[self.KEEP :]

    def parse(self, raw: bytes, now: datetime, tail: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The row, or None when no decoder tried fits (the full parser decides)."""
        for i, (decoder, names) in enumerate(self.items[: self.TRY]):
            try:
                row = _astuple(decoder.decode(raw))
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue
            except RecursionError:
                return None  # nested too deep for any decoder: the full parser says so
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


def _nameable(key: str) -> bool:
    """Whether msgspec takes ``key`` as a renamed field: no quote, backslash or control."""
    return not any(c in '"\\' or c < " " for c in key)


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
    try:
        return _parse_full(raw, now, tail)
    except Exception as exc:  # a bug here must cost one line, never stop ingestion
        log.exception("the log parser failed on a line; it is rejected")
        return Rejected(
            f"internal error in the log parser ({type(exc).__name__}); the line is kept "
            "here: report it to the diffwatch developers with this row"
        )


def _parse_full(raw: bytes, now: datetime, tail: tuple[Any, ...]) -> tuple[Any, ...] | Rejected:
    if b"\x00" in raw:
        return Rejected("line contains a NUL byte; log lines must be UTF-8 JSON text")
    if bad := _utf8_error(raw):
        return bad
    try:
        obj = _json.decode(raw)
    except msgspec.DecodeError as exc:
        return _not_json(raw, exc)
    except RecursionError:
        return _too_deep()
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
    if b"\\u0000" in raw and (found := find_text(obj, has_nul)):
        return Rejected(f'"{found[0]}" contains a NUL character (\\u0000)')
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
    extra = {k: obj[k] for k in unknown}
    if deeper_than(extra, MAX_DEPTH):
        return _too_deep()
    _fast.learn(frozenset(unknown))
    return (*row, extra, *tail)


def _retry_timestamp(
    obj: dict[str, Any], exc: msgspec.ValidationError, now: datetime
) -> LogRecord | Rejected:
    """Second chance for ISO 8601 spellings that RFC 3339 (msgspec) refuses, else a reason."""
    value = obj.get("timestamp")
    if not isinstance(value, str) or _fits(value, _FIELD_TYPES["timestamp"]):
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
