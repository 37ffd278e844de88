"""Pure decoding of an ingest request body: gzip, then JSON lines or a JSON array.

Untrusted input: every size is bounded before memory is spent on it (the compressed body by
the app, the decompressed body here, so a small gzip bomb is refused after at most
``max_bytes`` of output), and nothing a client sent is echoed back beyond a short excerpt.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import msgspec

NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
ARRAY_TYPES = frozenset({"application/json"})
_CHUNK = 1 << 16  # bytes of output per decompression step
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True, slots=True)
class BodyError:
    """Why a whole body is refused: the HTTP status to answer and a reason for a person."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a batch: its index (line of a JSON-lines body, element of an array)
    and its JSON text, undecoded."""

    index: int
    raw: bytes


def media_type(content_type: str | None) -> str | None:
    """``ndjson`` or ``array`` for a supported Content-Type (parameters ignored), else None."""
    mt = (content_type or "").split(";", 1)[0].strip().lower()
    if mt in NDJSON_TYPES:
        return "ndjson"
    if mt in ARRAY_TYPES:
        return "array"
    return None


def gunzip(data: bytes, max_bytes: int) -> bytes | BodyError:
    """Decompress a gzip body into at most ``max_bytes`` bytes (a bomb is refused early)."""
    d = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
    out = bytearray()
    chunk = data
    try:
        while chunk:
            out += d.decompress(chunk, _CHUNK)
            if len(out) > max_bytes:
                return _too_large(max_bytes)
            chunk = d.unconsumed_tail
        out += d.flush(_CHUNK)
        if len(out) > max_bytes:
            return _too_large(max_bytes)
    except zlib.error as exc:
        return BodyError(400, f"the body is not valid gzip ({exc}); send it compressed whole")
    if not d.eof:
        return BodyError(400, "the gzip body is cut short; send the whole compressed body")
    if d.unused_data.strip(b"\x00"):
        return BodyError(400, "the body holds data after its gzip stream; send one gzip member")
    return bytes(out)


def _too_large(max_bytes: int) -> BodyError:
    return BodyError(
        413,
        f"the decompressed body is over the {max_bytes} byte limit; send smaller batches",
    )


def split_records(data: bytes, kind: str, max_records: int) -> list[Record] | BodyError:
    """The records of a decoded body (``kind``: ``ndjson`` or ``array``), blank lines skipped.

    A record that is not valid JSON is still returned (the parser gives its reason); only
    a body whose framing is broken (an array that does not parse) is refused whole.
    """
    if kind == "ndjson":
        records = [Record(i, line) for i, line in enumerate(data.split(b"\n")) if line.strip()]
    else:
        try:
            raws = _raw_list.decode(data)
        except msgspec.ValidationError:
            return BodyError(
                400,
                "an application/json body must be a JSON array of records; "
                "send [{...}, {...}] or use application/x-ndjson",
            )
        except (msgspec.DecodeError, RecursionError) as exc:
            return BodyError(400, f"the body is not valid JSON: {_short(str(exc))}")
        records = [Record(i, bytes(r)) for i, r in enumerate(raws)]
    if len(records) > max_records:
        return BodyError(
            413,
            f"the batch holds {len(records)} records, over the {max_records} record limit; "
            "send smaller batches",
        )
    return records


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
